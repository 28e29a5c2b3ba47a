"""Memory addressing, reading and writing of the Neural Turing Machine (Graves et al., 2014).

Pure functions, vectorized over the batch ``B`` and the heads ``K``. A weighting is a distribution
over the ``N`` memory rows: ``w`` [B, K, N], non-negative, summing to 1 over N. The memory is
``[B, N, M]``.

Addressing runs four stages (section 3.3 of the paper)::

    w_c = softmax(beta * cos(k, M_i))          content focus
    w_g = g * w_c + (1 - g) * w_prev           interpolation
    w~  = circular_conv(w_g, s)                location shift
    w   = w~^gamma / sum(w~^gamma)             sharpening
"""

from __future__ import annotations

import torch

COSINE_EPS = 1e-6


def content_weights(memory: torch.Tensor, keys: torch.Tensor, beta: torch.Tensor,
                    eps: float = COSINE_EPS) -> torch.Tensor:
    """Content focus: softmax over rows of ``beta`` times the cosine similarity of key and row.

    The norms are smoothed, ``|v| -> sqrt(|v|^2 + eps)``: a nearly empty row (the memory starts
    near zero) then has a similarity near 0 and a gradient of at most about ``1 / sqrt(eps)``,
    where the exact cosine of a tiny vector has a gradient that grows as ``1 / |v|``.

    Args:
        memory: ``[B, N, M]``.
        keys: ``[B, K, M]``, one key per head.
        beta: ``[B, K]`` key strengths (>= 0).
        eps: the smoothing of the norms.

    Returns:
        ``[B, K, N]`` weightings.
    """
    dots = torch.einsum("bkm,bnm->bkn", keys, memory)
    key_norm = (keys.pow(2).sum(-1) + eps).sqrt().unsqueeze(-1)  # [B, K, 1]
    row_norm = (memory.pow(2).sum(-1) + eps).sqrt().unsqueeze(-2)  # [B, 1, N]
    cosine = dots / (key_norm * row_norm)
    return torch.softmax(beta.unsqueeze(-1) * cosine, dim=-1)


def interpolate(w_content: torch.Tensor, w_prev: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``g * w_content + (1 - g) * w_prev``; ``gate`` [B, K] in [0, 1], weightings [B, K, N]."""
    g = gate.unsqueeze(-1)
    return g * w_content + (1.0 - g) * w_prev


def shift_offsets(shift_range: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The offsets ``-shift_range .. shift_range`` that the entries of a shift distribution stand for."""
    return torch.arange(-shift_range, shift_range + 1, device=device)


def circular_shift(w: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Circular convolution of a weighting with a shift distribution.

    ``out[i] = sum_j shift[j] * w[(i - o_j) mod N]`` with offsets ``o_j = -S .. S``: all mass on
    offset +1 moves the weighting one row forward (row N-1 wraps to row 0).

    Args:
        w: ``[B, K, N]``.
        shift: ``[B, K, 2S + 1]``, a distribution over the offsets ``-S .. S`` (``2S + 1 <= N``).

    Returns:
        ``[B, K, N]``.
    """
    n, width = w.shape[-1], shift.shape[-1]
    if width % 2 != 1 or width > n:
        raise ValueError(f"a shift distribution needs an odd width <= N = {n}, got {width}")
    offsets = shift_offsets(width // 2, w.device)
    rows = torch.arange(n, device=w.device)
    source = (rows.unsqueeze(-1) - offsets) % n  # [N, 2S+1]: the row each offset reads from
    shifted = w[..., source]  # [B, K, N, 2S+1]
    return (shifted * shift.unsqueeze(-2)).sum(dim=-1)


def sharpen(w: torch.Tensor, gamma: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``w^gamma`` renormalized over rows; ``gamma`` [B, K] >= 1 undoes the blur of the shift.

    ``eps`` keeps ``0^gamma`` differentiable in gamma (``log 0``) without moving a weighting.
    """
    powered = (w + eps).pow(gamma.unsqueeze(-1))
    return powered / powered.sum(dim=-1, keepdim=True)


def address(memory: torch.Tensor, keys: torch.Tensor, beta: torch.Tensor, gate: torch.Tensor,
            shift: torch.Tensor, gamma: torch.Tensor, w_prev: torch.Tensor) -> torch.Tensor:
    """The full addressing of ``K`` heads: content, interpolation, shift, sharpening.

    Shapes: ``memory`` [B, N, M], ``keys`` [B, K, M], ``beta``/``gate``/``gamma`` [B, K],
    ``shift`` [B, K, 2S + 1], ``w_prev`` [B, K, N] -> ``[B, K, N]``.
    """
    w = content_weights(memory, keys, beta)
    w = interpolate(w, w_prev, gate)
    w = circular_shift(w, shift)
    return sharpen(w, gamma)


def read(memory: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Read vectors ``r_k = sum_i w_k[i] M[i]``: ``memory`` [B, N, M], ``w`` [B, R, N] -> ``[B, R, M]``."""
    return torch.einsum("brn,bnm->brm", w, memory)


def write(memory: torch.Tensor, w: torch.Tensor, erase: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """Erase, then add: ``M <- M * prod_k (1 - w_k e_k^T) + sum_k w_k a_k^T``.

    With several write heads, all erasures act before all additions (the order of additions does
    not matter), as in the paper.

    Args:
        memory: ``[B, N, M]``.
        w: ``[B, W, N]`` write weightings.
        erase: ``[B, W, M]`` erase vectors in [0, 1].
        add: ``[B, W, M]`` add vectors.

    Returns:
        ``[B, N, M]``.
    """
    if w.shape[1] == 1:  # the common single head, without the product over heads
        keep = 1.0 - w[:, 0].unsqueeze(-1) * erase[:, 0].unsqueeze(-2)
    else:
        keep = (1.0 - w.unsqueeze(-1) * erase.unsqueeze(-2)).prod(dim=1)
    return memory * keep + torch.einsum("bwn,bwm->bnm", w, add)
