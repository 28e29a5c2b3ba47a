"""Acting with the token memory machine reuses the consolidations of unchanged slots; the outputs
and states are those of computing every slot afresh."""

from __future__ import annotations

import torch

from rlmem.cores import make_core
from rlmem.cores.tmm_memo import ConsolidationMemo

F, H, N = 6, 16, 4


def build() -> torch.nn.Module:
    torch.manual_seed(0)
    return make_core("tmm", F, hidden_size=H, slots=N)


def act(core, x: torch.Tensor, starts: torch.Tensor, state, remembering: bool):
    """Steps without autograd over ``x`` [T, B, F]; without ``remembering`` the memo is emptied
    before every step, so every slot is consolidated afresh. -> (outputs [T, B, H], final state)."""
    ys = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            if not remembering:
                core.memo = ConsolidationMemo()
            y, state, _ = core(x[t:t + 1], state, starts[t:t + 1])
            ys.append(y[0])
    return torch.stack(ys), state


def assert_same(a, b):
    torch.testing.assert_close(a[0], b[0], atol=1e-6, rtol=1e-5)
    for k in a[1]:
        torch.testing.assert_close(a[1][k], b[1][k], atol=1e-6, rtol=1e-5)


def test_remembered_consolidations_give_the_fresh_results_across_resets_updates_and_other_states():
    core = build()
    g = torch.Generator().manual_seed(1)
    T, B = 30, 5
    x = torch.randn(3, T, B, F, generator=g)
    starts = torch.rand(3, T, B, generator=g) < 0.1
    state = fresh_state = core.initial_state(B)
    # A fused Adam step changes the parameters without moving their version counters.
    optimizer = torch.optim.Adam(core.parameters(), lr=0.05, fused=True)
    for part in range(3):
        remembered = act(core, x[part], starts[part], state, remembering=True)
        fresh = act(core, x[part], starts[part], fresh_state, remembering=False)
        assert_same(remembered, fresh)
        state, fresh_state = remembered[1], fresh[1]
        # Another state in between whose slots differ from those remembered in one row only.
        other = dict(state, slot_x=state["slot_x"].clone())
        other["slot_x"][0] += 1.0
        assert other["valid"][0].any()
        assert_same(act(core, x[part, :3], starts[part, :3], other, remembering=True),
                    act(core, x[part, :3], starts[part, :3], other, remembering=False))
        for p in core.parameters():  # the next part continues from slots remembered before this
            p.grad = torch.randn_like(p)
        optimizer.step()


def test_acting_consolidates_only_the_current_tokens_while_slots_and_parameters_stay():
    core = build()
    rows = []
    core.cell.register_forward_hook(lambda module, inputs, output: rows.append(output.shape[0]))
    g = torch.Generator().manual_seed(2)
    T, B = 12, 3
    x = torch.randn(T, B, F, generator=g)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    starts[6, 1] = True  # a reset row: its slots are empty, nothing to compute
    _, state = act(core, x, starts, core.initial_state(B), remembering=True)
    assert rows[1:] == [B] * (T - 1)  # the first step has nothing remembered
    with torch.no_grad():
        _, state, _ = core(x[:1], state, starts[1:2])
        assert rows[-1] == B
        core.cell.bias_hh.add_(0.01)
        core(x[1:2], state, starts[1:2])
    assert rows[-1] > B  # changed parameters: every slot is consolidated again


def test_a_core_moved_to_float64_acts_and_trains_in_float64():
    core = build()
    state, starts = core.initial_state(3), torch.zeros(1, 3, dtype=torch.bool)
    with torch.no_grad():
        for _ in range(3):
            _, state, _ = core(torch.randn(1, 3, F), state, starts)
    core.double()
    state = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    with torch.no_grad():  # the float32 memo is not used: computed afresh in float64
        y, state, _ = core(torch.randn(1, 3, F, dtype=torch.float64), state, starts)
    assert y.dtype == torch.float64 and state["last_state"].dtype == torch.float64
    y, _, extras = core(torch.randn(1, 3, F, dtype=torch.float64), state, starts, need_state=False)
    (y.sum() + extras["aux_loss"]).backward()
    assert core.cell.weight_hh.grad.dtype == torch.float64
