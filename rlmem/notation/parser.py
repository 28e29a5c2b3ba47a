"""Lexer and recursive-descent parser for the arrow notation.

One statement per line (``#`` starts a comment)::

    0 -> h_0                              an initial value (also ``h_0 := 0``)
    h_{t-1}|x_t -> c_t                    concatenation, bound to a name
    c_t --[R|sigmoid]-> r_t               a dense layer R with an activation
    x_t --[M]-> a_t --[N|tanh]-> b_t       a chain of arrows
    Cell: h_{t-1}, x_t                    a macro header; its body runs to ``return h_t``
    O_t --[Value]-> V_t => r_t + V_{t+1}  ``=>`` a regression target, ``$`` an objective

Expressions: numbers, names with subscripts (``x_t``, ``h_{t-1}``, ``A_{t+1}``, ``M_1``),
``f(a, b)``, unary ``-``, ``* /`` over ``+ -`` over ``|`` (concatenation binds loosest), parentheses.
A target may carry its size: ``a_t[64]``, or ``a_t[H]`` / ``a_t[2H]`` in units of ``hidden_size``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import Source, Span
from .syntax import BinOp, Call, Equation, Layer, Macro, Neg, Num, Program, Ref, Step, Target

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+)
  | (?P<comment>\#.*)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*(?:_\{[^}\n]*\})?)
  | (?P<op>--\[|\]->|->|=>|:=|[-+*/|,()\[\]:$])
""", re.VERBOSE)

_TIME = re.compile(r"t(?:([-+])(\d+))?")


@dataclass(frozen=True)
class Token:
    kind: str  # num | name | op | end
    text: str
    span: Span


def tokenize(source: Source, number: int) -> list[Token]:
    """The tokens of line ``number`` (1-based), ending with an ``end`` token."""
    line = source.line(number)
    tokens, pos = [], 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if m is None:
            raise source.error(f"unexpected character {line[pos]!r}", Span(number, pos + 1, pos + 2))
        kind = m.lastgroup
        if kind == "comment":
            break
        if kind != "ws":
            tokens.append(Token(kind, m.group(), Span(number, pos + 1, m.end() + 1)))
        pos = m.end()
    tokens.append(Token("end", "", Span(number, len(line) + 1, len(line) + 2)))
    return tokens


def split_name(source: Source, tok: Token) -> Ref:
    """``h_{t-1}`` -> Ref(h, -1); ``x_t`` -> Ref(x, 0); ``M_1`` -> Ref(M, literal 1); ``one_hot`` stays whole."""
    text = tok.text
    brace = text.find("_{")
    if brace > 0:
        base, sub = text[:brace], text[brace + 2:-1].replace(" ", "")
    else:
        m = re.fullmatch(r"(.+?)_(t|\d+)", text)
        if m is None:
            return Ref(text, None, None, tok.span)
        base, sub = m.group(1), m.group(2)
    t = _TIME.fullmatch(sub)
    if t:
        offset = 0 if t.group(1) is None else int(t.group(2)) * (1 if t.group(1) == "+" else -1)
        return Ref(base, offset, None, tok.span)
    if sub.isdigit():
        return Ref(base, None, sub, tok.span)
    raise source.error(f"subscript {{{sub}}} is neither a time index (t, t-1, t+1) nor a number", tok.span)


class _Line:
    """Parser state over the tokens of one line."""

    def __init__(self, source: Source, number: int):
        self.source, self.tokens, self.i = source, tokenize(source, number), 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def at(self, *texts: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in texts

    def expect(self, text: str, what: str) -> Token:
        if not self.at(text):
            raise self.error(f"expected {what}")
        return self.next()

    def error(self, message: str, span: Span | None = None):
        tok = self.tok
        found = "the end of the line" if tok.kind == "end" else f"{tok.text!r}"
        return self.source.error(f"{message}, found {found}" if span is None else message, span or tok.span)

    # ---------------------------------------------------------------- expressions
    def expr(self):
        left = self.sum()
        while self.at("|"):
            op = self.next()
            right = self.sum()
            left = BinOp("|", left, right, left.span.join(right.span), op.span)
        return left

    def sum(self):
        left = self.product()
        while self.at("+", "-"):
            op = self.next()
            right = self.product()
            left = BinOp(op.text, left, right, left.span.join(right.span), op.span)
        return left

    def product(self):
        left = self.unary()
        while self.at("*", "/"):
            op = self.next()
            right = self.unary()
            left = BinOp(op.text, left, right, left.span.join(right.span), op.span)
        return left

    def unary(self):
        if self.at("-"):
            op = self.next()
            operand = self.unary()
            return Neg(operand, op.span.join(operand.span))
        return self.primary()

    def primary(self):
        tok = self.tok
        if tok.kind == "num":
            self.next()
            return Num(float(tok.text), tok.span)
        if tok.kind == "name":
            self.next()
            if self.at("("):
                self.next()
                args = []
                if not self.at(")"):
                    args.append(self.expr())
                    while self.at(","):
                        self.next()
                        args.append(self.expr())
                close = self.expect(")", "')' to close the call")
                return Call(tok.text, tuple(args), tok.span.join(close.span))
            return split_name(self.source, tok)
        if self.at("("):
            open_ = self.next()
            inner = self.expr()
            close = self.expect(")", "')'")
            return _respan(inner, open_.span.join(close.span))
        raise self.error("expected a number, a name or '('")

    # ---------------------------------------------------------------- statements
    def refs(self, what: str) -> list[Ref]:
        out = [self.ref(what)]
        while self.at(","):
            self.next()
            out.append(self.ref(what))
        return out

    def ref(self, what: str) -> Ref:
        if self.tok.kind != "name":
            raise self.error(f"expected {what}")
        return split_name(self.source, self.next())

    def target(self) -> Target:
        ref = self.ref("a name to define")
        if not self.at("["):
            return Target(ref)
        open_ = self.next()
        n, per_hidden = 1, False
        if self.tok.kind == "num":
            tok = self.next()
            if not re.fullmatch(r"\d+", tok.text) or int(tok.text) < 1:
                raise self.source.error("a size is a positive whole number", tok.span)
            n = int(tok.text)
        if self.tok.kind == "name" and self.tok.text == "H":
            self.next()
            per_hidden = True
        elif self.tok.kind != "num" and self.tokens[self.i - 1] is open_:
            raise self.error("expected a size such as [64] or [H]")
        if self.at("]->"):  # ``a_t[64]->``: the bracket closes the size, the arrow follows
            tok = self.tok
            self.tokens[self.i] = Token("op", "->", Span(tok.span.line, tok.span.col + 1, tok.span.end))
            close_span = Span(tok.span.line, tok.span.col, tok.span.col + 1)
        else:
            close_span = self.expect("]", "']' after the size").span
        return Target(ref, (n, per_hidden), open_.span.join(close_span))

    def targets(self) -> tuple[Target, ...]:
        out = [self.target()]
        while self.at(","):
            self.next()
            out.append(self.target())
        return tuple(out)

    def layer(self) -> Layer:
        open_ = self.next()  # --[
        if self.tok.kind != "name":
            raise self.error("expected a parameter, function or macro name after '--['")
        name_tok = self.next()
        name, transform, name_span = name_tok.text, None, name_tok.span
        if self.at("("):  # a transform of a function: clip_grad(Policy)
            self.next()
            if self.tok.kind != "name":
                raise self.error("expected a name inside the transform")
            inner = self.next()
            self.expect(")", "')'")
            name, transform, name_span = inner.text, name_tok.text, inner.span
        activation, act_span = None, None
        if self.at("|"):
            self.next()
            if self.tok.kind != "name":
                raise self.error("expected an activation after '|'")
            tok = self.next()
            activation, act_span = tok.text, tok.span
        if not self.at("]->"):
            raise self.error("expected ']->' to close the layer")
        close = self.next()
        return Layer(name, activation, transform, open_.span.join(close.span), name_span, act_span)

    def equation(self) -> Equation:
        start = self.tok.span
        if self.tok.kind == "name" and self.peek().kind == "op" and self.peek().text == ":=":
            target = self.target()
            arrow = self.next()
            value = self.expr()
            self.end()
            return Equation((value,), (Step(None, (target,), arrow.span),), None, None,
                            start.join(value.span))
        sources = [self.expr()]
        while self.at(","):
            self.next()
            sources.append(self.expr())
        steps = []
        while self.at("->", "--["):
            if self.at("->"):
                arrow, layer = self.next().span, None
            else:
                layer = self.layer()
                arrow = layer.span
            steps.append(Step(layer, self.targets(), arrow))
        if not steps:
            raise self.error("expected an arrow ('->' or '--[M]->')")
        target = objective = None
        target_span = objective_span = None
        if self.at("=>"):
            op = self.next()
            target = self.expr()
            target_span = op.span.join(target.span)
        if self.at("$"):
            op = self.next()
            objective = self.expr()
            objective_span = op.span.join(objective.span)
        self.end()
        last = self.tokens[self.i - 1].span
        return Equation(tuple(sources), tuple(steps), target, objective, start.join(last),
                        target_span, objective_span)

    def end(self) -> None:
        if self.tok.kind != "end":
            raise self.error("unexpected text after the statement", self.tok.span)

    def statement(self):
        """('blank',) | ('return', refs, span) | ('macro', name, params, span) | ('eq', Equation)."""
        tok = self.tok
        if tok.kind == "end":
            return ("blank",)
        if tok.kind == "name" and tok.text == "return":
            self.next()
            refs = self.refs("a name to return")
            self.end()
            return ("return", tuple(refs), tok.span.join(refs[-1].span))
        if tok.kind == "name" and self.peek().kind == "op" and self.peek().text == ":":
            name = self.next()
            self.next()
            params = self.refs("a parameter of the macro") if self.tok.kind != "end" else []
            self.end()
            if "_" in name.text:
                raise self.source.error("a macro name has no subscript", name.span)
            return ("macro", name.text, tuple(params), name.span)
        return ("eq", self.equation())


def _respan(e, span: Span):
    """A parenthesized expression: its span covers the parentheses (carets then underline them)."""
    if isinstance(e, BinOp):
        return BinOp(e.op, e.left, e.right, span, e.op_span)
    if isinstance(e, Neg):
        return Neg(e.operand, span)
    return e


def parse(text: str, file: str = "<spec>") -> Program:
    """Parse a spec. Raises :class:`~rlmem.notation.errors.NotationError` with file, line and column."""
    source = Source(text, file)
    equations: list[Equation] = []
    macros: dict[str, Macro] = {}
    current: Macro | None = None
    returns, return_span = None, None
    for number in range(1, len(source.lines) + 1):
        stmt = _Line(source, number).statement()
        kind = stmt[0]
        if kind == "blank":
            continue
        if kind == "macro":
            _, name, params, span = stmt
            if current is not None:
                raise source.error(f"macro {name} starts inside macro {current.name}, which has no "
                                   f"'return' yet", span)
            if name in macros:
                raise source.error(f"macro {name} is defined twice (first on line {macros[name].span.line})", span)
            current = Macro(name, params, span=span)
            macros[name] = current
        elif kind == "return":
            _, refs, span = stmt
            if current is not None:
                current.returns, current.return_span = refs, span
                current = None
            elif returns is not None:
                raise source.error(f"a second 'return' (the first is on line {return_span.line})", span)
            else:
                returns, return_span = refs, span
        else:
            (current.body if current is not None else equations).append(stmt[1])
    if current is not None:
        raise source.error(f"macro {current.name} has no 'return' line", current.span)
    return Program(equations, macros, returns, return_span, source)
