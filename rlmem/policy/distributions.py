"""Action distributions by action space, written for speed (no argument validation).

A head maps core features ``[T, B, H]`` to a distribution whose ``sample``/``mode`` return actions
shaped ``[T, B, *action_shape]`` and whose ``log_prob``/``entropy`` return ``[T, B]``.

- ``Discrete`` -> :class:`Categorical`
- ``MultiDiscrete`` -> :class:`MultiCategorical` (independent categoricals)
- ``MultiBinary`` -> :class:`Bernoulli` (independent bits)
- ``Box`` -> :class:`DiagGaussian` (state-independent log std, actions clipped to the bounds
  only when sent to the environment)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from .encoders import UnsupportedSpaceError


class Categorical:
    """Independent categoricals over the last dim of ``logits`` ``[..., n]``."""

    def __init__(self, logits: torch.Tensor):
        self.log_p = torch.log_softmax(logits, dim=-1)

    def sample(self) -> torch.Tensor:
        u = torch.rand_like(self.log_p).clamp_(1e-10, 1.0)
        return (self.log_p - torch.log(-torch.log(u))).argmax(dim=-1)  # Gumbel-max

    def mode(self) -> torch.Tensor:
        return self.log_p.argmax(dim=-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return self.log_p.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.log_p.exp() * self.log_p).sum(dim=-1)


class MultiCategorical:
    """Sum over components of independent categoricals (one logit block per component)."""

    def __init__(self, logits: torch.Tensor, nvec: list[int]):
        self.parts = [Categorical(chunk) for chunk in logits.split(nvec, dim=-1)]

    def sample(self) -> torch.Tensor:
        return torch.stack([p.sample() for p in self.parts], dim=-1)

    def mode(self) -> torch.Tensor:
        return torch.stack([p.mode() for p in self.parts], dim=-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return sum(p.log_prob(action[..., i]) for i, p in enumerate(self.parts))

    def entropy(self) -> torch.Tensor:
        return sum(p.entropy() for p in self.parts)


class Bernoulli:
    """Independent bits with ``logits`` ``[..., n]``; log prob and entropy summed over bits."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    def sample(self) -> torch.Tensor:
        return (torch.rand_like(self.logits) < torch.sigmoid(self.logits)).to(torch.int8)

    def mode(self) -> torch.Tensor:
        return (self.logits > 0).to(torch.int8)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits, action.float(), reduction="none").sum(-1)

    def entropy(self) -> torch.Tensor:
        p = torch.sigmoid(self.logits)
        return F.binary_cross_entropy_with_logits(self.logits, p, reduction="none").sum(-1)


class DiagGaussian:
    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor):
        self.mean, self.log_std = mean, log_std.expand_as(mean)

    def sample(self) -> torch.Tensor:
        return self.mean + torch.randn_like(self.mean) * self.log_std.exp()

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        z = (action - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(-1)


class ActionHead(nn.Module):
    """Linear map from core features to the distribution for ``space``."""

    def __init__(self, in_size: int, space: spaces.Space, init_gain: float = 0.01):
        super().__init__()
        self.space = space
        if isinstance(space, spaces.Discrete):
            self.kind, n_out = "categorical", int(space.n)
        elif isinstance(space, spaces.MultiDiscrete):
            if np.asarray(space.nvec).ndim != 1:
                raise UnsupportedSpaceError(f"MultiDiscrete actions must be 1-D, got nvec shape {np.shape(space.nvec)}")
            self.kind, self.nvec = "multicategorical", [int(n) for n in space.nvec]
            n_out = sum(self.nvec)
        elif isinstance(space, spaces.MultiBinary):
            if len(space.shape) != 1:
                raise UnsupportedSpaceError(f"MultiBinary actions must be 1-D, got shape {space.shape}")
            self.kind, n_out = "bernoulli", int(space.shape[0])
        elif isinstance(space, spaces.Box):
            if len(space.shape) != 1:
                raise UnsupportedSpaceError(f"Box actions must be 1-D, got shape {space.shape}")
            self.kind, n_out = "gaussian", int(space.shape[0])
            self.log_std = nn.Parameter(torch.zeros(n_out))
        else:
            raise UnsupportedSpaceError(
                f"cannot act in action space {space}: rlmem supports Discrete, MultiDiscrete, "
                f"MultiBinary and 1-D Box actions")
        self.linear = nn.Linear(in_size, n_out)
        nn.init.orthogonal_(self.linear.weight, init_gain)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: torch.Tensor):
        out = self.linear(features)
        if self.kind == "categorical":
            return Categorical(out)
        if self.kind == "multicategorical":
            return MultiCategorical(out, self.nvec)
        if self.kind == "bernoulli":
            return Bernoulli(out)
        return DiagGaussian(out, self.log_std)

    def to_env(self, action: torch.Tensor) -> np.ndarray:
        """Actions as the environment takes them (numpy; Box actions clipped to the bounds)."""
        a = action.detach().cpu().numpy()
        if self.kind == "gaussian":
            a = np.clip(a, self.space.low, self.space.high).astype(self.space.dtype, copy=False)
        return a
