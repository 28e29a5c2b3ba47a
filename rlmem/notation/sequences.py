"""Lines of the notation evaluated over recorded sequences (time-major ``[T, B]``).

This is how the loss lines check out against the agents: given a rollout's rewards ``r``, episode
ends ``d`` and values ``V``, the lines::

    V_{t+1}*gamma + r_t - V_t -> TD_t
    TD_t + gamma * lam * A_{t+1} * (1-d_t) -> A_t

give the advantages. A line that reads its own target one step later (``A_{t+1}``) is a reverse
scan, started from ``final[name]`` or 0 (nothing is left after the recording); one that reads it a
step earlier is a forward scan from its initial value. Another quantity read at ``_{t+1}`` takes
``final[name]`` at the last step (the bootstrap value). Lines computed by functions this module does
not run (``--[step]->``, ``--[Value]->``, ``reset()``) say where data comes from: their targets
must be given in ``data``.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch

from .errors import Span
from .parser import parse
from .syntax import BinOp, Call, Equation, Neg, Num, Program, Ref, refs

_FUNCS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "exp": torch.exp,
          "log": torch.log, "softmax": lambda v: torch.softmax(v, -1)}


def _pure(e) -> bool:
    if isinstance(e, Call):
        return e.func in _FUNCS and all(_pure(a) for a in e.args)
    if isinstance(e, BinOp):
        return _pure(e.left) and _pure(e.right)
    if isinstance(e, Neg):
        return _pure(e.operand)
    return True


class _Evaluator:
    def __init__(self, program: Program, data: Mapping[str, torch.Tensor], final: Mapping[str, torch.Tensor]):
        self.src = program.source
        self.data = {k: torch.as_tensor(v) for k, v in data.items()}
        self.data = {k: v.float() if v.dtype == torch.bool else v for k, v in self.data.items()}
        self.final = {k: torch.as_tensor(v) for k, v in final.items()}
        if not self.data:
            raise ValueError("evaluate needs at least one recorded sequence in data")
        self.T = next(iter(self.data.values())).shape[0]
        timed = {r.base for eq in program.equations for e in (*eq.sources, eq.target, eq.objective)
                 if e is not None for r in refs(e) if r.timed}
        timed |= {t.ref.base for eq in program.equations for t in eq.defined() if t.ref.timed}
        self.defs: dict[str, tuple[Equation, object]] = {}
        self.inits: dict[str, tuple[Equation, object]] = {}
        self.consts: dict[str, tuple[Equation, object]] = {}
        self.external: dict[str, Equation] = {}
        self.losses: dict[str, tuple[Equation, object]] = {}
        for eq in program.equations:
            targets = eq.steps[-1].targets
            pure = (len(eq.steps) == 1 and eq.steps[0].layer is None and len(eq.sources) == len(targets)
                    and all(_pure(s) for s in eq.sources))
            for i, tgt in enumerate(t for st in eq.steps for t in st.targets):
                r = tgt.ref
                if not pure:
                    self.external.setdefault(r.base if r.timed or r.literal == "0" else r.plain_name, eq)
                    continue
                value = eq.sources[i]
                if r.offset == 0:
                    self.defs[r.base] = (eq, value)
                elif r.literal == "0" and r.base in timed:
                    self.inits[r.base] = (eq, value)
                elif r.offset is None:
                    self.consts[r.plain_name] = (eq, value)
                else:
                    raise self.src.error(f"a line defines a value at t or an initial value, not {r.show()}", r.span)
            last = targets[-1].ref
            if eq.target is not None:
                self.losses[f"{last.base}=>"] = (eq, eq.target)
            if eq.objective is not None:
                self.losses[f"{last.base}$"] = (eq, eq.objective)
        self.values: dict[str, torch.Tensor] = {}
        self.busy: set[str] = set()

    # ------------------------------------------------------------------ quantities
    def constant(self, name: str, span: Span) -> float:
        if name not in self.consts:
            raise self.src.error(f"undefined name {name}: no line gives it a constant value", span)
        eq, expr = self.consts[name]
        value = self.expr(expr, lambda r: self.constant(r.plain_name, r.span) if not r.timed else
                          self._not_constant(r))
        return float(value)

    def _not_constant(self, r: Ref):
        raise self.src.error(f"a constant cannot read {r.show()}", r.span)

    def sequence(self, base: str, span: Span) -> torch.Tensor:
        """All of ``base_t`` over the recording, ``[T, B]``."""
        if base in self.data:
            return self.data[base]
        if base in self.values:
            return self.values[base]
        if base in self.busy:
            raise self.src.error(f"{base}_t depends on itself at the same step", span)
        if base in self.defs:
            self.busy.add(base)
            self.values[base] = self.compute(base)
            self.busy.discard(base)
            return self.values[base]
        if base in self.external:
            eq = self.external[base]
            raise self.src.error(f"{base}_t comes from line {eq.line}, which runs a function this evaluation does "
                                 f"not run; pass {base} in data", span)
        raise self.src.error(f"undefined name {base}_t: no line defines it and data has no {base}", span)

    def initial(self, base: str, r: Ref) -> torch.Tensor:
        if base not in self.inits:
            raise self.src.error(f"{r.show()} at the first step needs an initial value of {base}; add a line such "
                                 f"as `0 -> {base}_0`", r.span)
        _, expr = self.inits[base]
        return torch.as_tensor(self.expr(expr, lambda q: self.constant(q.plain_name, q.span)))

    def shifted(self, r: Ref) -> torch.Tensor:
        """``r`` over the recording: ``x_t``, ``x_{t+1}`` (the last step reads ``final``) or ``x_{t-1}``."""
        seq = self.sequence(r.base, r.span)
        if r.offset == 0:
            return seq
        if r.offset == 1:
            if r.base not in self.final:
                raise self.src.error(f"{r.show()} at the last step reads {r.base} after the recording; pass "
                                     f"final={{'{r.base}': ...}}", r.span)
            return torch.cat([seq[1:], self.final[r.base].to(seq).reshape(1, *seq.shape[1:])])
        if r.offset == -1:
            first = self.initial(r.base, r).to(seq).expand(1, *seq.shape[1:])
            return torch.cat([first, seq[:-1]])
        raise self.src.error(f"only _{{t-1}}, _t and _{{t+1}} are evaluated, not {r.show()}", r.span)

    def lookup(self, r: Ref):
        if not r.timed:
            return self.constant(r.plain_name, r.span)
        return self.shifted(r)

    def compute(self, base: str) -> torch.Tensor:
        eq, expr = self.defs[base]
        own = {r.offset for r in refs(expr) if r.timed and r.base == base}
        if 0 in own:
            ref = next(r for r in refs(expr) if r.timed and r.base == base and r.offset == 0)
            raise self.src.error(f"{base}_t depends on itself at the same step", ref.span)
        if not own:
            return torch.as_tensor(self.expr(expr, self.lookup)).expand_as(self._shape_like())
        if own not in ({1}, {-1}):
            raise self.src.error(f"{base}_t reads itself at more than one other step", eq.span)
        reverse = own == {1}
        others = {r: self.lookup(r) for r in refs(expr) if not (r.timed and r.base == base)}
        like = self._shape_like()
        if reverse:
            carry = self.final[base].to(like) if base in self.final else torch.zeros_like(like[0])
        else:
            ref = next(r for r in refs(expr) if r.timed and r.base == base)
            carry = self.initial(base, ref).to(like).expand_as(like[0])
        out = [None] * self.T
        steps = range(self.T - 1, -1, -1) if reverse else range(self.T)
        for t in steps:
            def at_t(r: Ref, t=t):
                if r.timed and r.base == base:
                    return carry
                v = others[r]
                return v[t] if isinstance(v, torch.Tensor) and v.dim() > 0 else v
            carry = torch.as_tensor(self.expr(expr, at_t)).expand_as(like[0])
            out[t] = carry
        return torch.stack(out)

    def _shape_like(self) -> torch.Tensor:
        return next(iter(self.data.values())).float()

    def expr(self, e, lookup):
        if isinstance(e, Num):
            return e.value
        if isinstance(e, Ref):
            return lookup(e)
        if isinstance(e, Neg):
            return -self.expr(e.operand, lookup)
        if isinstance(e, BinOp):
            if e.op == "|":
                raise self.src.error("concatenation is not evaluated over sequences", e.op_span)
            a, b = self.expr(e.left, lookup), self.expr(e.right, lookup)
            return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b}[e.op]()
        if isinstance(e, Call):
            if e.func not in _FUNCS or len(e.args) != 1:
                raise self.src.error(f"{e.func}(...) is not evaluated over sequences", e.span)
            return _FUNCS[e.func](torch.as_tensor(self.expr(e.args[0], lookup)))
        raise TypeError(e)

    def want(self, key: str) -> torch.Tensor:
        if key in self.losses:
            _, expr = self.losses[key]
            return torch.as_tensor(self.expr(expr, self.lookup)).expand_as(self._shape_like())
        if key.endswith(("=>", "$")):
            raise ValueError(f"no line states {key} (a target '=>' or objective '$' of {key[:-2] or key[:-1]})")
        return self.sequence(key, Span(1, 1, 2))


def evaluate(spec: str | Program, data: Mapping[str, torch.Tensor], final: Mapping[str, torch.Tensor] | None = None,
             want: Iterable[str] | None = None, file: str = "<lines>") -> dict[str, torch.Tensor]:
    """Evaluate notation lines over recorded sequences.

    Args:
        spec: the lines (text) or a parsed program.
        data: recorded quantities, ``{name: [T, B]}`` (``r``, ``d``, ``V``: what the environment and
            the networks produced); boolean tensors count as 0/1.
        final: ``{name: [B]}``, values one step past the recording (``V`` for ``V_{t+1}`` at the last
            step; the start of a reverse scan).
        want: what to compute: a name (``"A"`` for ``A_t``), ``"V=>"`` for the regression target of
            the line that defines ``V_t``, ``"pi$"`` for an objective. Default: every quantity a
            line computes.

    Returns:
        ``{key: [T, B]}`` for every key in ``want``. Raises NotationError for a line that cannot be
        evaluated, pointing at it.
    """
    program = parse(spec, file) if isinstance(spec, str) else spec
    ev = _Evaluator(program, data, final or {})
    keys = list(want) if want is not None else list(ev.defs)
    return {k: ev.want(k) for k in keys}
