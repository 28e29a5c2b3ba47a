"""Policies: observation encoders by space, action heads, the memory torso, actor-critic."""

from .actor_critic import PolicyOutput, RecurrentActorCritic
from .distributions import ActionHead
from .encoders import UnsupportedSpaceError, make_encoder
from .torso import MemoryTorso
from .tree import to_torch, tree_map

__all__ = ["ActionHead", "MemoryTorso", "PolicyOutput", "RecurrentActorCritic", "UnsupportedSpaceError",
           "make_encoder", "to_torch", "tree_map"]
