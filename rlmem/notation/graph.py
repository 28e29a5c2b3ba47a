"""From parsed equations to the data-flow graph of one step.

Names resolve in the order the values need them, so lines may come in any order. What a step reads
at ``_{t-1}`` becomes the core's state (it needs an initial value, ``0 -> h_0``); the one name read
at ``_t`` that no line defines is the step's input (``x`` if several are candidates). Macros are
inlined; each call gets its own parameters (``Enc.R``, or ``Enc1.R``, ``Enc2.R`` for two calls).
Identical expressions become one node, so an input written twice is computed once.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from .errors import Source, Span
from .syntax import BinOp, Call, Equation, Macro, Neg, Num, Program, Ref, Step, Target, refs, time_name

#: Functions of one argument a step may apply; all but softmax act elementwise.
FUNCTIONS = ("sigmoid", "tanh", "relu", "softmax", "exp")
_CONST_FUNCTIONS = {"sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)), "tanh": math.tanh,
                    "relu": lambda v: max(v, 0.0), "exp": math.exp, "softmax": lambda v: 1.0}
_ARITH = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


@dataclass(frozen=True)
class DenseInfo:
    param: str  # full parameter name (with the macro prefix)
    activation: str | None
    span: Span  # the layer ``--[M|act]->``
    line: int


@dataclass(eq=False)
class Node:
    """One value of the step. ``op``: input | prev | const | cat | dense | pick | bin | neg | call.

    ``attr``: the constant (const), the state name (prev), the operator (bin), the function (call),
    :class:`DenseInfo` (dense), ``(index, count)`` (pick: one of a layer's several targets).
    """

    op: str
    args: tuple = ()
    attr: object = None
    span: Span | None = None
    text: str = ""
    index: int = 0
    name: str | None = None  # the variable it is bound to (``r_t``, ``Enc.r_t``)
    def_span: Span | None = None  # where that variable is defined
    annotations: list = field(default_factory=list)  # (size, span) from ``a_t[64]``
    size: int | None = None

    @property
    def scalar(self) -> bool:
        return self.op == "const"

    @property
    def label(self) -> str:
        return self.name or self.text


@dataclass
class StateVar:
    """A value carried from one step to the next: ``prev`` reads it, ``next`` is its new value."""

    name: str
    prev: Node
    init: float
    next: Node | None = None


@dataclass
class StepGraph:
    source: Source
    program: Program
    nodes: list[Node]
    input: Node
    states: list[StateVar]
    outputs: list[Node]
    live: set[int]  # ids of the nodes the outputs and the new states need

    def is_live(self, node: Node) -> bool:
        return id(node) in self.live

    @property
    def dense(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "dense" and self.is_live(n)]

    def unused(self) -> list[Node]:
        """Named values that no output or state needs (their lines compute nothing used)."""
        return [n for n in self.nodes if n.name and not self.is_live(n) and n.op not in ("input", "prev")]


class _Builder:
    def __init__(self, program: Program):
        self.program, self.src = program, program.source
        self.nodes: list[Node] = []
        self.cache: dict[tuple, Node] = {}
        self.params: dict[str, Node] = {}
        self.states: dict[str, StateVar] = {}
        self.calls = Counter(st.layer.name for eq in _all_equations(program) for st in eq.steps
                             if st.layer is not None and st.layer.name in program.macros)
        self.call_index: Counter = Counter()
        self.macro_stack: list[str] = []
        self.top = _Scope(self, program.equations, {}, prefix="", macro=None)
        self.input_name = self._find_input()
        self.input = self.node("input", attr=self.input_name, text=time_name(self.input_name, 0),
                               span=None) if self.input_name else None
        if self.input is not None:
            self.input.name = time_name(self.input_name, 0)

    def node(self, op: str, args: tuple = (), attr=None, span: Span | None = None, text: str = "",
             cons: bool = True) -> Node:
        key = (op, attr, tuple(id(a) for a in args)) if cons else None
        if key is not None and key in self.cache:
            return self.cache[key]
        n = Node(op, args, attr, span, text, index=len(self.nodes))
        self.nodes.append(n)
        if key is not None:
            self.cache[key] = n
        return n

    def _find_input(self) -> str | None:
        """The base name read at ``_t`` (or ``_{t-1}``) at the top level that no line defines."""
        found: list[str] = []
        for eq in self.program.equations:
            for r in _refs_of_equation(eq):
                if r.timed and ("t", r.base) not in self.top.defs and r.base not in found:
                    found.append(r.base)
        if not found:
            return None
        return "x" if "x" in found else found[0]

    def state(self, ref: Ref) -> Node:
        name = ref.base
        if name in self.states:
            return self.states[name].prev
        if ("t", name) not in self.top.defs and name != self.input_name:
            raise self.src.error(f"{ref.show()} is read, but no line defines {time_name(name, 0)}", ref.span)
        if ("init", name) not in self.top.defs:
            raise self.src.error(f"{ref.show()} is read, but {name} has no initial value; add a line such as "
                                 f"`0 -> {name}_0`", ref.span)
        init = self.top.lookup(("init", name), ref.span)
        if init.op != "const":
            eq, _ = self.top.defs[("init", name)]
            raise self.src.error(f"the initial value of {name} must be a constant, such as `0 -> {name}_0`",
                                 eq.sources[0].span)
        prev = self.node("prev", attr=name, text=ref.show(), span=ref.span)
        prev.name = ref.show()
        self.states[name] = StateVar(name, prev, float(init.attr))
        return prev


class _Scope:
    """Names of the top level or of one macro call."""

    def __init__(self, b: _Builder, equations: list[Equation], bindings: dict, prefix: str,
                 macro: Macro | None):
        self.b, self.src, self.prefix, self.macro = b, b.src, prefix, macro
        self.equations = equations
        self.values: dict[tuple, Node] = dict(bindings)
        self.params = set(bindings)
        self.timed = {r.base for eq in equations for r in _refs_of_equation(eq) if r.timed}
        self.timed |= {t.ref.base for eq in equations for t in eq.defined() if t.ref.timed}
        if macro is not None:
            self.timed |= {p.base for p in macro.params if p.timed}
        self.defs: dict[tuple, tuple[Equation, Target]] = {}
        for eq in equations:
            for tgt in eq.defined():
                key = self.key_of_target(tgt.ref)
                if key in self.defs:
                    first = self.defs[key][0].line
                    raise self.src.error(f"{tgt.ref.show()} is defined twice (first on line {first})", tgt.ref.span)
                if key in self.params:
                    raise self.src.error(f"{tgt.ref.show()} is a parameter of macro {macro.name}; it cannot be "
                                         f"defined in its body", tgt.ref.span)
                self.defs[key] = (eq, tgt)
        self.building: set[int] = set()
        self.done: set[int] = set()

    # ------------------------------------------------------------------ names
    def key_of_target(self, ref: Ref) -> tuple:
        if ref.offset == 0:
            return ("t", ref.base)
        if ref.offset is not None:
            raise self.src.error(f"a line defines a value at step t ({time_name(ref.base, 0)}) or an initial "
                                 f"value ({ref.base}_0), not {ref.show()}", ref.span)
        if ref.literal == "0" and ref.base in self.timed:
            if self.macro is not None:
                raise self.src.error(f"an initial value belongs to the top level, not to macro {self.macro.name}",
                                     ref.span)
            return ("init", ref.base)
        return ("name", ref.plain_name)

    def lookup(self, key: tuple, span: Span) -> Node:
        if key in self.values:
            return self.values[key]
        eq, tgt = self.defs[key]
        if id(eq) in self.building:
            raise self.src.error(f"{tgt.ref.show()} depends on itself within one step (line {eq.line}); a "
                                 f"recurrence reads the previous step, e.g. {tgt.ref.base}_{{t-1}}", span)
        self.equation(eq)
        return self.values[key]

    def ref(self, r: Ref) -> Node:
        if r.offset is None:
            if r.literal == "0" and r.base in self.timed:
                key = ("init", r.base)
                if key in self.defs or key in self.values:
                    return self.lookup(key, r.span)
                raise self.src.error(f"{r.show()} is read, but no line gives the initial value of {r.base}", r.span)
            key = ("name", r.plain_name)
            if key in self.values or key in self.defs:
                return self.lookup(key, r.span)
            top = self.b.top
            if self is not top and (key in top.values or key in top.defs):
                node = top.lookup(key, r.span)
                if node.op == "const":
                    return node
                raise self.src.error(f"macro {self.macro.name} reads {r.show()}, a value of the top level; pass "
                                     f"it in as a parameter", r.span)
            raise self.src.error(f"undefined name {r.show()}: no line defines it", r.span)
        if r.offset == 0:
            key = ("t", r.base)
            if key in self.values or key in self.defs:
                return self.lookup(key, r.span)
            if self.macro is not None:
                raise self.src.error(f"undefined name {r.show()} in macro {self.macro.name}: it is neither a "
                                     f"parameter ({_params(self.macro)}) nor defined in its body", r.span)
            if r.base == self.b.input_name:
                return self.b.input
            raise self.src.error(f"undefined name {r.show()}: no line defines it (the step's input is "
                                 f"{time_name(self.b.input_name, 0)})", r.span)
        if r.offset == -1:
            if self.macro is not None:
                key = ("prev", r.base)
                if key in self.values:
                    return self.values[key]
                raise self.src.error(f"inside macro {self.macro.name} only its parameters are read at t-1, and "
                                     f"{r.show()} is not one of them ({_params(self.macro)})", r.span)
            return self.b.state(r)
        if r.offset > 0:
            raise self.src.error(f"a step cannot read {r.show()}, a value from a later step; a core reads _t "
                                 f"and _{{t-1}}", r.span)
        raise self.src.error(f"a core keeps one step of state, so it reads _{{t-1}} but not {r.show()}; carry "
                             f"an older value in a state of its own (`{r.base}_{{t-1}} -> p_t`, then read "
                             f"p_{{t-1}})", r.span)

    # ------------------------------------------------------------------ expressions
    def expr(self, e) -> Node:
        b, text = self.b, self.src.snippet(e.span)
        if isinstance(e, Num):
            return b.node("const", attr=float(e.value), span=e.span, text=text)
        if isinstance(e, Ref):
            return self.ref(e)
        if isinstance(e, Neg):
            x = self.expr(e.operand)
            if x.op == "const":
                return b.node("const", attr=-x.attr, span=e.span, text=text)
            return b.node("neg", (x,), span=e.span, text=text)
        if isinstance(e, BinOp):
            left, right = self.expr(e.left), self.expr(e.right)
            if e.op == "|":
                for side, node in ((e.left, left), (e.right, right)):
                    if node.op == "const":
                        raise self.src.error("a constant has no size to concatenate; concatenate values "
                                             "that vary", side.span)
                parts = tuple(p for n in (left, right) for p in (n.args if n.op == "cat" else (n,)))
                return b.node("cat", parts, span=e.span, text=text)
            if left.op == "const" and right.op == "const":
                if e.op == "/" and right.attr == 0:
                    raise self.src.error("division by the constant 0", e.span)
                return b.node("const", attr=_ARITH[e.op](left.attr, right.attr), span=e.span, text=text)
            return b.node("bin", (left, right), attr=e.op, span=e.span, text=text)
        if isinstance(e, Call):
            if e.func not in FUNCTIONS:
                raise self.src.error(f"unknown function {e.func!r}; a step can apply {', '.join(FUNCTIONS)}",
                                     Span(e.span.line, e.span.col, e.span.col + len(e.func)))
            if len(e.args) != 1:
                raise self.src.error(f"{e.func} takes one argument, got {len(e.args)}", e.span)
            x = self.expr(e.args[0])
            if x.op == "const":
                return b.node("const", attr=_CONST_FUNCTIONS[e.func](x.attr), span=e.span, text=text)
            return b.node("call", (x,), attr=e.func, span=e.span, text=text)
        raise TypeError(f"not an expression: {e!r}")

    # ------------------------------------------------------------------ equations
    def equation(self, eq: Equation) -> None:
        if id(eq) in self.done:
            return
        if eq.target is not None:
            raise self.src.error("'=>' states a regression target, which belongs to a loss; a core spec "
                                 "computes one step", eq.target_span)
        if eq.objective is not None:
            raise self.src.error("'$' states an objective, which belongs to a loss; a core spec computes "
                                 "one step", eq.objective_span)
        self.building.add(id(eq))
        current = [self.expr(s) for s in eq.sources]
        for st in eq.steps:
            current = self.apply(st, current, eq)
            for tgt, node in zip(st.targets, current):
                self.bind(tgt, node)
        self.building.discard(id(eq))
        self.done.add(id(eq))

    def bind(self, tgt: Target, node: Node) -> None:
        key = self.key_of_target(tgt.ref)
        if tgt.size is not None:
            if node.op == "const":
                raise self.src.error(f"{tgt.ref.show()} is a constant; it has no size", tgt.size_span)
            node.annotations.append((tgt.size, tgt.size_span, tgt.ref.show()))
        if node.name is None and node.op not in ("const", "input", "prev"):
            node.name = self.prefix + tgt.ref.show()
            node.def_span = tgt.ref.span
        self.values[key] = node

    def apply(self, st: Step, current: list[Node], eq: Equation) -> list[Node]:
        n_targets, layer = len(st.targets), st.layer
        if layer is None:
            if len(current) != n_targets:
                raise self.src.error(f"'->' passes {len(current)} value(s) to {n_targets} name(s); give one "
                                     f"name per value", st.arrow_span)
            return current
        if layer.transform is not None:
            raise self.src.error(f"{layer.transform}(...) transforms a function inside a loss; a core step "
                                 f"has no transforms", layer.span)
        if layer.name in self.b.program.macros:
            return self.call_macro(self.b.program.macros[layer.name], st, current)
        if layer.name in FUNCTIONS:
            if layer.activation is not None:
                raise self.src.error(f"{layer.name} is a function; write --[{layer.name}]-> or name a parameter, "
                                     f"--[M|{layer.name}]->", layer.span)
            if len(current) != 1 or n_targets != 1:
                raise self.src.error(f"--[{layer.name}]-> maps one value to one name", st.arrow_span)
            node = current[0]
            if node.op == "const":
                return [self.b.node("const", attr=_CONST_FUNCTIONS[layer.name](node.attr))]
            return [self.b.node("call", (node,), attr=layer.name, span=node.span, text=node.text)]
        if len(current) != 1:
            raise self.src.error("a dense layer reads one input; join several with '|', e.g. a_t|b_t",
                                 st.arrow_span)
        if layer.activation is not None and layer.activation not in FUNCTIONS:
            raise self.src.error(f"unknown activation {layer.activation!r}; choose from {', '.join(FUNCTIONS)}",
                                 layer.activation_span)
        source = current[0]
        if source.op == "const":
            raise self.src.error("a dense layer needs an input that varies, not a constant", eq.sources[0].span)
        if layer.name[0].isdigit() or not layer.name.replace("_", "").isalnum():
            raise self.src.error(f"{layer.name!r} cannot name a parameter", layer.name_span)
        param = self.prefix + layer.name
        if param in self.b.params:
            first = self.b.params[param].attr.line
            raise self.src.error(f"parameter {layer.name} already belongs to the layer on line {first}; give "
                                 f"each arrow a parameter of its own", layer.name_span)
        dense = self.b.node("dense", (source,), DenseInfo(param, layer.activation, layer.span, eq.line),
                            span=layer.span, text=self.src.snippet(layer.span), cons=False)
        self.b.params[param] = dense
        if n_targets == 1:
            return [dense]
        return [self.b.node("pick", (dense,), attr=(i, n_targets), span=t.ref.span, text=t.ref.show())
                for i, t in enumerate(st.targets)]

    def call_macro(self, macro: Macro, st: Step, args: list[Node]) -> list[Node]:
        layer = st.layer
        if layer.activation is not None:
            raise self.src.error(f"{macro.name} is a macro; a macro call takes no activation",
                                 layer.activation_span)
        if len(args) != len(macro.params):
            raise self.src.error(f"macro {macro.name} takes {len(macro.params)} input(s) ({_params(macro)}), "
                                 f"got {len(args)}", st.arrow_span)
        if len(st.targets) != len(macro.returns):
            raise self.src.error(f"macro {macro.name} returns {len(macro.returns)} value(s), "
                                 f"{len(st.targets)} name(s) receive them", st.arrow_span)
        if macro.name in self.b.macro_stack:
            raise self.src.error(f"macro {macro.name} calls itself", layer.span)
        bindings = {}
        for p, node in zip(macro.params, args):
            key = ("t", p.base) if p.offset == 0 else ("prev", p.base) if p.offset == -1 else \
                ("name", p.plain_name) if p.offset is None else None
            if key is None:
                raise self.src.error("a macro parameter is read at t or t-1", p.span)
            bindings[key] = node
        self.b.call_index[macro.name] += 1
        k = self.b.call_index[macro.name]
        tag = macro.name if self.b.calls[macro.name] == 1 else f"{macro.name}{k}"
        scope = _Scope(self.b, macro.body, bindings, prefix=f"{self.prefix}{tag}.", macro=macro)
        self.b.macro_stack.append(macro.name)
        try:
            scope.finish()  # the body in the order written, so its layers are created in that order
            outs = [scope.ref(r) for r in macro.returns]
        finally:
            self.b.macro_stack.pop()
        return outs

    def finish(self) -> None:
        for eq in self.equations:
            self.equation(eq)


def _params(macro: Macro) -> str:
    return ", ".join(p.show() for p in macro.params)


def _all_equations(program: Program):
    yield from program.equations
    for m in program.macros.values():
        yield from m.body


def _refs_of_equation(eq: Equation):
    for s in eq.sources:
        yield from refs(s)
    for extra in (eq.target, eq.objective):
        if extra is not None:
            yield from refs(extra)


def build_graph(program: Program) -> StepGraph:
    """Resolve every line of ``program`` into the step graph. Raises NotationError."""
    b = _Builder(program)
    src = program.source
    top = b.top
    top.finish()
    if b.input is None:
        raise src.error("the spec never reads its input; write x_t where the step's input goes")
    if program.returns is not None:
        outputs = [top.ref(r) for r in program.returns]
    else:
        last = next((eq for eq in reversed(program.equations)
                     if any(t.ref.offset == 0 for t in eq.steps[-1].targets)), None)
        if last is None:
            raise src.error("the spec computes nothing at step t; end with the line that defines the output, "
                            "e.g. `... -> h_t`", Span(max(len(src.lines), 1), 1, 2))
        outputs = [top.ref(t.ref) for t in last.steps[-1].targets]
    spans = program.returns if program.returns is not None else last.steps[-1].targets
    for node, item in zip(outputs, spans):
        if node.op == "const":
            ref = item if isinstance(item, Ref) else item.ref
            raise src.error(f"the output {ref.show()} is a constant; a core's output depends on its input or "
                            f"state", ref.span)
    states = list(b.states.values())
    for s in states:
        s.next = top.lookup(("t", s.name), s.prev.span) if ("t", s.name) in top.defs else b.input
        if s.next.op == "const":
            eq, tgt = top.defs[("t", s.name)]
            raise src.error(f"{tgt.ref.show()} is a constant; a state is computed from the input or the state",
                            tgt.ref.span)
    live = reachable([*outputs, *(s.next for s in states)])
    return StepGraph(src, program, b.nodes, b.input, states, outputs, live)


def reachable(roots: list) -> set[int]:
    """The ids of ``roots`` and of every value they read, through ``.args`` (graph nodes or
    lowered values alike)."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        stack.extend(v.args)
    return seen
