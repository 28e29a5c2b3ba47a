"""``python -m rlmem.notation check FILE``: parse a spec, infer its sizes and show what it compiles to.

    python -m rlmem.notation check ./my_cell.arrow --input-size 16 --hidden-size 64
    python -m rlmem.notation check gru_textbook       # a built-in spec
    python -m rlmem.notation list                     # the built-in specs

A spec that does not compile prints ``error: file:line:col: message``, the line and a caret, and
exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from . import CompiledSpec, NotationError, builtin_specs, compile_spec, read_spec
from .syntax import time_name


def describe(spec: CompiledSpec) -> str:
    """The report ``check`` prints: equations, sizes, state, parameters, matmuls, generated code."""
    g = spec.graph
    program = g.program
    out = [f"spec {g.source.file}: input_size {spec.input_size}, hidden_size {spec.hidden_size}", "", "equations"]
    for name, macro in program.macros.items():
        params = ", ".join(p.show() for p in macro.params)
        out.append(f"  macro {name}({params}) -> {', '.join(r.show() for r in macro.returns)}")
        out += [f"  {eq.line:4d}    {eq.show()}" for eq in macro.body]
    out += [f"  {eq.line:4d}  {eq.show()}" for eq in program.equations]
    if program.returns is not None:
        out.append(f"  {program.return_span.line:4d}  return {', '.join(r.show() for r in program.returns)}")

    out += ["", "sizes"]
    rows = []
    for n in g.nodes:
        if not n.name or not g.is_live(n):
            continue
        what = "input" if n.op == "input" else "state" if n.op == "prev" else ""
        rows.append((n.name, str(n.size), what))
    width = max(len(r[0]) for r in rows)
    out += [f"  {a:<{width}}  {b:>6}  {c}".rstrip() for a, b, c in rows]

    out += ["", "state"]
    if not spec.states:
        out.append("  (none: the output depends on the current input only)")
    for name, size, init in spec.states:
        out.append(f"  {name}: [B, {size}], initial value {init:g}, read as {time_name(name, -1)}")
    outs = ", ".join(o.label for o in g.outputs)
    out += ["", f"output  {outs}: [T, B, {spec.output_size}]"]

    out += ["", "parameters (weight [out, in] and bias [out] of each layer)"]
    width = max([len(n) for n in spec.params] + [1])
    for name, view in spec.params.items():
        out.append(f"  {name:<{width}}  [{view.out_size}, {view.in_size}] + [{view.out_size}]  "
                   f"{view.activation or 'linear':<7}  line {view.line}, input {view.source}")
    storage = ", ".join(f"{t} {list(shape)}" for t, shape in spec.tensors)
    out.append(f"  total {spec.parameter_count:,} values, stored fused as {storage}")

    out += ["", "matmuls (one per operand; layers that read it share it)"]
    for site in sorted(spec.sites, key=lambda s: (s.phase != "pre", s.index)):
        layers = ", ".join(m.attr.param for grp, _, _ in site.entries for m in grp.members)
        when = "once per chunk, over [T, B]" if site.phase == "pre" else "every step"
        how = " (adds the chunk's share: addmm)" if site.addmm else ""
        out.append(f"  {site.weight} [{site.rows}, {site.operand.size}]  {site.operand.label}  ->  {layers};  "
                   f"{when}{how}")
    unused = g.unused()
    if unused:
        out += ["", "unused (no output or state needs them; their lines are not compiled)"]
        out += [f"  {n.name}  (line {n.def_span.line if n.def_span else '?'})" for n in unused]
    out += ["", "generated code", ""]
    out += [f"    {line}".rstrip() for line in spec.code.splitlines()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlmem.notation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="parse a spec, infer sizes, print the compiled core")
    check.add_argument("spec", help="a .arrow file or the name of a built-in spec")
    check.add_argument("--input-size", type=int, default=128,
                       help="features the core receives (rlmem's policy feeds it policy.embed_size, 128)")
    check.add_argument("--hidden-size", type=int, default=128, help="core.hidden_size")
    sub.add_parser("list", help="the built-in specs")
    args = p.parse_args(argv)
    if args.command == "list":
        for name in builtin_specs():
            first = read_spec(name)[1].splitlines()[0].lstrip("# ")
            print(f"{name:<14} {first}")
        return 0
    try:
        if args.input_size < 1 or args.hidden_size < 1:
            raise ValueError("--input-size and --hidden-size must be positive")
        spec = compile_spec(args.spec, args.input_size, args.hidden_size)
    except (NotationError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(describe(spec))
    return 0
