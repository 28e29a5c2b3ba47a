"""The token memory machine's grouped readout (runs of rows against one table per group) against
the row-by-row readout, and its parts: grouping, order counts by sorting, the windowed order basis."""

from __future__ import annotations

import pytest
import torch

from rlmem.cores import make_core
from rlmem.cores.tmm_layout import (group_entries, nearest_levels, older_salient_count, order_basis, order_read,
                                    order_scores)


def runs_minibatch(core, n_envs: int = 6, steps: int = 48, run: int = 16, reset_at: int = 20):
    """States and inputs of runs of ``run`` consecutive steps of every env, as PPO's
    ``minibatch_seq_len`` lays them out; env 1 starts an episode at ``reset_at``."""
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (steps, n_envs)), 4).float()
    state, states = core.initial_state(n_envs), []
    with torch.no_grad():
        for t in range(steps):
            starts = torch.zeros(1, n_envs, dtype=torch.bool)
            starts[0, 1] = t == reset_at
            states.append(state)
            _, state, _ = core(x[t:t + 1], state, starts)
    cols = [(t, b) for b in range(n_envs) for t0 in range(8, steps - run + 1, run) for t in range(t0, t0 + run)]
    st = {k: torch.stack([states[t][k][b] for t, b in cols]) for k in states[0]}
    return st, torch.stack([x[t, b] for t, b in cols])


def readout_results(core, st, xs, group_rows):
    core.group_rows = group_rows
    core.zero_grad()
    xs = xs.clone().requires_grad_(True)
    y, _, extras = core.last_step(xs, st)
    loss = (y * torch.linspace(-1, 1, y.shape[-1])).sum() + extras["aux_loss"]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in core.named_parameters() if p.grad is not None}
    return y.detach(), extras, xs.grad, grads


@pytest.mark.parametrize("options", [{}, {"order_gates": 0}, {"timing": "learned"}, {"order_levels": 6},
                                     {"prediction_readout": "shared"}, {"order_read": True},
                                     {"order_read": True, "order_levels": 6}])
def test_grouped_readout_equals_the_row_by_row_readout(options):
    torch.manual_seed(0)
    core = make_core("tmm", input_size=4, hidden_size=32, slots=32, **options)
    st, xs = runs_minibatch(core)
    calls = []
    grouped = core.entry_groups

    def spy(*args):
        out = grouped(*args)
        calls.append(out is not None)
        return out

    core.entry_groups = spy
    y1, ex1, gx1, gp1 = readout_results(core, st, xs, group_rows=16)
    assert calls == [True, True]  # the policy's readout and the prediction's
    calls.clear()
    y0, ex0, gx0, gp0 = readout_results(core, st, xs, group_rows=0)
    assert calls == [False, False]
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ex1["aux_loss"], ex0["aux_loss"], rtol=1e-5, atol=1e-6)
    for name in ("attention", "attention_current", "attention_entropy"):
        torch.testing.assert_close(ex1[name], ex0[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx1, gx0, rtol=1e-4, atol=1e-6)
    assert gp1.keys() == gp0.keys()
    for name in gp0:
        torch.testing.assert_close(gp1[name], gp0[name], rtol=1e-4, atol=1e-5 * gp0[name].abs().max().item())


def test_shuffled_rows_and_rotation_timing_are_read_row_by_row():
    torch.manual_seed(1)
    core = make_core("tmm", input_size=4, hidden_size=32, slots=32)
    st, xs = runs_minibatch(core)
    r, extra, index = core.consolidate(st["slot_state"], st["slot_x"], st["last_state"], xs.requires_grad_(True),
                                       ~st["valid"].any(-1))
    valid = torch.cat([st["valid"], torch.ones_like(st["valid"][:, :1])], dim=1)
    groups = group_entries(index, valid, 16, max_width=2 * index.shape[1])
    assert groups is not None and groups.width <= 32 + 2 * 16
    shuffled = torch.randperm(index.shape[0], generator=torch.Generator().manual_seed(0))
    assert group_entries(index[shuffled], valid[shuffled], 16, max_width=2 * index.shape[1]) is None
    rotation = make_core("tmm", input_size=4, hidden_size=32, slots=32, timing="rotation")
    age = torch.zeros(index.shape, dtype=torch.float32)
    assert rotation.entry_groups(index, valid, 16) is None


def test_a_row_holding_one_entry_twice_is_read_row_by_row():
    index = torch.tensor([[0, 1, 1], [0, 1, 2]] * 8)
    valid = torch.ones(16, 3, dtype=torch.bool)
    assert group_entries(index, valid, 8, max_width=6) is None
    assert group_entries(torch.tensor([[0, 1, 2], [0, 1, 3]] * 8), valid, 8, max_width=6) is not None


def test_older_salient_count_sums_the_strictly_older_valid_entries():
    torch.manual_seed(2)
    B, P, G = 5, 9, 2
    age = torch.randint(0, 6, (B, P)).float()  # ties on purpose
    valid = torch.rand(B, P) > 0.3
    salience = torch.rand(B, P, G, requires_grad=True)
    count = older_salient_count(age, valid, salience)
    older = (age.unsqueeze(-2) > age.unsqueeze(-1)) & valid.unsqueeze(-2)
    expected = older.float() @ salience
    torch.testing.assert_close(count[valid], expected[valid])  # an invalid entry's count is never read
    g = torch.randn(B, P, G) * valid.unsqueeze(-1)
    (grad,) = torch.autograd.grad((count * g).sum(), salience)
    (expected_grad,) = torch.autograd.grad((expected * g).sum(), salience)
    torch.testing.assert_close(grad, expected_grad)


def assert_same_values_and_gradients(out, expected, inputs):
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), inputs)
    expected_grads = torch.autograd.grad((expected * g).sum(), inputs)
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("levels,scale", [(12, None), (6, 5 / 11.0)])
def test_windowed_order_scores_and_reads_equal_the_whole_basis(levels, scale):
    torch.manual_seed(3)
    B, h, P, G = 4, 3, 7, 2
    grid = torch.arange(levels).float() if scale is None else torch.linspace(0.0, 11.0, levels)
    count = (torch.rand(B, P, G) * 12.5 - 0.5).requires_grad_(True)   # beyond both ends too
    q = torch.randn(B, h, G * levels, requires_grad=True)
    assert_same_values_and_gradients(order_scores(q, *nearest_levels(count, levels, scale)),
                                     q @ order_basis(count, grid, scale).transpose(1, 2), (q, count))
    w = torch.softmax(torch.randn(B, h, P), dim=-1).requires_grad_(True)
    assert_same_values_and_gradients(order_read(w, *nearest_levels(count, levels, scale), levels),
                                     w @ order_basis(count, grid, scale),
                                     (w, count))


def test_one_hot_tokens_with_the_same_state_get_different_fingerprints():
    core = make_core("tmm", input_size=16, hidden_size=8)
    s = torch.randn(1, 8).expand(16, 8)
    keys = core.fingerprint(s.contiguous(), torch.eye(16))
    assert keys.unique().numel() == 16


def test_ppo_minibatches_of_runs_are_read_in_groups():
    from rlmem.overrides import compose_config
    from rlmem.train import build_agent, build_env, policy_kwargs
    from rlmem.agents import AGENTS

    cfg = compose_config(["core=tmm", "core.slots=16", "core.hidden_size=32", "env=repeat-previous", "env.n_envs=8",
                          "agent.n_steps=32", "agent.batch_size=128", "agent.minibatch_seq_len=16", "agent.n_epochs=1"])
    torch.manual_seed(0)
    env = build_env(cfg.env, 0)
    policy = AGENTS["ppo"].network_class(**policy_kwargs(cfg, env))
    agent = build_agent(cfg, env, policy, torch.device("cpu"))
    agent.collect_rollout()
    used = []
    grouped = policy.core.entry_groups
    policy.core.entry_groups = lambda *args: used.append(grouped(*args)) or used[-1]
    metrics = agent.update()
    # per minibatch the policy's readout, then the prediction's (whose rows may share too little early on)
    assert len(used) == 4 and all(layout is not None for layout in used[0::2])
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def test_order_read_gives_the_readout_the_counts_and_is_off_by_default():
    plain = make_core("tmm", input_size=4, hidden_size=32, slots=8)
    reading = make_core("tmm", input_size=4, hidden_size=32, slots=8, order_read=True)
    assert reading.out.in_features == plain.out.in_features + 4 * reading.order_size
    no_order = make_core("tmm", input_size=4, hidden_size=32, slots=8, order_gates=0, order_read=True)
    assert not no_order.order_read and no_order.out.in_features == make_core(
        "tmm", input_size=4, hidden_size=32, slots=8, order_gates=0).out.in_features
