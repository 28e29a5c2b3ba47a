"""Compile a step graph into straight-line PyTorch code.

Layout of the generated code:

- **Layers fused by operand.** A layer ``a|b --[M]->`` is ``M_a a + M_b b + bias``. All layers that
  read the same operand (``x_t``, ``h_{t-1}``, ``h_{t-1}*r_t``), whichever arrow they belong to,
  share one weight tensor, so each operand costs one matmul. Layers with the same input make one
  group; a group's members with the same elementwise activation get one activation call.
- **Work on the input alone runs once per chunk.** Whatever depends only on the input (the input's
  matmul with every layer's bias, and anything computed from it) is computed over ``[T, B, ...]``
  before the loop over time; the loop reads its ``[t]`` slice.
- **A step operand adds into the chunk's share.** When every group fed by a step operand reads that
  operand and otherwise only the input, the step computes ``addmm(input share[t], operand, W^T)``.

The result, :class:`CompiledSpec`, holds three functions compiled from generated source:
``run`` (the whole chunk, resets included), ``prepare`` and ``step`` (the :class:`StepCore` API).
"""

from __future__ import annotations

import linecache
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .codegen import generate
from .graph import StepGraph
from .lowering import Lowering, Site


@dataclass
class ParamView:
    """Where one spec parameter (``R``) lives: weight column blocks and bias rows in the tensors."""

    name: str
    activation: str | None
    out_size: int
    in_size: int
    line: int
    source: str
    blocks: list[tuple[str, int, int, int]]  # (tensor, first row, first column in the parameter, width)
    bias: tuple[str, int]  # (tensor, first row)


@dataclass
class CompiledSpec:
    """A spec compiled for one input size and ``hidden_size``."""

    graph: StepGraph
    input_size: int
    hidden_size: int
    output_size: int
    states: list[tuple[str, int, float]]  # (name, size, initial value)
    tensors: list[tuple[str, tuple[int, ...]]]  # parameter tensors, in argument order
    params: dict[str, ParamView]
    sites: list[Site]
    code: str
    run: Callable
    prepare: Callable
    step: Callable
    frontier_width: int

    def __deepcopy__(self, memo) -> "CompiledSpec":
        return self  # immutable: copies of a core (target networks) share it

    def __reduce__(self):
        # generated functions do not pickle; the spec's text compiles to the same thing again
        from . import compile_source

        return compile_source, (self.graph.source.text, self.input_size, self.hidden_size, self.graph.source.file)

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(shape) for _, shape in self.tensors)

    def gather(self, tensors: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each spec parameter's ``(weight [out, in], bias [out])`` read out of the storage
        ``tensors`` (parameters or their gradients); differentiable."""
        out = {}
        for name, view in self.params.items():
            blocks = sorted(view.blocks, key=lambda b: b[2])
            weight = torch.cat([tensors[t].narrow(0, row, view.out_size).narrow(1, 0, width)
                                for t, row, _, width in blocks], dim=1)
            t, row = view.bias
            out[name] = (weight, tensors[t].narrow(0, row, view.out_size))
        return out

    def scatter(self, values: dict[str, tuple[torch.Tensor, torch.Tensor]], tensors: dict[str, torch.Tensor]) -> None:
        """Write spec parameters ``{name: (weight, bias)}`` into the storage ``tensors`` in place."""
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise KeyError(f"no parameter(s) {', '.join(unknown)}; the spec has {', '.join(self.params)}")
        with torch.no_grad():
            for name, (weight, bias) in values.items():
                view = self.params[name]
                if tuple(weight.shape) != (view.out_size, view.in_size) or tuple(bias.shape) != (view.out_size,):
                    raise ValueError(f"{name} takes weight [{view.out_size}, {view.in_size}] and bias "
                                     f"[{view.out_size}], got {list(weight.shape)} and {list(bias.shape)}")
                for t, row, col, width in view.blocks:
                    tensors[t].narrow(0, row, view.out_size).copy_(weight[:, col:col + width])
                t, row = view.bias
                tensors[t].narrow(0, row, view.out_size).copy_(bias)


_COMPILED = 0


def compile_graph(graph: StepGraph, input_size: int, hidden_size: int) -> CompiledSpec:
    """Lower ``graph`` (sizes inferred) to generated code and compile it."""
    global _COMPILED
    low = Lowering(graph)
    outputs = [low.lower(o) for o in graph.outputs]
    nexts = [low.lower(s.next) for s in graph.states]
    code, tensor_args, width = generate(low, graph, outputs, nexts)
    _COMPILED += 1
    filename = f"<notation {graph.source.file} #{_COMPILED}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    namespace: dict = {"torch": torch, "F": F}
    exec(compile(code, filename, "exec"), namespace)  # noqa: S102  code generated from the parsed spec
    shapes = {}
    for site in low.sites:
        shapes[site.weight] = (site.rows, site.operand.size)
        if site.bias:
            shapes[site.bias] = (site.bias_rows,)
    params: dict[str, ParamView] = {}
    for n in graph.dense:
        grp = low.group_of[id(n)]
        blocks, col = [], 0
        for (site, offset), part in zip(grp.entries, grp.parts):
            blocks.append((site.weight, offset + grp.member_offset[id(n)], col, part.size))
            col += part.size
        bsite, _ = grp.entries[grp.bias_part]
        boff = next(b for g2, _, b in bsite.bias_entries if g2 is grp)
        info = n.attr
        params[info.param] = ParamView(info.param, info.activation, n.size, grp.source.size, info.line,
                                       grp.source.label, blocks, (bsite.bias, boff + grp.member_offset[id(n)]))
    return CompiledSpec(
        graph=graph, input_size=input_size, hidden_size=hidden_size,
        output_size=sum(o.size for o in graph.outputs),
        states=[(s.name, s.prev.size, s.init) for s in graph.states],
        tensors=[(t, shapes[t]) for t in tensor_args], params=params, sites=low.sites, code=code,
        run=namespace["run"], prepare=namespace["prepare"], step=namespace["step"], frontier_width=width)
