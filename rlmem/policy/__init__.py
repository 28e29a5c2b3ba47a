"""Policies: observation encoders by space, action heads, the memory torso, actor-critic."""

from .actor_critic import PolicyOutput, RecurrentActorCritic
from .distributions import ActionHead
from .encoders import UnsupportedSpaceError, encodable_space, make_encoder, observation_selector
from .torso import MemoryTorso
from .tree import to_torch, tree_map

#: The networks an agent may train, by the name checkpoints record (nothing else is ever rebuilt).
NETWORKS: dict[str, type] = {"RecurrentActorCritic": RecurrentActorCritic}

__all__ = ["NETWORKS", "ActionHead", "MemoryTorso", "PolicyOutput", "RecurrentActorCritic",
           "UnsupportedSpaceError", "encodable_space", "make_encoder", "observation_selector", "to_torch",
           "tree_map"]
