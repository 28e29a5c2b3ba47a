"""One-query attention over a few entries per row, with a hand-written backward.

The token memory machine's readout attends, per batch row and head, from one query over the
``E = N + 1`` entries of that row (its slots and the current token) and a learned null entry.
Written with autograd, that is five batched products forward and ten backward, each over
thousands of tiny matrices; most of their time is per-matrix overhead, and the products whose
inner dimension is the number of heads (the gradients of the entries) are the slowest.
:func:`entry_attention` scores with one product, mixes with one, and its backward needs three:
the gradients that reach the entries through the scores and through the mixing are summed in a
single product of inner dimension ``2 * heads``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def entry_attention(query: torch.Tensor, entries: torch.Tensor, valid: torch.Tensor, null_score: torch.Tensor,
                    value_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention of ``query`` [B, h, D] over ``entries`` [B, E, D] (scores ``query . entry``,
    no scaling) and one extra null entry of score ``null_score`` [B, h, 1] whose value is zero.

    ``valid`` [B, E] bool masks entries out; the null entry is always there, so a row with no
    valid entry reads nothing. The values are the first ``value_size`` features of the entries.

    Returns (``mixed`` [B, h, value_size], the weighted sum of the values; ``weights``
    [B, h, E + 1], the attention weights, the null entry last). Gradients reach ``query``,
    ``entries`` and ``null_score``, through both outputs.
    """
    if entries.shape[-1] != query.shape[-1] or not 0 < value_size <= entries.shape[-1]:
        raise ValueError(f"query [B, h, D] and entries [B, E, D] need the same D >= value_size; "
                         f"got {tuple(query.shape)}, {tuple(entries.shape)}, value_size={value_size}")
    return _EntryAttention.apply(query, entries, valid, null_score, int(value_size))


class _EntryAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, entries, valid, null_score, value_size):
        E = entries.shape[1]
        scores = torch.bmm(query, entries.transpose(1, 2)).masked_fill_(~valid.unsqueeze(1), -math.inf)
        weights = torch.softmax(torch.cat([scores, null_score], dim=-1), dim=-1)     # [B, h, E + 1]
        mixed = torch.bmm(weights[..., :E], entries[..., :value_size])
        ctx.save_for_backward(query, entries, weights)
        ctx.value_size = value_size
        return mixed, weights

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_mixed, grad_weights):
        query, entries, weights = ctx.saved_tensors
        E, D, Dv = entries.shape[1], entries.shape[2], ctx.value_size
        if grad_mixed is None:
            grad_mixed = torch.zeros_like(query[..., :Dv])
        dweights = torch.zeros_like(weights) if grad_weights is None else grad_weights.clone()
        dweights[..., :E] += torch.bmm(grad_mixed, entries[..., :Dv].transpose(1, 2))
        dscores = weights * (dweights - (dweights * weights).sum(-1, keepdim=True))      # softmax backward
        ds, w = dscores[..., :E], weights[..., :E]
        grad_query = torch.bmm(ds, entries)
        # d entries = ds^T query (through the scores) + w^T grad_mixed (through the values), one product
        left = torch.cat([ds, w], dim=1).transpose(1, 2)                                   # [B, E, 2h]
        right = torch.cat([query, F.pad(grad_mixed, (0, D - Dv))], dim=1)                  # [B, 2h, D]
        grad_entries = torch.bmm(left, right)
        return grad_query, grad_entries, None, dscores[..., E:], None
