"""Timing signals for the token memory machine: how a slot's features learn how old it is.

A timing signal takes per-slot timing vectors ``u`` ``[..., N, D]`` (learned from each slot's
consolidation) and the slots' ages ``[..., N]`` (steps since the slot was written, float; leading
dimensions broadcast) and returns vectors of the broadcast shape that depend on the age:

- :class:`SinusoidalTiming`: adds a fixed sinusoidal embedding of the age (no parameters).
- :class:`LearnedTiming`: adds a learned embedding of the age's bucket (exact for young slots,
  logarithmic buckets for old ones, clipped at the last bucket).
- :class:`RotationTiming`: rotates pairs of features by a learned angle per step times the age,
  i.e. applies the ``age``-th power of a learned rotation (an orthogonal, norm-preserving map).
"""

from __future__ import annotations

import torch
from torch import nn


def sinusoid_frequencies(pairs: int, base: float = 10000.0) -> torch.Tensor:
    """Geometric frequencies ``base ** (-k / pairs)`` for ``k < pairs``: ``[pairs]``."""
    return base ** (-torch.arange(pairs, dtype=torch.float32) / max(pairs, 1))


def sinusoidal_embedding(age: torch.Tensor, size: int) -> torch.Tensor:
    """``age`` [...] (float) -> ``[..., size]``: sin and cos of the age at geometric frequencies."""
    freqs = sinusoid_frequencies(size // 2).to(age.device)
    angles = age.unsqueeze(-1) * freqs
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
    if size % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)
    return emb


class Timing(nn.Module):
    """Base: ``forward(u [..., N, D], age [..., N]) -> [..., N, D]``."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, u: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    #: whether the signal is ``u + e(age)`` (:meth:`age_term`)
    additive = False

    def age_term(self, age: torch.Tensor) -> torch.Tensor:
        """``e(age)`` [..., D] of an additive signal."""
        raise NotImplementedError


class SinusoidalTiming(Timing):
    """``u + sin/cos(age * w_k)``: parameter-free; distinguishes ages at every scale up to ~10^4."""

    def forward(self, u: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        return u + sinusoidal_embedding(age, self.size)

    additive = True

    def age_term(self, age: torch.Tensor) -> torch.Tensor:
        return sinusoidal_embedding(age, self.size)


def age_bucket(age: torch.Tensor, exact: int = 16, per_octave: int = 4, buckets: int = 64) -> torch.Tensor:
    """Ages [...] -> long bucket ids [...]: ``age`` itself below ``exact``, then ``per_octave``
    buckets per doubling, clipped to ``buckets - 1``."""
    a = age.clamp(min=0.0)
    log_part = exact + torch.floor(per_octave * torch.log2(a.clamp(min=float(exact)) / exact))
    ids = torch.where(a < exact, torch.floor(a), log_part)
    return ids.clamp(max=buckets - 1).long()


class LearnedTiming(Timing):
    """``u + E[bucket(age)]`` with a learned table ``E`` ``[buckets, D]`` (see :func:`age_bucket`),
    started at the sinusoidal embedding of each bucket's first age."""

    def __init__(self, size: int, buckets: int = 64, exact: int = 16, per_octave: int = 4):
        super().__init__(size)
        self.buckets, self.exact, self.per_octave = buckets, exact, per_octave
        ids = torch.arange(buckets, dtype=torch.float32)
        first_age = torch.where(ids < exact, ids, exact * 2.0 ** ((ids - exact) / per_octave))
        self.table = nn.Embedding(buckets, size)
        with torch.no_grad():
            self.table.weight.copy_(sinusoidal_embedding(first_age, size))

    def forward(self, u: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        return u + self.age_term(age)

    additive = True

    def age_term(self, age: torch.Tensor) -> torch.Tensor:
        return self.table(age_bucket(age, self.exact, self.per_octave, self.buckets))


class RotationTiming(Timing):
    """``R^age u``: ``R`` rotates feature pair ``(u_k, u_{k + D/2})`` by a learned angle ``w_k``, so
    the age-th power rotates it by ``w_k * age``. Angles start at the sinusoidal frequencies.

    A query that is not rotated (the current token, age 0) then scores a slot by content *and* age,
    as in rotary position embeddings, and the rotation never changes a feature vector's norm.
    """

    def __init__(self, size: int):
        super().__init__(size)
        if size % 2:
            raise ValueError(f"rotation timing needs an even feature size, got {size}")
        self.log_angle = nn.Parameter(sinusoid_frequencies(size // 2).log())

    def forward(self, u: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        angles = age.unsqueeze(-1) * self.log_angle.exp()  # [..., N, D/2]
        cos, sin = angles.cos(), angles.sin()
        a, b = u.chunk(2, dim=-1)
        return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


TIMINGS: dict[str, type[Timing]] = {
    "sinusoidal": SinusoidalTiming,
    "learned": LearnedTiming,
    "rotation": RotationTiming,
}


def make_timing(kind: str, size: int) -> Timing:
    """The timing signal named ``kind`` for features of width ``size``."""
    if kind not in TIMINGS:
        raise ValueError(f"unknown timing {kind!r}; valid timings: {', '.join(TIMINGS)}")
    return TIMINGS[kind](size)


__all__ = ["LearnedTiming", "RotationTiming", "SinusoidalTiming", "TIMINGS", "Timing", "age_bucket",
           "make_timing", "sinusoidal_embedding", "sinusoid_frequencies"]
