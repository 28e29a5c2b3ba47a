"""Layout and lowering: the step graph's layers grouped by input and fused by operand into weight
tensors ("sites"), and every value of the step as a :class:`Val` of the generated code, marked
``pre`` (computed once per chunk over ``[T, B, ...]``) or ``step`` (inside the loop over time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .graph import FUNCTIONS, Node, StepGraph

_ORDER = {"const": 0, "pre": 1, "step": 2}
_ELEMENTWISE = set(FUNCTIONS) - {"softmax"}


# ---------------------------------------------------------------------------- layout
@dataclass(eq=False)
class Group:
    """Layers (members) that read the same input; ``parts`` are the operands of that input."""

    source: Node
    members: list[Node]
    parts: list[Node]
    first: int
    rows: int = 0
    member_offset: dict[int, int] = field(default_factory=dict)  # id(member) -> row within the group
    entries: list = field(default_factory=list)  # (site, row offset in the site) per part
    bias_part: int = 0


@dataclass(eq=False)
class Site:
    """One weight tensor: the rows of every group that reads ``operand``."""

    operand: Node
    index: int
    entries: list = field(default_factory=list)  # (group, part index, row offset)
    rows: int = 0
    bias_entries: list = field(default_factory=list)  # (group, row offset in the site, offset in bias)
    bias_rows: int = 0
    addmm: bool = False
    phase: str = "step"

    @property
    def weight(self) -> str:
        return f"W{self.index}"

    @property
    def bias(self) -> str | None:
        return f"b{self.index}" if self.bias_rows else None

    @property
    def full_bias(self) -> bool:
        return self.bias_rows == self.rows


@dataclass(eq=False)
class Val:
    """A value of the generated code. ``kind``: input state const linear addmm narrow bin neg act cat
    bias_expand bias_vec."""

    kind: str
    args: tuple = ()
    attr: object = None
    phase: str = "step"
    width: int = 0
    name: str | None = None


# ---------------------------------------------------------------------------- lowering
class Lowering:
    def __init__(self, graph: StepGraph):
        self.g = graph
        self.vals: list[Val] = []
        self.low: dict[int, Val] = {}
        self.phase: dict[int, str] = {}
        for n in graph.nodes:  # creation order is a topological order
            if n.op == "const":
                self.phase[id(n)] = "const"
            elif n.op == "input":
                self.phase[id(n)] = "pre"
            elif n.op == "prev":
                self.phase[id(n)] = "step"
            else:
                self.phase[id(n)] = max((self.phase[id(a)] for a in n.args), key=_ORDER.__getitem__)
        self.state_index = {id(s.prev): i for i, s in enumerate(graph.states)}
        self.groups, self.group_of, self.sites = self._layout()
        self.products: dict[int, Val] = {}

    # -------------------------------------------------------------- layout of the layers
    def _layout(self):
        groups: dict[int, Group] = {}
        for n in self.g.dense:
            src = n.args[0]
            if id(src) not in groups:
                parts = list(src.args) if src.op == "cat" else [src]
                groups[id(src)] = Group(src, [], parts, first=n.index)
            groups[id(src)].members.append(n)
        ordered = list(groups.values())
        step_order: dict[int, int] = {}
        for grp in ordered:
            for p in grp.parts:
                if self.phase[id(p)] == "step":
                    step_order.setdefault(id(p), len(step_order))

        def key(grp: Group):
            steps = [p for p in grp.parts if self.phase[id(p)] == "step"]
            return (step_order[id(steps[0])] if len(steps) == 1 else len(step_order), grp.first)

        ordered.sort(key=key)
        group_of: dict[int, Group] = {}
        sites: dict[int, Site] = {}
        site_list: list[Site] = []
        for grp in ordered:
            # members with the same elementwise activation side by side: one call for all of them
            grp.members.sort(key=lambda m: (m.attr.activation or "", m.index))
            offset = 0
            for m in grp.members:
                grp.member_offset[id(m)] = offset
                offset += m.size
                group_of[id(m)] = grp
            grp.rows = offset
            pre = [j for j, p in enumerate(grp.parts) if self.phase[id(p)] == "pre"]
            grp.bias_part = pre[0] if pre else 0
            for j, p in enumerate(grp.parts):
                if id(p) not in sites:
                    site = Site(p, len(site_list), phase=self.phase[id(p)])
                    sites[id(p)] = site
                    site_list.append(site)
                site = sites[id(p)]
                site.entries.append((grp, j, site.rows))
                grp.entries.append((site, site.rows))
                if j == grp.bias_part:
                    site.bias_entries.append((grp, site.rows, site.bias_rows))
                    site.bias_rows += grp.rows
                site.rows += grp.rows
        for site in site_list:
            if site.phase == "step":
                site.addmm = all(sum(self.phase[id(p)] == "step" for p in grp.parts) == 1
                                 for grp, _, _ in site.entries)
        return ordered, group_of, site_list

    # -------------------------------------------------------------- values
    def val(self, kind: str, args: tuple = (), attr=None, width: int = 0, phase: str | None = None,
            name: str | None = None) -> Val:
        if phase is None:
            phase = max((a.phase for a in args), key=_ORDER.__getitem__, default="const")
        v = Val(kind, args, attr, phase, width, name)
        self.vals.append(v)
        return v

    def narrow(self, v: Val, start: int, width: int) -> Val:
        if start == 0 and width == v.width:
            return v
        if v.kind == "narrow":
            return self.narrow(v.args[0], v.attr[0] + start, width)
        return self.val("narrow", (v,), (start, width), width)

    def lower(self, n: Node) -> Val:
        if id(n) in self.low:
            return self.low[id(n)]
        if n.op == "input":
            v = self.val("input", width=n.size, phase="pre", name=n.name)
        elif n.op == "prev":
            v = self.val("state", attr=self.state_index[id(n)], width=n.size, phase="step", name=n.name)
        elif n.op == "const":
            v = self.val("const", attr=float(n.attr), phase="const")
        elif n.op == "bin":
            v = self.val("bin", tuple(self.lower(a) for a in n.args), n.attr, n.size)
        elif n.op == "neg":
            v = self.val("neg", (self.lower(n.args[0]),), width=n.size)
        elif n.op == "call":
            v = self.val("act", (self.lower(n.args[0]),), n.attr, n.size)
        elif n.op == "cat":
            v = self.val("cat", tuple(self.lower(a) for a in n.args), width=n.size)
        elif n.op == "dense":
            self.lower_group(self.group_of[id(n)])
            v = self.low[id(n)]
        elif n.op == "pick":
            whole = self.lower(n.args[0])
            dense = n.args[0]
            picks = sorted((p for p in self.g.nodes if p.op == "pick" and p.args[0] is dense), key=lambda p: p.attr[0])
            start = sum(p.size for p in picks[: n.attr[0]])
            v = self.narrow(whole, start, n.size)
        else:
            raise TypeError(n.op)
        if v.name is None and n.name:
            v.name = n.name
        self.low[id(n)] = v
        return v

    def product(self, site: Site) -> Val:
        if site.index in self.products:
            return self.products[site.index]
        operand = self.lower(site.operand)
        if site.addmm:
            v = self.val("addmm", (self.addend(site), operand), site, site.rows, phase="step")
        else:
            v = self.val("linear", (operand,), site, site.rows)
        self.products[site.index] = v
        return v

    def piece(self, grp: Group, j: int) -> Val:
        site, offset = grp.entries[j]
        return self.narrow(self.product(site), offset, grp.rows)

    def addend(self, site: Site) -> Val:
        """What the step adds to ``operand @ W^T`` at an addmm site: each group's input share
        (already holding its bias) or, for a group that reads nothing else, its bias."""
        pieces = []
        for grp, j, _ in site.entries:
            pre = [k for k, p in enumerate(grp.parts) if k != j]
            if pre:
                total = self.piece(grp, pre[0])
                for k in pre[1:]:
                    total = self.val("bin", (total, self.piece(grp, k)), "+", grp.rows)
                pieces.append(total)
            else:
                boffset = next(b for g2, _, b in site.bias_entries if g2 is grp)
                pieces.append(("bias", boffset, grp.rows))
        if all(isinstance(p, tuple) for p in pieces) and site.full_bias:
            return self.val("bias_vec", attr=site, width=site.rows, phase="const")
        if all(isinstance(p, Val) and p.kind in ("narrow", "linear") for p in pieces):
            bases = {id(p.args[0] if p.kind == "narrow" else p) for p in pieces}
            if len(bases) == 1:
                base = pieces[0].args[0] if pieces[0].kind == "narrow" else pieces[0]
                starts = [p.attr[0] if p.kind == "narrow" else 0 for p in pieces]
                widths = [p.width for p in pieces]
                if all(starts[i] + widths[i] == starts[i + 1] for i in range(len(pieces) - 1)):
                    return self.narrow(base, starts[0], sum(widths))
        vals = [p if isinstance(p, Val) else self.val("bias_expand", attr=(site, p[1]), width=p[2], phase="pre")
                for p in pieces]
        return self.val("cat", tuple(vals), width=site.rows, phase="pre")

    def lower_group(self, grp: Group) -> None:
        step_parts = [j for j, p in enumerate(grp.parts) if self.phase[id(p)] == "step"]
        if len(step_parts) == 1 and grp.entries[step_parts[0]][0].addmm:
            pre = self.piece(grp, step_parts[0])
        else:
            pre = self.piece(grp, 0)
            for j in range(1, len(grp.parts)):
                pre = self.val("bin", (pre, self.piece(grp, j)), "+", grp.rows)
        i = 0
        while i < len(grp.members):
            act = grp.members[i].attr.activation
            k = i + 1
            if act is None or act in _ELEMENTWISE:
                while k < len(grp.members) and grp.members[k].attr.activation == act:
                    k += 1
            start = grp.member_offset[id(grp.members[i])]
            width = sum(m.size for m in grp.members[i:k])
            run = self.narrow(pre, start, width)
            if act is not None:
                run = self.val("act", (run,), act, width)
            for m in grp.members[i:k]:
                self.low[id(m)] = self.narrow(run, grp.member_offset[id(m)] - start, m.size)
                if self.low[id(m)].name is None and m.name:
                    self.low[id(m)].name = m.name
            i = k
