"""Agents: A2C and PPO (on-policy, recurrent), registered by name for ``agent=NAME``."""

from .a2c import A2C
from .evaluation import evaluate_policy
from .on_policy import OnPolicyAgent
from .ppo import PPO

AGENTS: dict[str, type] = {"a2c": A2C, "ppo": PPO}

__all__ = ["A2C", "AGENTS", "OnPolicyAgent", "PPO", "evaluate_policy"]
