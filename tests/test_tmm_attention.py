"""The token memory machine's one-query attention: its hand-written backward against autograd."""

from __future__ import annotations

import math

import pytest
import torch

from rlmem.cores.tmm_attention import entry_attention


def reference(query, entries, valid, null_score, value_size):
    scores = (query @ entries.transpose(1, 2)).masked_fill(~valid.unsqueeze(1), -math.inf)
    weights = torch.softmax(torch.cat([scores, null_score], dim=-1), dim=-1)
    return weights[..., :-1] @ entries[..., :value_size], weights


def inputs(B=5, h=3, E=4, D=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(B, h, D, generator=g, dtype=torch.float64, requires_grad=True)
    entries = torch.randn(B, E, D, generator=g, dtype=torch.float64, requires_grad=True)
    null_score = torch.randn(B, h, 1, generator=g, dtype=torch.float64, requires_grad=True)
    valid = torch.rand(B, E, generator=g) < 0.6
    valid[0] = False  # a row with nothing valid reads only the null entry
    valid[1] = True
    return query, entries, valid, null_score


@pytest.mark.parametrize("value_size", [7, 4])
def test_entry_attention_matches_autograd(value_size):
    query, entries, valid, null_score = inputs()
    g = torch.Generator().manual_seed(1)
    mixed, weights = entry_attention(query, entries, valid, null_score, value_size)
    want_mixed, want_weights = reference(query, entries, valid, null_score, value_size)
    torch.testing.assert_close(mixed, want_mixed)
    torch.testing.assert_close(weights, want_weights)
    assert torch.all(mixed[0] == 0) and torch.all(weights[0, :, -1] == 1)
    # both outputs carry gradient (the readout uses the null weight)
    grad_mixed, grad_weights = torch.randn(mixed.shape, generator=g, dtype=torch.float64), torch.randn(
        weights.shape, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((mixed * grad_mixed).sum() + (weights * grad_weights).sum(), [query, entries, null_score])
    want = torch.autograd.grad((want_mixed * grad_mixed).sum() + (want_weights * grad_weights).sum(),
                               [query, entries, null_score])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(lambda q, e, n: entry_attention(q, e, valid, n, value_size),
                                    (query, entries, null_score))


def test_entry_attention_refuses_mismatched_sizes():
    query, entries, valid, null_score = inputs()
    with pytest.raises(ValueError, match="same D"):
        entry_attention(query[..., :5], entries, valid, null_score, 4)
    with pytest.raises(ValueError, match="value_size"):
        entry_attention(query, entries, valid, null_score, 8)
