"""Memory cores: one interface (:class:`Core`), many models, registered by name.

>>> from rlmem.cores import make_core
>>> core = make_core("gru", input_size=16, hidden_size=32)
>>> state = core.initial_state(batch_size=4)
"""

from .base import Core, Extras, InitialState, StepCore
from .registry import CORES, core_options, make_core, register_core
from .state import (
    State,
    allocate_like,
    assign_rows,
    cat_states,
    clone_state,
    detach_state,
    flatten_state,
    index_state,
    reset_state,
    stack_states,
    state_size,
    state_to,
    unflatten_state,
)

# Importing a core module registers it (one line per core).
from . import mlp  # noqa: E402,F401  isort: skip
from . import elman  # noqa: E402,F401  isort: skip
from . import gated  # noqa: E402,F401  isort: skip
from . import gru  # noqa: E402,F401  isort: skip
from . import lstm  # noqa: E402,F401  isort: skip
from . import ntm  # noqa: E402,F401  isort: skip
from . import tmm  # noqa: E402,F401  isort: skip
from . import notation  # noqa: E402,F401  isort: skip
from . import counts  # noqa: E402,F401  isort: skip
from . import tape  # noqa: E402,F401  isort: skip

__all__ = [
    "CORES", "Core", "Extras", "InitialState", "State", "StepCore", "allocate_like", "assign_rows",
    "cat_states", "clone_state", "core_options", "detach_state", "flatten_state", "index_state",
    "make_core", "register_core", "reset_state", "stack_states", "state_size", "state_to",
    "unflatten_state",
]
