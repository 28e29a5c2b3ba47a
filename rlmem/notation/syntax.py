"""The parsed form of a spec: expressions, arrows, equations, macros.

A reference such as ``h_{t-1}`` is a :class:`Ref` with ``base="h"`` and ``offset=-1``; ``x_t`` has
offset 0; ``h_0`` and ``M_1`` carry a literal subscript (``"0"``, ``"1"``) and no offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from .errors import Span

# Precedence for printing: concatenation binds loosest.
PRECEDENCE = {"|": 1, "+": 2, "-": 2, "*": 3, "/": 3}


@dataclass(frozen=True)
class Num:
    value: float
    span: Span

    def show(self) -> str:
        v = self.value
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)


@dataclass(frozen=True)
class Ref:
    base: str
    offset: int | None  # time offset from t; None: no time index
    literal: str | None  # a non-time subscript (h_0, M_1)
    span: Span

    @property
    def timed(self) -> bool:
        return self.offset is not None

    @property
    def plain_name(self) -> str:
        """The name of an untimed reference (``M_1`` is one name)."""
        return self.base if self.literal is None else f"{self.base}_{self.literal}"

    def show(self) -> str:
        if self.offset is None:
            return self.plain_name
        return time_name(self.base, self.offset)


def time_name(base: str, offset: int) -> str:
    if offset == 0:
        return f"{base}_t"
    return f"{base}_{{t{offset:+d}}}"


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple
    span: Span

    def show(self) -> str:
        return f"{self.func}({', '.join(a.show() for a in self.args)})"


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / |
    left: object
    right: object
    span: Span
    op_span: Span

    def show(self) -> str:
        p = PRECEDENCE[self.op]
        left = _wrap(self.left, p, right=False)
        right = _wrap(self.right, p, right=True)
        sep = "|" if self.op == "|" else f" {self.op} "
        return f"{left}{sep}{right}"


@dataclass(frozen=True)
class Neg:
    operand: object
    span: Span

    def show(self) -> str:
        return f"-{_wrap(self.operand, 4, right=True)}"


def _wrap(e, outer: int, right: bool) -> str:
    text = e.show()
    if isinstance(e, BinOp):
        p = PRECEDENCE[e.op]
        # inside a concatenation, arithmetic is parenthesized for the reader: x_t|(h_{t-1} * r_t)
        if p < outer or (right and p == outer and e.op in "-/") or (outer == 1 and e.op != "|"):
            return f"({text})"
    return text


@dataclass(frozen=True)
class Layer:
    """What is written between ``--[`` and ``]->``: ``M``, ``M|sigmoid``, ``clip_grad(Policy)``."""

    name: str
    activation: str | None
    transform: str | None
    span: Span
    name_span: Span
    activation_span: Span | None

    def show(self) -> str:
        inner = f"{self.transform}({self.name})" if self.transform else self.name
        return f"--[{inner}{'|' + self.activation if self.activation else ''}]->"


@dataclass(frozen=True)
class Target:
    ref: Ref
    size: tuple[int, bool] | None = None  # (n, times hidden_size?) from ``a_t[64]`` / ``a_t[H]``
    size_span: Span | None = None

    def show(self) -> str:
        if self.size is None:
            return self.ref.show()
        n, per_hidden = self.size
        return f"{self.ref.show()}[{'' if n == 1 and per_hidden else n}{'H' if per_hidden else ''}]"


@dataclass(frozen=True)
class Step:
    layer: Layer | None  # None: a plain ``->``
    targets: tuple[Target, ...]
    arrow_span: Span


@dataclass(frozen=True)
class Equation:
    sources: tuple
    steps: tuple[Step, ...]
    target: object | None  # the expression after ``=>``
    objective: object | None  # the expression after ``$``
    span: Span
    target_span: Span | None = None
    objective_span: Span | None = None

    @property
    def line(self) -> int:
        return self.span.line

    def defined(self) -> list[Target]:
        return [t for s in self.steps for t in s.targets]

    def show(self) -> str:
        parts = [", ".join(s.show() for s in self.sources)]
        for st in self.steps:
            parts.append(st.layer.show() if st.layer else "->")
            parts.append(", ".join(t.show() for t in st.targets))
        text = " ".join(parts)
        if self.target is not None:
            text += f" => {self.target.show()}"
        if self.objective is not None:
            text += f" $ {self.objective.show()}"
        return text


@dataclass
class Macro:
    """``Name: a, b`` ... ``return y``: a step function, inlined where an arrow names it."""

    name: str
    params: tuple[Ref, ...]
    body: list[Equation] = field(default_factory=list)
    returns: tuple[Ref, ...] = ()
    span: Span | None = None
    return_span: Span | None = None


@dataclass
class Program:
    equations: list[Equation]
    macros: dict[str, Macro]
    returns: tuple[Ref, ...] | None
    return_span: Span | None
    source: object  # errors.Source


def refs(e: object) -> Iterator[Ref]:
    """Every name reference inside the expression ``e``, left to right."""
    if isinstance(e, Ref):
        yield e
    elif isinstance(e, BinOp):
        yield from refs(e.left)
        yield from refs(e.right)
    elif isinstance(e, Neg):
        yield from refs(e.operand)
    elif isinstance(e, Call):
        for a in e.args:
            yield from refs(a)
