"""Checkpoints: the trained policy with what is needed to rebuild it, plus the optimizer state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .policy import RecurrentActorCritic

FORMAT = "rlmem-checkpoint-1"


def save_checkpoint(path: str | Path, policy_kwargs: dict[str, Any], agent_state: dict[str, Any],
                    config: dict[str, Any] | None = None) -> Path:
    """Write ``{policy_kwargs, agent_state, config}`` to ``path``.

    ``policy_kwargs`` are the :class:`RecurrentActorCritic` constructor arguments (spaces included).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "policy_kwargs": policy_kwargs, "agent": agent_state, "config": config}, path)
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict. Checkpoints hold pickled Gymnasium spaces: load only trusted files."""
    ckpt = torch.load(Path(path), map_location=device, weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not an rlmem checkpoint")
    return ckpt


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> RecurrentActorCritic:
    """Rebuild the trained policy from a checkpoint, ready for ``predict``."""
    ckpt = load_checkpoint(path, device)
    policy = RecurrentActorCritic(**ckpt["policy_kwargs"]).to(device)
    policy.load_state_dict(ckpt["agent"]["policy"])
    policy.eval()
    return policy
