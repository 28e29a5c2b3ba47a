"""The counts core: exact per-episode counts of every input feature, one-hot on their levels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dqn_fit import greedy_return_after_dqn

from rlmem.cores import make_core


def test_counts_are_exact_since_each_episode_start_and_read_out_one_hot():
    g = torch.Generator().manual_seed(0)
    T, B, Fx, levels = 12, 3, 5, 8
    x = F.one_hot(torch.randint(0, Fx, (T, B), generator=g), Fx).float()
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    starts[5, 1] = True
    core = make_core("counts", Fx, levels=levels)
    y, state, _ = core(x, core.initial_state(B), starts)
    want = torch.zeros(B, Fx)
    for t in range(T):
        want = torch.where(starts[t].unsqueeze(-1), torch.zeros_like(want), want) + x[t]
        assert torch.equal(y[t, :, :Fx], x[t])                                     # the step's input
        levels_t = y[t, :, Fx:].view(B, Fx, levels)
        assert torch.equal(levels_t, F.one_hot(want.long().clamp(max=levels - 1), levels).float())
    assert torch.equal(state["n"], want)


def test_a_count_past_the_last_level_stays_on_it():
    core = make_core("counts", 1, levels=4)
    y, _, _ = core(torch.ones(10, 1, 1), core.initial_state(1), torch.zeros(10, 1, dtype=torch.bool))
    assert torch.equal(y[-1, 0, 1:], torch.tensor([0.0, 0.0, 0.0, 1.0]))


def test_levels_must_be_at_least_two():
    with pytest.raises(ValueError, match="levels must be an integer >= 2"):
        make_core("counts", 3, levels=1)


@pytest.mark.slow
def test_dqn_with_counts_learns_to_count_and_without_memory_does_not():
    task = ("count-recall", {"length": 12, "max_count": 4}, 40_000)
    assert greedy_return_after_dqn("counts", {}, *task) >= 0.6
    assert greedy_return_after_dqn("mlp", {"hidden_size": 32}, *task) <= 0.0
