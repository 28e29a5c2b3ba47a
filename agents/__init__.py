"""Agents: A2C and PPO (on-policy) and DQN with sequence replay (off-policy), all recurrent,
registered by name for ``agent=NAME``.

Every agent derives from :class:`BaseAgent` (acting carry, learn loop, optimizer, exact
``state_dict`` / ``load_state_dict``, the NaN guard) and names the network it trains
(``network_class``).
"""

from .a2c import A2C
from .base import BaseAgent, Carry, NonFiniteError
from .dqn import DQN
from .evaluation import evaluate_policy
from .memory_budget import BufferTooLargeError
from .off_policy import OffPolicyAgent
from .on_policy import OnPolicyAgent
from .ppo import PPO

AGENTS: dict[str, type[BaseAgent]] = {"a2c": A2C, "dqn": DQN, "ppo": PPO}

__all__ = ["A2C", "AGENTS", "DQN", "BaseAgent", "BufferTooLargeError", "Carry", "NonFiniteError", "OffPolicyAgent",
           "OnPolicyAgent", "PPO", "evaluate_policy"]
