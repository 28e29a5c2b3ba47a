"""The arrow notation: cells written as arrows, compiled to straight-line PyTorch.

>>> from rlmem.notation import compile_spec
>>> spec = compile_spec("gru_textbook", input_size=8, hidden_size=16)
>>> spec.states, spec.output_size
([('h', 16, 0.0)], 16)

``core=notation core.spec=...`` trains a compiled spec as a core (:mod:`rlmem.cores.notation`);
``python -m rlmem.notation check FILE`` shows what a spec compiles to. :func:`evaluate` runs lines
such as the GAE recursion over recorded sequences.
"""

from __future__ import annotations

from functools import lru_cache

from .compiler import CompiledSpec, compile_graph
from .errors import NotationError, Source, Span
from .graph import FUNCTIONS, build_graph
from .parser import parse
from .sequences import evaluate
from .sizes import infer_sizes
from .specs import builtin_specs, read_spec


def compile_source(text: str, input_size: int, hidden_size: int, file: str = "<spec>") -> CompiledSpec:
    """Parse, infer sizes and compile spec ``text`` for ``input_size`` features and ``hidden_size``.
    Raises :class:`NotationError` (a ValueError) pointing at the line and column at fault."""
    if input_size < 1 or hidden_size < 1:
        raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
    return _compile(text, int(input_size), int(hidden_size), file)


@lru_cache(maxsize=64)
def _compile(text: str, input_size: int, hidden_size: int, file: str) -> CompiledSpec:
    graph = build_graph(parse(text, file))
    infer_sizes(graph, input_size, hidden_size)
    return compile_graph(graph, input_size, hidden_size)


def compile_spec(spec: str, input_size: int, hidden_size: int) -> CompiledSpec:
    """:func:`compile_source` for a built-in name, a file path or spec text (see :func:`read_spec`)."""
    file, text = read_spec(spec)
    return compile_source(text, input_size, hidden_size, file)


__all__ = ["CompiledSpec", "FUNCTIONS", "NotationError", "Source", "Span", "builtin_specs", "compile_source",
           "compile_spec", "evaluate", "parse", "read_spec"]
