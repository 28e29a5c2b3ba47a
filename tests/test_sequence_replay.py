"""Sequence replay: what was stored comes back exactly, sequences overlap and wrap as configured,
final-observation rows follow truncations, and the sum tree samples by priority."""

from __future__ import annotations

import pytest
import torch
from gymnasium import spaces

from rlmem.agents.sequence_replay import SequenceReplayBuffer
from rlmem.agents.sum_tree import SumTree


def make_buffer(per_row_state=False, capacity=12, prioritized=False) -> SequenceReplayBuffer:
    return SequenceReplayBuffer(spaces.Box(-1e9, 1e9, (1,)), spaces.Discrete(3), {"h": torch.zeros(2, 3)},
                                n_envs=2, capacity=capacity, seq_len=4, overlap=2, per_row_state=per_row_state,
                                prioritized=prioritized)


def row(t: int, final=(False, False), envs=(0, 1)) -> dict:
    """Row ``t`` of each env in ``envs``: obs = 100 env + t, state h = obs, action = t % 3."""
    e = torch.tensor(envs)
    ident = (100 * e + t).float()
    k = len(envs)
    no = torch.zeros(k, dtype=torch.bool)
    return {"obs": ident.unsqueeze(1), "action": torch.full((k,), t % 3), "reward": ident / 10,
            "starts": torch.full((k,), t == 0), "terminated": no, "truncated": no,
            "final": torch.tensor(final[:k]), "state": {"h": ident.unsqueeze(1).expand(k, 3).clone()}}


def stored_obs(buf: SequenceReplayBuffer) -> list[list[float]]:
    return [buf.storage["obs"][s, :, 0].tolist() for s in range(buf.filled)]


def test_sequences_overlap_and_hold_exactly_what_was_stored():
    buf = make_buffer(per_row_state=True, capacity=40)
    for t in range(8):
        buf.add(row(t))
        buf.cut()
    # rows 0-3, then 2-5, then 4-7 of each env (seq_len 4, overlap 2), env 0 and 1 side by side
    assert stored_obs(buf) == [[0, 1, 2, 3], [100, 101, 102, 103], [2, 3, 4, 5], [102, 103, 104, 105],
                               [4, 5, 6, 7], [104, 105, 106, 107]]
    assert torch.equal(buf.storage["state"]["h"][2, :, 0], torch.tensor([2.0, 3, 4, 5]))
    assert torch.equal(buf.storage["action"][2], torch.tensor([2, 0, 1, 2]))
    assert buf.storage["starts"][0].tolist() == [True, False, False, False]
    assert buf.steps_added == 16
    batch, slots, weights = buf.sample(5, torch.Generator().manual_seed(0))
    assert batch["obs"].shape == (4, 5, 1) and batch["state"]["h"].shape == (4, 5, 3)
    for i, s in enumerate(slots.tolist()):
        assert torch.equal(batch["obs"][:, i], buf.storage["obs"][s]) and torch.equal(weights, torch.ones(5))


def test_only_the_first_state_is_kept_without_per_row_state_and_the_ring_wraps():
    buf = make_buffer(per_row_state=False, capacity=12)  # 3 slots
    for t in range(10):
        buf.add(row(t))
        buf.cut()
    # 8 sequences were cut (starts 0, 2, 4, 6 for each env); the 3 slots hold the newest, oldest overwritten
    assert buf.filled == 3 and buf.write == 8 % 3
    seqs = {tuple(s) for s in stored_obs(buf)}
    assert seqs == {(104.0, 105, 106, 107), (6.0, 7, 8, 9), (106.0, 107, 108, 109)}
    first_states = buf.storage["state"]["h"][:, 0].tolist()
    assert sorted(first_states) == [6.0, 104.0, 106.0]


def test_a_final_row_after_a_truncation_shifts_only_that_env():
    buf = make_buffer(capacity=40)
    for t in range(3):
        buf.add(row(t))
        if t == 1:  # env 1's episode is cut by a time limit after step 1: its final observation follows
            final = row(50, envs=(1,))
            final["final"] = torch.tensor([True])
            buf.add(final, torch.tensor([1]))
        buf.cut()
    assert buf.steps_added == 6  # the final row is not an env step
    assert stored_obs(buf) == [[100, 101, 150, 102]]  # env 1 reached 4 rows first
    assert buf.storage["final"][0].tolist() == [False, False, True, False]
    buf.add(row(3))
    buf.cut()
    assert stored_obs(buf)[1] == [0, 1, 2, 3]


def test_state_dict_round_trip():
    buf = make_buffer(prioritized=True)
    for t in range(7):
        buf.add(row(t))
        buf.cut()
    buf.update_priorities(torch.tensor([0, 1]), torch.tensor([[1.0, 5.0], [2.0, 0.0]]), torch.ones(2, 2, dtype=torch.bool))
    other = make_buffer(prioritized=True)
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.tree.tree, buf.tree.tree) and torch.equal(other.cursor, buf.cursor)
    assert torch.equal(other.staging["obs"], buf.staging["obs"]) and other.filled == buf.filled


def test_priorities_mix_max_and_mean_of_td_errors():
    buf = make_buffer(prioritized=True, capacity=40)
    for t in range(6):
        buf.add(row(t))
        buf.cut()
    td = torch.tensor([[1.0, 0.0], [3.0, 0.0], [8.0, 0.0]])
    mask = torch.tensor([[True, True], [True, True], [False, True]])  # row 2 of slot 0 masked out
    buf.update_priorities(torch.tensor([0, 1]), td, mask)
    want = (0.9 * 3.0 + 0.1 * 2.0 + 1e-6) ** 0.9
    assert abs(float(buf.tree.priorities(torch.tensor([0]))) - want) < 1e-6  # the TD errors are float32
    assert abs(float(buf.tree.priorities(torch.tensor([1]))) - 1e-6 ** 0.9) < 1e-12


def test_sum_tree_samples_in_proportion_to_priority():
    tree = SumTree(5)
    tree.update(torch.tensor([0, 1, 2, 3, 4]), torch.tensor([1.0, 0.0, 3.0, 0.0, 6.0]))
    assert float(tree.total) == 10.0
    assert tree.find(torch.tensor([0.0, 0.99, 1.0, 3.99, 4.0, 9.99])).tolist() == [0, 0, 2, 2, 4, 4]
    draws = tree.sample(10_000, torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=5).float() / 10_000
    assert counts[1] == 0 and counts[3] == 0
    assert torch.allclose(counts, torch.tensor([0.1, 0.0, 0.3, 0.0, 0.6]), atol=0.02)
    tree.update(torch.tensor([4, 4]), torch.tensor([2.0, 0.5]))  # the last value wins
    assert float(tree.total) == 4.5


def test_a_buffer_larger_than_the_free_memory_is_refused_before_it_is_allocated(monkeypatch, tmp_path):
    from rlmem.agents import BufferTooLargeError, memory_budget
    from rlmem.train import train
    from rlmem.validation import ConfigError

    monkeypatch.setattr(memory_budget, "available_bytes", lambda device: 64 * 2**20)     # 64 MiB free
    state = {"tokens": torch.zeros(1, 128, 256)}                                           # 128 kB a row
    with pytest.raises(BufferTooLargeError, match=r"the replay buffer \(2,500 sequences of 40 rows, .* bytes a "
                                                  r"row, 131,072 of them the stored core state\) needs 12\.\d GiB, "
                                                  r"more than the 64 MiB of memory available; lower agent\.buffer_size or the size "
                                                  r"of the core's state \(e\.g\. core\.slots\)"):
        SequenceReplayBuffer(spaces.Discrete(3), spaces.Discrete(2), state, n_envs=4, capacity=100_000, seq_len=40,
                             overlap=20, per_row_state=True)
    SequenceReplayBuffer(spaces.Discrete(3), spaces.Discrete(2), state, n_envs=1, capacity=80, seq_len=40,
                         overlap=20, per_row_state=True)                    # 2 sequences and the staging: 21 MiB
    with pytest.raises(BufferTooLargeError, match=r"needs 32\d MiB"):  # state once a sequence, but every row's in staging
        SequenceReplayBuffer(spaces.Discrete(3), spaces.Discrete(2), state, n_envs=64, capacity=80, seq_len=40,
                             overlap=20, per_row_state=False)               # 64 envs x 41 staged rows x 128 kB
    with pytest.raises(ConfigError, match=r"^agent=dqn: the replay buffer .* lower agent\.buffer_size or the size"):
        train(["agent=dqn", "core=tmm", "core.slots=64", "env=repeat-previous", "progress=false", "total_steps=1000",
               "eval_episodes=0"], run_dir=tmp_path)                     # 35 kB of tmm state a row
