"""Cores registered by name, so ``core=NAME`` on the command line picks one."""

from __future__ import annotations

import inspect
from typing import Callable, TypeVar

from .base import Core

CORES: dict[str, type[Core]] = {}

C = TypeVar("C", bound=type[Core])


def register_core(name: str) -> Callable[[C], C]:
    """Class decorator: make a core available as ``make_core(name, ...)`` and ``core=name``."""

    def wrap(cls: C) -> C:
        if name in CORES and CORES[name] is not cls:
            raise ValueError(f"core name {name!r} is already registered by {CORES[name].__name__}")
        CORES[name] = cls
        cls.registered_name = name
        return cls

    return wrap


def core_options(name: str) -> dict[str, object]:
    """The keyword options a registered core accepts, with their defaults."""
    cls = _lookup(name)
    params = inspect.signature(cls.__init__).parameters
    return {k: (p.default if p.default is not inspect.Parameter.empty else None)
            for k, p in params.items() if k not in ("self", "input_size") and p.kind == p.POSITIONAL_OR_KEYWORD}


def _lookup(name: str) -> type[Core]:
    if name not in CORES:
        raise ValueError(f"unknown core {name!r}; valid cores: {', '.join(sorted(CORES))}")
    return CORES[name]


def make_core(name: str, input_size: int, **options) -> Core:
    """Build the core registered as ``name`` for ``input_size`` features.

    Unknown names and unknown options are refused with the valid choices.
    """
    cls = _lookup(name)
    valid = core_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"core {name!r} has no option(s) {', '.join(unknown)}; "
                         f"valid options: {', '.join(sorted(valid))}")
    return cls(input_size, **options)
