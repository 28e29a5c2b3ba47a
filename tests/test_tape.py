"""The tape core: each step's input kept at its step index, read by content and position."""

from __future__ import annotations

import pytest
import torch

from dqn_fit import greedy_return_after_dqn

from rlmem.cores import make_core


def test_entries_are_the_inputs_at_their_step_indices_and_the_tape_wraps():
    N, T, B, F = 5, 12, 2, 3
    x = torch.randn(T, B, F, generator=torch.Generator().manual_seed(0))
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    starts[7, 1] = True                                    # row 1 starts a new episode at t = 7
    core = make_core("tape", F, slots=N, position_size=4)
    _, state, _ = core(x, core.initial_state(B), starts)
    for b, first in ((0, 0), (1, 7)):
        steps = list(range(first, T))                      # this episode's steps; the tape keeps the last N
        kept = steps[-N:]
        assert torch.equal(state["t"][b], torch.tensor(float(len(steps))))
        for step in kept:
            slot = (step - first) % N
            assert torch.equal(state["tokens"][b, slot], x[step, b])
            assert state["pos"][b, slot] == step - first and state["valid"][b, slot]
        assert int(state["valid"][b].sum()) == min(N, len(steps))


def test_one_position_score_per_step_reads_the_entry_seen_at_any_chosen_step():
    """Score slot 9 - t at step t (reciting 10 steps backwards from step 5): the read is that step's input."""
    N, T, B, F = 10, 10, 3, 4
    core = make_core("tape", F, slots=N, heads=1, position_size=4)
    with torch.no_grad():
        core.query.weight.zero_()
        core.query.bias.zero_()
        scores = torch.full((N, N), -10.0)
        for t in range(N):
            scores[t, (N - 1 - t) if t >= N // 2 else t] = 10.0
        core.slot_scores.weight.copy_(scores)
    x = torch.eye(F)[torch.randint(0, F, (T, B), generator=torch.Generator().manual_seed(1))]
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    y, _, _ = core(x, core.initial_state(B), starts)
    read = y[..., -F:]
    for t in range(N // 2, T):
        torch.testing.assert_close(read[t], x[N - 1 - t], rtol=0, atol=1e-6)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="addressing must be one of slot, sinusoidal"):
        make_core("tape", 3, addressing="relative")
    with pytest.raises(ValueError, match="position_size must be even"):
        make_core("tape", 3, position_size=5)


@pytest.mark.slow
def test_dqn_with_a_tape_repeats_the_previous_token_and_without_memory_does_not():
    task = ("repeat-previous", {"k": 3, "length": 16}, 20_000)
    assert greedy_return_after_dqn("tape", {"slots": 16}, *task) >= 0.9
    assert greedy_return_after_dqn("mlp", {"hidden_size": 32}, *task) <= 0.0
