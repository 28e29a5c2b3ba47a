"""Feature sizes of every value of a step, inferred from the input size and ``hidden_size``.

Elementwise operations make their operands equal in size (a constant broadcasts); a concatenation
has the sum of its parts; a layer's output is sized by whatever reads it; a state has the size of
its new value. Whatever is still open after that: states and outputs take ``hidden_size``; any
other open size is an error that asks for an annotation (``a_t[64]``, ``a_t[H]``).
"""

from __future__ import annotations

from .errors import Source
from .graph import Node, StepGraph


class _Sizes:
    def __init__(self, graph: StepGraph):
        self.src: Source = graph.source
        self.parent: dict[int, int] = {}
        self.value: dict[int, int] = {}
        self.members: dict[int, list[Node]] = {}
        self.sums: list[tuple[Node, list[Node], str]] = []

    def find(self, n: Node) -> int:
        k = id(n)
        if k not in self.parent:
            self.parent[k] = k
            self.members[k] = [n]
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def get(self, n: Node) -> int | None:
        return self.value.get(self.find(n))

    def union(self, a: Node, b: Node, conflict) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        va, vb = self.value.get(ra), self.value.get(rb)
        if va is not None and vb is not None and va != vb:
            raise conflict(va, vb)
        self.parent[rb] = ra
        self.members[ra].extend(self.members.pop(rb))
        if va is None and vb is not None:
            self.value[ra] = vb
        self.value.pop(rb, None)

    def set(self, n: Node, size: int, conflict) -> bool:
        r = self.find(n)
        have = self.value.get(r)
        if have is not None and have != size:
            raise conflict(have, size)
        self.value[r] = size
        return have is None


def infer_sizes(graph: StepGraph, input_size: int, hidden_size: int) -> None:
    """Set ``node.size`` on every node of ``graph``. Raises NotationError on a mismatch, or where a
    value the step needs has no size that can be inferred."""
    s = _Sizes(graph)
    src = graph.source

    def mismatch(node: Node, a: Node, b: Node):
        def err(va, vb):
            return src.error(f"size mismatch: `{a.label}` has {va} features and `{b.label}` has {vb}; "
                             f"`{node.attr}` needs equal sizes (or a constant)", node.span)
        return err

    s.set(graph.input, input_size, lambda *_: None)
    for n in graph.nodes:
        for (count, per_hidden), span, name in n.annotations:
            size = count * hidden_size if per_hidden else count
            s.set(n, size, lambda have, want, span=span, name=name: src.error(
                f"{name} is given {want} features here, but it has {have}", span))
        if n.op == "bin":
            a, b = n.args
            vectors = [x for x in (a, b) if not x.scalar]
            if len(vectors) == 2:
                s.union(a, b, mismatch(n, a, b))
            s.union(n, vectors[0], mismatch(n, n, vectors[0]))
        elif n.op in ("neg", "call"):
            s.union(n, n.args[0], mismatch(n, n, n.args[0]))
        elif n.op == "cat":
            s.sums.append((n, list(n.args), "concat"))
    for n in graph.nodes:
        if n.op == "dense":
            picks = [p for p in graph.nodes if p.op == "pick" and p.args[0] is n]
            if picks:
                s.sums.append((n, sorted(picks, key=lambda p: p.attr[0]), "layer"))
    for st in graph.states:
        def state_conflict(have, want, st=st):
            node = st.next
            return src.error(f"{node.label} has {want} features, but the state {st.prev.label} it becomes has "
                             f"{have}", node.def_span or node.span)
        s.union(st.prev, st.next, state_conflict)

    def propagate() -> None:
        changed = True
        while changed:
            changed = False
            for whole, parts, kind in s.sums:
                sizes = [s.get(p) for p in parts]
                total = s.get(whole)
                if all(v is not None for v in sizes):
                    got = sum(sizes)
                    changed |= s.set(whole, got, lambda have, want, w=whole, p=parts, z=sizes, k=kind: src.error(
                        _sum_message(w, p, z, have, k), w.span))
                elif total is not None and sum(v is None for v in sizes) == 1:
                    rest = total - sum(v for v in sizes if v is not None)
                    part = parts[sizes.index(None)]
                    if rest < 1:
                        raise src.error(f"`{whole.label}` has {total} features, which leaves none for "
                                        f"`{part.label}`", part.def_span or part.span)
                    changed |= s.set(part, rest, lambda *_: None)

    propagate()
    defaults = [st.prev for st in graph.states] + list(graph.outputs)
    for n in defaults:
        if s.get(n) is None:
            s.set(n, hidden_size, lambda *_: None)
            propagate()
    for n in graph.nodes:
        if n.scalar:
            continue
        n.size = s.get(n)
        if n.size is None and graph.is_live(n):
            blame = _blame(s, n, graph)
            name = blame.name.split(".")[-1] if blame.name else blame.text
            raise src.error(f"cannot infer the size of {blame.label}: nothing in the spec fixes it; give it "
                            f"where it is defined, e.g. `{name}[64]`, or `{name}[H]` for hidden_size",
                            blame.def_span or blame.span)


def _blame(s: _Sizes, n: Node, graph: StepGraph) -> Node:
    """The first named, live value of ``n``'s size class (the place an annotation would go)."""
    members = sorted(s.members[s.find(n)], key=lambda m: m.index)
    named = [m for m in members if m.name and m.def_span and graph.is_live(m)]
    return named[0] if named else n


def _sum_message(whole: Node, parts: list[Node], sizes: list[int], have: int, kind: str) -> str:
    shown = " + ".join(str(v) for v in sizes)
    if kind == "layer":
        return (f"the targets of layer {whole.attr.param} have {shown} = {sum(sizes)} features, but its output "
                f"has {have}")
    return f"the parts of `{whole.label}` have {shown} = {sum(sizes)} features, but it must have {have} here"
