"""Networks: observation encoders by space, action and Q heads, the memory torso, the actor-critic
and the Q-network."""

from .actor_critic import PolicyOutput, RecurrentActorCritic
from .network import RecurrentNetwork
from .q_network import QHead, QOutput, RecurrentQNetwork
from .distributions import ActionHead
from .encoders import UnsupportedSpaceError, encodable_space, make_encoder, observation_selector
from .torso import MemoryTorso
from .tree import to_torch, tree_map

#: The networks an agent may train, by the name checkpoints record (nothing else is ever rebuilt).
NETWORKS: dict[str, type] = {"RecurrentActorCritic": RecurrentActorCritic, "RecurrentQNetwork": RecurrentQNetwork}

__all__ = ["NETWORKS", "ActionHead", "MemoryTorso", "PolicyOutput", "QHead", "QOutput", "RecurrentActorCritic",
           "RecurrentNetwork", "RecurrentQNetwork",
           "UnsupportedSpaceError", "encodable_space", "make_encoder", "observation_selector", "to_torch",
           "tree_map"]
