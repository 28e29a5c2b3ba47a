"""Python source for a lowered step: ``run`` (a whole chunk, resets inside), ``prepare`` and ``step``
(the :class:`~rlmem.cores.base.StepCore` API). Every value is a local variable; the loop body is
straight-line torch calls with no lookups by name."""

from __future__ import annotations

import keyword
import re

from .graph import StepGraph, reachable
from .lowering import Lowering, Site, Val

_TORCH_FN = {"sigmoid": "torch.sigmoid({})", "tanh": "torch.tanh({})", "relu": "torch.relu({})",
             "exp": "torch.exp({})", "softmax": "torch.softmax({}, -1)"}


class _Names:
    RESERVED = {"torch", "F", "T", "t", "x", "starts", "flags", "need_state", "m", "ys", "xt"}

    def __init__(self):
        self.used: set[str] = set(self.RESERVED)

    def fresh(self, wanted: str) -> str:
        base = re.sub(r"\W", "_", wanted.replace("_{t-1}", "_prev").replace("{", "").replace("}", "")
                      .replace("-", "m").replace("+", "p").replace(".", "_"))
        if not base or base[0].isdigit():
            base = "v_" + base
        if keyword.iskeyword(base):
            base += "_"
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name


def generate(low: Lowering, graph: StepGraph, outputs: list[Val], nexts: list[Val]):
    vals = low.vals
    names = _Names()
    state_names = [names.fresh(f"{s.name}_prev") for s in graph.states]
    init_names = [names.fresh(f"{s.name}_init") for s in graph.states]
    tensor_args: list[str] = []
    for site in low.sites:
        tensor_args.append(site.weight)
        names.used.add(site.weight)
        if site.bias:
            tensor_args.append(site.bias)
            names.used.add(site.bias)
    seq_names: dict[int, str] = {}  # pre values over the chunk
    step_names: dict[int, str] = {}  # values inside a step (frontier slices included)
    counter = iter(range(10 ** 9))
    for v in vals:
        if v.kind == "const" or v.kind == "bias_vec":
            continue
        base = v.name or f"v{next(counter)}"
        if v.kind == "state":
            step_names[id(v)] = state_names[v.attr]
        elif v.kind == "input":
            seq_names[id(v)] = "x"
            step_names[id(v)] = names.fresh(base)
        elif v.phase == "pre":
            seq_names[id(v)] = names.fresh(base + "_seq")
            step_names[id(v)] = names.fresh(base)
        else:
            step_names[id(v)] = names.fresh(base)

    setup: list[str] = []
    full_bias: dict[int, str] = {}
    for site in low.sites:
        if site.addmm:
            setup.append(f"{site.weight}_T = {site.weight}.t()")
        elif site.bias and not site.full_bias:  # bias rows only for some groups: zeros elsewhere
            pieces, pos = [], 0
            for grp, row, boff in site.bias_entries:
                grp_rows = grp.rows
                if row > pos:
                    pieces.append(f"{site.bias}.new_zeros({row - pos})")
                pieces.append(f"{site.bias}.narrow(0, {boff}, {grp_rows})")
                pos = row + grp_rows
            if pos < site.rows:
                pieces.append(f"{site.bias}.new_zeros({site.rows - pos})")
            full_bias[site.index] = f"{site.bias}_full"
            setup.append(f"{site.bias}_full = torch.cat(({', '.join(pieces)},))")

    def ref(v: Val, where: str) -> str:
        if v.kind == "const":
            return repr(v.attr)
        if v.kind == "bias_vec":
            return v.attr.bias
        return seq_names[id(v)] if where == "pre" else step_names[id(v)]

    def expr(v: Val, where: str) -> str:
        a = [ref(x, where) for x in v.args]
        if v.kind == "linear":
            site: Site = v.attr
            bias = full_bias.get(site.index, site.bias)
            return f"F.linear({a[0]}, {site.weight}{', ' + bias if bias else ''})"
        if v.kind == "addmm":
            return f"torch.addmm({a[0]}, {a[1]}, {v.attr.weight}_T)"
        if v.kind == "narrow":
            return f"{a[0]}.narrow(-1, {v.attr[0]}, {v.attr[1]})"
        if v.kind == "bin":
            return f"{a[0]} {v.attr} {a[1]}"
        if v.kind == "neg":
            return f"-{a[0]}"
        if v.kind == "act":
            return _TORCH_FN[v.attr].format(a[0])
        if v.kind == "cat":
            return f"torch.cat(({', '.join(a)},), -1)"
        if v.kind == "bias_expand":
            site, boff = v.attr
            return f"{site.bias}.narrow(0, {boff}, {v.width}).expand(x.shape[0], x.shape[1], {v.width})"
        raise TypeError(v.kind)

    def comment(v: Val) -> str:
        if v.kind in ("linear", "addmm"):
            site: Site = v.attr
            layers = ", ".join(m.attr.param for g, _, _ in site.entries for m in g.members)
            return f"  # {site.operand.label} -> {layers}"
        return ""

    full = reachable(outputs + nexts)
    out_only = reachable(outputs)
    pre_lines = [f"{seq_names[id(v)]} = {expr(v, 'pre')}{comment(v)}" for v in vals
                 if v.phase == "pre" and v.kind != "input" and id(v) in full]
    read_in_step = {id(a) for u in vals if u.phase == "step" and id(u) in full for a in u.args}
    frontier = [v for v in vals if v.phase == "pre" and id(v) in full and (
        id(v) in read_in_step or any(v is o for o in nexts))]
    pre_outputs = {id(o) for o in outputs if o.phase == "pre"}
    # the step API also hands out the outputs computed once per chunk
    api_frontier = frontier + [o for o in outputs if id(o) in pre_outputs and o not in frontier]

    def computed(keep: set[int]) -> list[str]:
        return [f"{step_names[id(v)]} = {expr(v, 'step')}{comment(v)}" for v in vals
                if v.phase == "step" and v.kind != "state" and id(v) in keep]

    def body(keep: set[int]) -> list[str]:
        lines = [f"{step_names[id(v)]} = {seq_names[id(v)]}[t]" for v in frontier if id(v) in keep]
        return lines + computed(keep)

    step_outputs = [o for o in outputs if id(o) not in pre_outputs]
    full_body, last_body = body(full), body(out_only)
    prune = len(last_body) < len(full_body) or len(frontier) != len([v for v in frontier if id(v) in out_only])

    def out_expr(lists: list[str]) -> str:
        parts, k = [], 0
        for o in outputs:
            if id(o) in pre_outputs:
                parts.append(seq_names[id(o)] if o.kind != "input" else "x")
            else:
                parts.append(f"torch.stack({lists[k]})")
                k += 1
        return parts[0] if len(parts) == 1 else f"torch.cat(({', '.join(parts)},), -1)"

    lists = [f"ys{i}" for i in range(len(step_outputs))]
    sig_states = ", ".join(state_names + init_names + tensor_args)
    src: list[str] = [f"def run(x, starts, flags, need_state, {sig_states}):",
                      "    # x [T, B, F], starts [T, B]; state and initial values [B, size] / [size]"]
    src += [f"    {line}" for line in setup + pre_lines]
    src.append("    m = starts.unsqueeze(-1)")
    for name in lists:
        src.append(f"    {name} = []")
    steps = "x.shape[0] - (0 if need_state else 1)" if prune else "x.shape[0]"
    src.append(f"    for t in range({steps}):")
    resets = [f"{s} = torch.where(m[t], {i}, {s})" for s, i in zip(state_names, init_names)]
    if resets:
        src.append("        if flags is None or flags[t]:")
        src += [f"            {r}" for r in resets]
    src += [f"        {line}" for line in full_body]
    for name, o in zip(lists, step_outputs):
        src.append(f"        {name}.append({step_names[id(o)]})")
    if state_names:
        src.append(f"        {', '.join(state_names)} = {', '.join(_ref_next(n, step_names) for n in nexts)}")
    if prune:
        src.append("    if not need_state:  # the last step, without the work only a next step needs")
        src.append("        t = x.shape[0] - 1")
        if resets:
            src.append("        if flags is None or flags[t]:")
            src += [f"            {r}" for r in resets]
        src += [f"        {line}" for line in last_body]
        for name, o in zip(lists, step_outputs):
            src.append(f"        {name}.append({step_names[id(o)]})")
        src.append(f"        return {out_expr(lists)}, None")
    src.append(f"    return {out_expr(lists)}, ({', '.join(state_names)}{',' if state_names else ''})")

    # the StepCore API: prepare (once per chunk) and step (one step, state already reset)
    tensors = ", ".join(tensor_args)
    src += ["", "", f"def prepare(x, {tensors}):", "    # x [T, B, F] -> [T, B, K]: the inputs every step reads"]
    src += [f"    {line}" for line in setup + pre_lines]
    if api_frontier:
        seqs = [seq_names[id(v)] for v in api_frontier]
        src.append(f"    return {seqs[0]}" if len(seqs) == 1 else f"    return torch.cat(({', '.join(seqs)},), -1)")
    else:
        src.append("    return x.narrow(-1, 0, 0)")
    src += ["", "", f"def step(xt, {', '.join(state_names + tensor_args)}):",
            "    # xt [B, K]: one step of prepare's output; the states [B, size]"]
    src += [f"    {line}" for line in setup]
    offset = 0
    for v in api_frontier:
        src.append(f"    {step_names[id(v)]} = xt.narrow(-1, {offset}, {v.width})")
        offset += v.width
    src += [f"    {line}" for line in computed(full)]
    ys = [f"{step_names[id(o)]}" for o in outputs]
    y = ys[0] if len(ys) == 1 else f"torch.cat(({', '.join(ys)},), -1)"
    src.append(f"    return {y}, ({', '.join(_ref_next(n, step_names) for n in nexts)}{',' if nexts else ''})")
    width = sum(v.width for v in api_frontier)
    return "\n".join(src) + "\n", tensor_args, width


def _ref_next(v: Val, step_names: dict[int, str]) -> str:
    if v.kind == "const":
        return repr(v.attr)
    return step_names[id(v)]
