"""The token memory machine: no backpropagation through time, the write policy, the seed's failure
case, timing signals, and a short PPO run."""

from __future__ import annotations

import math

import pytest
import torch

from rlmem.agents import PPO, evaluate_policy
from rlmem.cores import make_core, stack_states
from rlmem.cores.tmm import least_surprising_slot, oldest_slot, token_distance
from rlmem.cores.tmm_timing import RotationTiming, age_bucket, make_timing
from rlmem.envs import make_batched
from rlmem.policy import RecurrentActorCritic

F, H = 6, 16


def build(seed: int = 0, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    return make_core("tmm", F, **{"hidden_size": H, "slots": 4, **options})


def no_starts(T: int, B: int) -> torch.Tensor:
    return torch.zeros(T, B, dtype=torch.bool)


def tokens() -> dict[str, torch.Tensor]:
    """A background token "0" and two tokens orthogonal to it (cosine distance 1)."""
    zero = torch.ones(F)
    x = torch.tensor([1.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    y = torch.tensor([0.0, 0.0, 1.0, -1.0, 0.0, 0.0])
    return {"0": zero, "x": x, "y": y}


def stream(spec: str) -> torch.Tensor:
    """``"0 0 x y 0"`` -> [T, 1, F]."""
    table = tokens()
    return torch.stack([table[s] for s in spec.split()]).unsqueeze(1)


def stored_tokens(state) -> list[torch.Tensor]:
    return [state["slot_x"][0, i] for i in range(state["valid"].shape[1]) if state["valid"][0, i]]


def holds(state, token: torch.Tensor) -> bool:
    return any(torch.allclose(t, token) for t in stored_tokens(state))


# ---------------------------------------------------------------- no BPTT
def test_loss_reaches_the_cell_through_a_slot_written_40_steps_ago():
    core = build(surprise="novelty")
    T = 50
    x = torch.randn(1, 1, F).expand(T, 2, F).clone()  # a constant stream ...
    x[10] = torch.randn(2, F)                           # ... with one surprise at step 10
    with torch.no_grad():
        _, state, extras = core(x, core.initial_state(2), no_starts(T, 2))
    slot = int(extras["written_slot"][10, 0])
    assert slot >= 0 and state["valid"][0, slot] and state["age"][0, slot] == T - 1 - 10
    assert all(not v.requires_grad for v in state.values()), "everything stored is detached"

    # One training step (a chunk of length 1) from the stored state.
    leaf = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in state.items()}
    y, _, ex = core(x[-1:], leaf, no_starts(1, 2))
    loss = y.pow(2).sum() + ex["aux_loss"]
    cell = list(core.cell.parameters())
    grads = torch.autograd.grad(loss, [leaf["slot_x"], leaf["slot_state"], *cell])
    g_x, g_s = grads[0][0, slot], grads[1][0, slot]
    assert g_x.abs().sum() > 0 and g_s.abs().sum() > 0, "the old slot's stored (s, x) feed the loss"
    assert all(g.abs().sum() > 0 for g in grads[2:])

    # The cell's gradient changes with what the 40-step-old slot holds: it flows through that slot.
    changed = {k: v.clone() for k, v in leaf.items()}
    changed["slot_x"] = changed["slot_x"].detach().clone()
    changed["slot_x"][0, slot] += 1.0
    y2, _, ex2 = core(x[-1:], changed, no_starts(1, 2))
    grads2 = torch.autograd.grad(y2.pow(2).sum() + ex2["aux_loss"], cell)
    assert not torch.allclose(y2[0, 0], y[0, 0])
    assert any(not torch.allclose(a, b) for a, b in zip(grads[2:], grads2))


def collect_states(core, x, starts):
    """Step by step: the state in force before each step ([T] list) and the outputs [T, B, H]."""
    state, before, ys = core.initial_state(x.shape[1]), [], []
    for t in range(x.shape[0]):
        before.append(state)
        y, state, _ = core(x[t:t + 1], state, starts[t:t + 1])
        ys.append(y)
    return before, torch.cat(ys)


@pytest.mark.parametrize("options", [{}, {"surprise": "novelty", "write": "threshold", "timing": "rotation"}])
def test_chunks_of_length_one_reproduce_the_sequence(options):
    core = build(**options)
    g = torch.Generator().manual_seed(0)
    T, B = 12, 3
    x = torch.randn(T, B, F, generator=g)
    starts = torch.rand(T, B, generator=g) < 0.15
    starts[0] = True
    y_all, _, _ = core(x, core.initial_state(B), starts)
    before, _ = collect_states(core, x, starts)
    for t in (0, 5, T - 1):  # one stored state, one chunk of length 1
        y_t, _, _ = core(x[t:t + 1], before[t], starts[t:t + 1])
        torch.testing.assert_close(y_t[0], y_all[t], atol=1e-5, rtol=1e-5)
    # All steps at once, as the agents train: T * B chunks of length 1 in one batch.
    stored = {k: v.reshape(T * B, *v.shape[2:]) for k, v in stack_states(before).items()}
    y_batch, _, extras = core(x.reshape(1, T * B, F), stored, starts.reshape(1, T * B))
    torch.testing.assert_close(y_batch.view(T, B, H), y_all, atol=1e-5, rtol=1e-5)
    assert extras["aux_loss"].dim() == 0 and extras["aux_loss"].requires_grad


def test_ppo_replays_the_rollout_from_per_step_states():
    """PPO trains tmm on chunks of length 1 from the state stored at every step, and re-running
    them gives the rollout's log-probs and values."""
    env = make_batched("t-maze", 3, seed=0, corridor=4)
    torch.manual_seed(0)
    policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, "tmm",
                                  {"hidden_size": H, "slots": 3}, embed_size=H)
    agent = PPO(env, policy, n_steps=16, batch_size=16, seq_len=8, n_epochs=1)
    assert agent.chunk_len == 1
    agent.collect_rollout()
    agent.collect_rollout()
    for mb in agent.buffer.minibatches(1000, shuffle=False):
        out = agent.evaluate_minibatch(mb)
        torch.testing.assert_close(out.dist.log_prob(mb.actions), mb.log_probs, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.value, mb.values, atol=1e-5, rtol=1e-5)
        assert out.extras["aux_loss"].requires_grad


# ---------------------------------------------------------------- the seed's failure case
@pytest.mark.parametrize("write", ["replace_least_surprising", "threshold"])
def test_novelty_keeps_both_surprises_of_000xy000(write):
    core = build(slots=3, surprise="novelty", write=write)
    with torch.no_grad():
        _, state, _ = core(stream("0 0 0 x y 0 0 0"), core.initial_state(1), no_starts(8, 1))
    assert holds(state, tokens()["x"]) and holds(state, tokens()["y"])


def test_blank_tokens_do_not_crowd_out_surprises():
    """A blank (all-zero) observation is at distance 0 from a stored blank, so a run of blanks is
    not novel; plain cosine would put every blank at distance 1 and replace y with one."""
    core = build(slots=2, surprise="novelty", tie=0.0)
    table = {**tokens(), "b": torch.zeros(F)}
    x = torch.stack([table[s] for s in "x y b b b b".split()]).unsqueeze(1)
    with torch.no_grad():
        _, state, extras = core(x, core.initial_state(1), no_starts(6, 1))
    assert holds(state, table["x"]) and holds(state, table["y"])
    assert (extras["written_slot"][2:, 0] == -1).all()
    zero = torch.zeros(F)
    assert token_distance(zero, zero) == 0 and token_distance(table["x"], table["x"]).abs() < 1e-6
    assert 0 < token_distance(zero, table["x"]) < token_distance(table["y"], table["x"]) < 2


def warmed_up_predictor(**options) -> torch.nn.Module:
    """A core whose next-token prediction has learned that "0" follows everything."""
    core = build(surprise="prediction", **options)
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(core.parameters(), lr=1e-2)
    zero, B, T = tokens()["0"], 32, 8
    for _ in range(150):
        x = zero.expand(T, B, F).clone()
        rare = torch.rand(T, B, generator=g) < 0.2
        x[rare] = torch.randn(int(rare.sum()), F, generator=g)
        _, _, extras = core(x, core.initial_state(B), no_starts(T, B))
        opt.zero_grad()
        extras["aux_loss"].backward()
        opt.step()
    return core


@pytest.mark.parametrize("write, slots", [("replace_least_surprising", 3), ("threshold", 2)])
def test_prediction_surprise_keeps_both_surprises_of_000xy000(write, slots):
    core = warmed_up_predictor(write=write, slots=slots)
    with torch.no_grad():
        _, state, extras = core(stream("0 0 0 x y 0 0 0"), core.initial_state(1), no_starts(8, 1))
    surprise = extras["surprise"][:, 0]
    assert surprise[3] > 0.5 and surprise[4] > 0.5 and surprise[5:].max() < 0.5
    assert holds(state, tokens()["x"]) and holds(state, tokens()["y"])


@pytest.mark.parametrize("readout", ["own", "shared"])
@pytest.mark.parametrize("fraction, stride", [(1.0, 1), (0.5, 2), (0.25, 4)])
def test_prediction_loss_redoes_the_previous_steps_prediction(fraction, stride, readout):
    """aux_loss at step t scores exactly the prediction step t-1 made (kept in the state), on every
    ``1 / prediction_fraction``-th row, with gradients to the readout."""
    core = build(prediction_fraction=fraction, prediction_readout=readout)
    B = 8
    x = torch.randn(6, B, F)
    with torch.no_grad():
        _, state, _ = core(x[:5], core.initial_state(B), no_starts(5, B))
    _, _, extras = core(x[5:], state, no_starts(1, B))
    expected = (token_distance(state["prediction"], x[5]))[::stride].mean()
    torch.testing.assert_close(extras["aux_loss"], expected * core.prediction_weight)
    extras["aux_loss"].backward()
    query = core.prediction_query if readout == "own" else core.query
    assert core.predict.weight.grad.abs().sum() > 0 and query.weight.grad.abs().sum() > 0


def test_own_prediction_readout_keeps_the_policy_and_the_prediction_apart():
    """With ``prediction_readout="own"`` the output's gradient never reaches the prediction's query
    and output maps, and the prediction loss never reaches the output's; both reach the shared
    consolidation cell and keys."""
    core = build(prediction_readout="own")
    B = 4
    x = torch.randn(4, B, F)
    with torch.no_grad():
        _, state, _ = core(x[:3], core.initial_state(B), no_starts(3, B))
    y, _, extras = core(x[3:], state, no_starts(1, B))
    policy_grads = torch.autograd.grad(y.sum(), list(core.parameters()), allow_unused=True, retain_graph=True)
    aux_grads = torch.autograd.grad(extras["aux_loss"], list(core.parameters()), allow_unused=True)
    names = [n for n, _ in core.named_parameters()]

    def reached(grads):
        return {n for n, g in zip(names, grads) if g is not None and g.abs().sum() > 0}

    prediction_only = {n for n in names if n.startswith(("prediction_query.", "prediction_out.", "predict."))}
    policy_only = {n for n in names if n.startswith(("query.", "out."))}
    assert prediction_only and policy_only
    assert not reached(policy_grads) & prediction_only and policy_only <= reached(policy_grads)
    assert not reached(aux_grads) & policy_only and prediction_only <= reached(aux_grads)
    assert {"cell.weight_ih", "key.weight"} <= reached(policy_grads) & reached(aux_grads)


# ---------------------------------------------------------------- write policy
def test_full_memory_replaces_the_least_surprising_slot():
    valid = torch.ones(2, 4, dtype=torch.bool)
    surprise = torch.tensor([[0.5, 0.1, 0.9, 0.3], [0.2, 0.2, 0.9, 0.2]])
    age = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 7.0, 1.0, 6.0]])
    assert least_surprising_slot(valid, surprise, age).tolist() == [1, 1]  # row 2: the oldest of the tied


def test_tie_tolerance_cycles_through_about_equally_surprising_tokens():
    """Surprises within a factor 1 + tie of the least are tied: the oldest of them is replaced, and
    a token that is tied with the chosen slot is written; tie=0 keeps the most surprising ones."""
    valid = torch.ones(1, 4, dtype=torch.bool)
    surprise = torch.tensor([[0.20, 0.25, 0.30, 0.90]])
    age = torch.tensor([[1.0, 2.0, 5.0, 9.0]])
    assert least_surprising_slot(valid, surprise, age, tie=0.0).tolist() == [0]
    assert least_surprising_slot(valid, surprise, age, tie=0.3).tolist() == [1]   # 0.25 <= 1.3 * 0.2 < 0.3
    assert least_surprising_slot(valid, surprise, age, tie=0.5).tolist() == [2]   # 0.9 never ties
    state = {"valid": valid, "age": age, "surprise": surprise}
    for tie, token, writes in [(0.0, 0.19, False), (0.5, 0.19, False), (0.5, 0.21, True), (1.0, 0.16, True)]:
        wrote, _ = build(tie=tie, slots=4).choose_slot(state, torch.tensor([token]))
        assert wrote.item() is writes, (tie, token)


def test_empty_slots_are_filled_first():
    valid = torch.tensor([[True, False, True, False], [True, True, True, True]])
    surprise = torch.tensor([[0.0, 0.9, 0.0, 0.0], [0.4, 0.3, 0.2, 0.1]])
    age = torch.tensor([[9.0, 0.0, 9.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    assert least_surprising_slot(valid, surprise, age).tolist() == [1, 3]
    assert oldest_slot(valid, age).tolist() == [1, 3]


def filled_state(core, surprises: list[float]):
    """One row with every slot valid, holding random tokens with the given surprises."""
    state = {k: v.clone() for k, v in core.initial_state(1).items()}
    N = len(surprises)
    state["slot_x"] = torch.randn(1, N, F)
    state["slot_state"] = torch.randn(1, N, H)
    state["valid"] = torch.ones(1, N, dtype=torch.bool)
    state["surprise"] = torch.tensor([surprises])
    state["age"] = torch.arange(N, 0, -1, dtype=torch.float32).unsqueeze(0) * 3
    return state


def test_a_surprising_token_replaces_the_least_surprising_slot_and_a_dull_one_is_dropped():
    core = build(surprise="novelty")
    state = filled_state(core, [0.5, 0.05, 0.9, 0.3])
    new = torch.randn(1, 1, F)
    with torch.no_grad():
        _, after, extras = core(new, state, no_starts(1, 1))
        assert extras["written_slot"].item() == 1
        torch.testing.assert_close(after["slot_x"][0, 1], new[0, 0])
        torch.testing.assert_close(after["slot_state"][0, 1], state["last_state"][0])
        assert after["age"][0, 1] == 0 and (after["age"][0, [0, 2, 3]] == state["age"][0, [0, 2, 3]] + 1).all()
        # A token already stored (novelty 0) is less surprising than every slot: nothing is written.
        _, again, extras = core(new, after, no_starts(1, 1))
        assert extras["written_slot"].item() == -1
        torch.testing.assert_close(again["slot_x"], after["slot_x"])


def test_threshold_writes_only_above_the_threshold_over_the_oldest_slot():
    core = build(surprise="novelty", write="threshold", threshold=0.5)
    state = filled_state(core, [0.9, 0.9, 0.9, 0.9])
    oldest = int(state["age"].argmax())
    near = state["slot_x"][:, 2:3].transpose(0, 1) * 1.01  # cosine distance 0 to slot 2
    with torch.no_grad():
        _, after, extras = core(near, state, no_starts(1, 1))
        assert extras["written_slot"].item() == -1 and extras["surprise"].item() < 0.5
        assert torch.equal(after["slot_x"], state["slot_x"])
        far = -state["slot_x"].sum(1, keepdim=True).transpose(0, 1)  # far from every stored token
        _, after, extras = core(far, state, no_starts(1, 1))
        assert extras["surprise"].item() > 0.5 and extras["written_slot"].item() == oldest


# ---------------------------------------------------------------- timing
@pytest.mark.parametrize("timing", ["sinusoidal", "learned", "rotation"])
def test_timing_modes_run_and_depend_on_age(timing):
    core = build(timing=timing, order_gates=0)
    state = filled_state(core, [0.5, 0.6, 0.7, 0.8])
    x = torch.randn(1, 1, F)
    older = dict(state, age=state["age"] + torch.tensor([[0.0, 5.0, 40.0, 300.0]]))
    with torch.no_grad():
        y1, _, _ = core(x, state, no_starts(1, 1))
        y2, _, _ = core(x, older, no_starts(1, 1))
    assert not torch.allclose(y1, y2, atol=1e-4)
    y, _, extras = core(torch.randn(5, 2, F), core.initial_state(2), no_starts(5, 2))
    y.pow(2).mean().add(extras["aux_loss"]).backward()
    assert all(p.grad is not None for p in core.timing.parameters())


def test_timing_modes_give_different_outputs():
    outputs = []
    for timing in ["sinusoidal", "learned", "rotation"]:
        core = build(timing=timing)
        state = filled_state(core, [0.5, 0.6, 0.7, 0.8])
        with torch.no_grad():
            outputs.append(core(torch.ones(1, 1, F), state, no_starts(1, 1))[0])
    assert not torch.allclose(outputs[0], outputs[1]) and not torch.allclose(outputs[0], outputs[2])


def test_timing_signals():
    age = torch.tensor([[0.0, 1.0, 20.0, 1000.0]])
    u = torch.randn(1, 4, 8)
    rotated = RotationTiming(8)(u, age)
    torch.testing.assert_close(rotated.norm(dim=-1), u.norm(dim=-1))  # a rotation keeps the norm
    torch.testing.assert_close(rotated[:, 0], u[:, 0])                 # age 0: the identity
    assert age_bucket(torch.tensor([0.0, 15.0, 16.0, 32.0, 1e9])).tolist() == [0, 15, 16, 20, 63]
    for kind in ["sinusoidal", "learned", "rotation"]:
        out = make_timing(kind, 8)(u, age)
        assert out.shape == u.shape and not torch.allclose(out[:, 2], out[:, 3])
    with pytest.raises(ValueError, match="valid timings"):
        make_timing("clock", 8)


# ---------------------------------------------------------------- options and dedup
@pytest.mark.parametrize("learned_input", [False, True])
def test_repeated_slots_and_current_tokens_are_consolidated_once_with_the_same_results_and_gradients(learned_input):
    """Slots and current tokens are consolidated once per distinct (state, token); gradients are
    those of the computation without sharing. With a learned input (``x`` needs a gradient) the
    current tokens are computed apart from the slots, so their gradient stays theirs."""
    core = build()
    s, x = torch.randn(3, 4, H), torch.randn(3, 4, F)
    s[1], x[1] = s[0], x[0]  # rows repeat, as slots do across the steps of a minibatch
    s[2, 3], x[2, 3] = s[0, 1], x[0, 1]
    init = torch.randn(H, requires_grad=True)  # a learned initial state
    fresh = torch.tensor([False, False, True])
    stored, xc = torch.randn(3, H), torch.randn(3, F)
    stored[0], xc[0] = s[1, 2], x[1, 2]      # row 0's current token is a stored slot: one computation
    s[0, 0], x[0, 0] = init.detach(), xc[2]  # row 2 is fresh: its stored copy must not pass gradient to init
    last = torch.where(fresh.unsqueeze(-1), init, stored)
    xc.requires_grad_(learned_input)
    weights = torch.randn(3, 4, H), torch.randn(3, 4, core.slot_extra.out_features), torch.randn(3, H)
    inputs = [init, core.cell.weight_hh] + ([xc] if learned_input else [])

    def loss(slots, extra, current):
        return (slots * weights[0]).sum() + (extra * weights[1]).sum() + (current * weights[2]).sum()

    r, r_extra, index = core.consolidate(s, x, last, xc, fresh)
    # 8 distinct slots; row 0's current token is one of them unless the input is learned
    assert r.shape[0] == r_extra.shape[0] == (8 + 3 if learned_input else 8 + 2)
    slots, extra, current, current_extra = r[index[:, :4]], r_extra[index[:, :4]], r[index[:, 4]], r_extra[index[:, 4]]
    got = torch.autograd.grad(loss(slots, extra, current), inputs)
    last = torch.where(fresh.unsqueeze(-1), init, stored)
    r, c = core.cell(x.reshape(12, F), s.reshape(12, H)), core.cell(xc, last)
    want = torch.autograd.grad(loss(r.view(3, 4, H), core.slot_extra(r).view(3, 4, -1), c), inputs)
    torch.testing.assert_close(slots, r.view(3, 4, H), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(extra, core.slot_extra(r).view(3, 4, -1), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(current, c, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(current_extra, core.slot_extra(c), atol=1e-6, rtol=1e-6)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def one_ulp_up(t: torch.Tensor) -> torch.Tensor:
    return torch.nextafter(t, torch.full_like(t, math.inf))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fingerprints_are_exact_functions_of_the_bits(dtype):
    """A row's key is the same alone and in a batch of any shape (float projections round
    differently for differently shaped products), and a one-ulp change of any one feature, or of
    the sign of a zero, changes it."""
    core = build().to(dtype)
    s, x = torch.randn(1000, H, dtype=dtype), torch.randn(1000, F, dtype=dtype)
    keys = core.fingerprint(s, x)
    assert all(core.fingerprint(s[i:i + 1], x[i:i + 1]) == keys[i] for i in (0, 1, 500, 999))
    assert torch.equal(core.fingerprint(s[:7].clone(), x[:7].clone()), keys[:7])
    assert torch.equal(core.fingerprint(s.t().contiguous().t(), x), keys)   # a strided copy of the rows
    for j in (0, H - 1):
        nudged = s[:3].clone()
        nudged[:, j] = one_ulp_up(nudged[:, j])
        assert (core.fingerprint(nudged, x[:3]) != keys[:3]).all()
    for j in (0, F - 1):
        nudged = x[:3].clone()
        nudged[:, j] = one_ulp_up(nudged[:, j])
        assert (core.fingerprint(s[:3], nudged) != keys[:3]).all()
    zeros = torch.zeros(2, H, dtype=dtype)
    zeros[1, 5] = -0.0
    assert core.fingerprint(zeros, x[:2].clone().fill_(1.0)).unique().numel() == 2


@pytest.mark.parametrize("learned_input", [False, True])
def test_a_forced_fingerprint_collision_shares_nothing_that_differs_and_changes_no_bit(monkeypatch, learned_input):
    """Every entry gets the same fingerprint: consolidation still merges only entries equal bit for
    bit, and its entries and gradients are exactly (torch.equal) those of computing f once per
    distinct entry, and the same as under the real fingerprints."""
    core = build()
    s, x = torch.randn(3, 4, H), torch.randn(3, 4, F)
    s[2, 0], x[2, 0] = s[0, 0], one_ulp_up(x[0, 0])         # one ulp apart, in one feature
    s[2, 1], x[2, 1] = one_ulp_up(s[0, 1]), x[0, 1]
    s[0, 2, 0], s[2, 2], x[2, 2] = -0.0, s[0, 2], x[0, 2]   # equal values, different bits: -0.0 and 0.0
    s[2, 2, 0] = 0.0
    init = torch.randn(H, requires_grad=True)   # a learned initial state, the current token of fresh row 2
    fresh = torch.tensor([False, False, True])
    stored, xc = torch.randn(3, H), torch.randn(3, F)
    s[1, 3], x[1, 3] = init.detach(), xc[2]     # a stored copy of the fresh row's current token: kept apart
    xc.requires_grad_(learned_input)
    inputs = [init, *core.cell.parameters(), *core.slot_extra.parameters()] + ([xc] if learned_input else [])
    weights = torch.randn(3, 5, H), torch.randn(3, 5, core.slot_extra.out_features)

    def results(r, r_extra, index):
        entries, extra = r[index], r_extra[index]
        grads = torch.autograd.grad((entries * weights[0]).sum() + (extra * weights[1]).sum(), inputs)
        return r.shape[0], entries, extra, grads

    def consolidated(slot_state, slot_x, stored):
        last = torch.where(fresh.unsqueeze(-1), init, stored)
        return results(*core.consolidate(slot_state, slot_x, last, xc, fresh))

    def once_per_distinct_entry(slot_state, slot_x, stored):
        """f on the first of every set of entries equal bit for bit (a fresh row's current token
        apart), in the order of their first occurrence; with a learned input the current tokens
        are computed apart, after the slots."""
        last = torch.where(fresh.unsqueeze(-1), init, stored)
        if learned_input:
            ss, xs, apart = slot_state.reshape(12, H), slot_x.reshape(12, F), [False] * 12
        else:
            ss = torch.cat([slot_state, last.unsqueeze(1)], 1).reshape(15, H)
            xs = torch.cat([slot_x, xc.unsqueeze(1)], 1).reshape(15, F)
            apart = [bool(fresh[i // 5]) and i % 5 == 4 for i in range(15)]
        groups: dict = {}
        index = [groups.setdefault((ss[i].detach().numpy().tobytes(), xs[i].detach().numpy().tobytes(), apart[i]),
                                   len(groups)) for i in range(ss.shape[0])]
        first = torch.tensor([index.index(g) for g in range(len(groups))])
        r = core.cell(xs[first], ss[first])
        index = torch.tensor(index)
        if learned_input:
            r = torch.cat([r, core.cell(xc, last)])
            index = torch.cat([index.view(3, 4), torch.arange(len(groups), len(groups) + 3).unsqueeze(1)], dim=1)
        return results(r, core.slot_extra(r), index.view(3, 5))

    def assert_equal(a, b):
        assert a[0] == b[0]
        assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
        assert all(torch.equal(g, h) for g, h in zip(a[3], b[3]))

    def assert_close(a, b):
        assert a[0] == b[0]
        for u, v in zip([a[1], a[2], *a[3]], [b[1], b[2], *b[3]]):
            torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)

    # Repeated entries: row 1's first three slots are row 0's, row 0's current token is its slot 3.
    s2, x2, stored2 = s.clone(), x.clone(), stored.clone()
    s2[1, :3], x2[1, :3] = s[0, :3], x[0, :3]
    stored2[0], x2[0, 3] = s2[0, 3], xc[0].detach()
    cases = [(s, x, stored, 15), (s2, x2, stored2, 15 - 3 - (0 if learned_input else 1))]
    exact = [consolidated(*case[:3]) for case in cases]
    monkeypatch.setattr(core, "fingerprint", lambda rows, tokens: torch.zeros(rows.shape[0], dtype=torch.long))
    for (*case, distinct), real_keys in zip(cases, exact):
        forced, reference = consolidated(*case), once_per_distinct_entry(*case)
        assert forced[0] == distinct
        assert_equal(forced, reference)
        assert_close(real_keys, reference)   # the real keys share as much, in another order


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="surprise must be one of"):
        build(surprise="shock")
    with pytest.raises(ValueError, match="write must be one of"):
        build(write="always")
    with pytest.raises(ValueError, match="timing must be one of"):
        build(timing="clock")
    with pytest.raises(ValueError, match="heads"):
        build(heads=3)
    with pytest.raises(ValueError, match="prediction_fraction"):
        build(prediction_fraction=0.0)
    with pytest.raises(ValueError, match="tie >= 0"):
        build(tie=-0.5)


def test_diagnostics():
    core = build()
    _, _, extras = core(torch.randn(7, 2, F), core.initial_state(2), no_starts(7, 2))
    assert set(extras) == {"aux_loss", "slot_age", "attention", "written_slot", "surprise", "write_rate", "slots_used",
                           "slot_age_mean", "slot_age_max", "attention_current", "attention_entropy"}
    assert extras["slot_age"].shape == (7, 2, 4) and extras["attention"].shape == (7, 2, 4)
    assert extras["written_slot"].shape == (7, 2) and extras["written_slot"].dtype == torch.long
    for name in ("surprise", "write_rate", "slots_used", "slot_age_mean", "slot_age_max", "attention_current",
                 "attention_entropy"):
        assert extras[name].shape == (7, 2) and extras[name].dtype == torch.float32, name
    assert all(not v.requires_grad for k, v in extras.items() if k != "aux_loss")
    assert (extras["written_slot"][0] == 0).all() and (extras["surprise"][0] == 2.0).all()
    assert (extras["attention"].sum(-1) + extras["attention_current"] * (extras["written_slot"] < 0) <= 1 + 1e-6).all()
    assert (extras["attention_entropy"] >= 0).all() and (extras["attention_entropy"] <= math.log(4 + 2) + 1e-6).all()


def test_diagnostics_of_writes_into_an_empty_memory_and_of_a_step_that_writes_nothing():
    """Novelty surprise, threshold writes: x (written), x x (not: nothing new), y (written)."""
    core = build(surprise="novelty", write="threshold", threshold=0.5)
    with torch.no_grad():
        _, _, ex = core(stream("x x x y"), core.initial_state(1), no_starts(4, 1))
    values = {k: v[:, 0].tolist() for k, v in ex.items()}
    assert values["written_slot"] == [0, -1, -1, 1]
    assert values["write_rate"] == [1.0, 0.0, 0.0, 1.0]
    assert values["slots_used"] == [0.25, 0.25, 0.25, 0.5]
    assert values["slot_age"] == [[0, 0, 0, 0], [1, 0, 0, 0], [2, 0, 0, 0], [3, 0, 0, 0]]
    assert values["slot_age_mean"] == [0.0, 1.0, 2.0, 1.5] and values["slot_age_max"] == [0.0, 1.0, 2.0, 3.0]
    # The written slot holds the current token, so it shows the current token's attention.
    assert values["attention"][0][0] == values["attention_current"][0]
    assert values["attention"][3][1] == values["attention_current"][3]
    # Writes into an empty memory: k writes use k of the N slots, aged k - 1 .. 0.
    core = build(surprise="novelty")
    with torch.no_grad():
        _, _, ex = core(torch.randn(3, 2, F), core.initial_state(2), no_starts(3, 2))
    assert (ex["write_rate"] == 1).all() and ex["written_slot"].tolist() == [[0, 0], [1, 1], [2, 2]]
    torch.testing.assert_close(ex["slots_used"][:, 0], torch.tensor([1, 2, 3]) / 4.0)
    torch.testing.assert_close(ex["slot_age_mean"][:, 0], torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(ex["slot_age_max"][:, 0], torch.tensor([0.0, 1.0, 2.0]))


def test_attention_diagnostics_on_constructed_weights():
    """``attention_current`` and ``attention_entropy`` from weights [B, heads, N + 2] (the slots, the
    current token, the null entry): one-hot heads have entropy 0, even ones log of the entries."""
    core = build()   # N = 4 slots, 4 heads
    N = 4
    weights = torch.zeros(2, 4, N + 2)
    weights[0, :, N] = 1.0                               # row 0: every head on the current token
    weights[1, :2, [0, 2, N]] = 1.0 / 3                 # row 1: two heads even over slots 0, 2 and the current token
    weights[1, 2:, N + 1] = 1.0                          # ... two on the null entry
    valid = torch.tensor([[False] * N, [True, False, True, False]])
    written = torch.zeros(2, N, dtype=torch.bool)
    ex = core.diagnostics(torch.zeros(2), torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.long), written,
                          torch.tensor([[0.0] * N, [3.0, 0.0, 1.0, 0.0]]), valid, weights)
    torch.testing.assert_close(ex["attention_current"], torch.tensor([1.0, 1.0 / 6]))
    torch.testing.assert_close(ex["attention_entropy"], torch.tensor([0.0, math.log(3) / 2]))
    torch.testing.assert_close(ex["attention"][1], torch.tensor([1.0 / 6, 0.0, 1.0 / 6, 0.0]))
    torch.testing.assert_close(ex["slot_age_mean"], torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(ex["slots_used"], torch.tensor([0.0, 0.5]))
    assert ex["written_slot"].tolist() == [-1, -1] and ex["write_rate"].tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- learning
@pytest.mark.slow
def test_ppo_with_tmm_learns_t_maze_and_mlp_cannot():
    def train(core: str, options: dict) -> float:
        env = make_batched("t-maze", 32, seed=0, corridor=6)
        torch.manual_seed(0)
        policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, core,
                                      {"hidden_size": 32, **options}, embed_size=32)
        agent = PPO(env, policy, n_steps=32, batch_size=256, n_epochs=4, learning_rate=3e-3,
                    ent_coef=0.01, seed=0)
        agent.learn(60_000)
        return evaluate_policy(agent.policy, make_batched("t-maze", 16, seed=100, corridor=6), 64)["return_mean"]

    assert train("tmm", {"slots": 4, "heads": 2, "timing_size": 8}) >= 0.9
    assert train("mlp", {}) <= 0.4
