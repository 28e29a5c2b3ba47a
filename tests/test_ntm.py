"""The Neural Turing Machine: addressing on hand-computed cases, writes, gradients, controllers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from rlmem.cores import core_options, make_core
from rlmem.cores import ntm_addressing as A
from rlmem.cores.ntm import NTMCore


def one_hot(n: int, i: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(i), n).float()


def as_heads(w: torch.Tensor) -> torch.Tensor:
    """[N] -> [1, 1, N] (batch, head, rows)."""
    return w.reshape(1, 1, -1)


# ----------------------------------------------------------------------------- addressing

@pytest.mark.parametrize("start, offset, expected", [(2, +1, 3), (4, +1, 0), (0, -1, 4), (3, 0, 3)])
def test_shift_moves_the_weighting_circularly(start, offset, expected):
    w = as_heads(one_hot(5, start))
    shift = as_heads(one_hot(3, offset + 1))  # offsets -1, 0, +1
    torch.testing.assert_close(A.circular_shift(w, shift), as_heads(one_hot(5, expected)))


def test_shift_blurs_by_the_shift_distribution():
    w = as_heads(torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]))
    shift = as_heads(torch.tensor([0.2, 0.5, 0.3]))  # -1, 0, +1
    torch.testing.assert_close(A.circular_shift(w, shift), as_heads(torch.tensor([0.2, 0.5, 0.3, 0.0, 0.0])))
    wide = as_heads(torch.tensor([0.1, 0.0, 0.2, 0.4, 0.3]))  # offsets -2..2 over N = 5
    out = A.circular_shift(as_heads(one_hot(5, 0)), wide)
    torch.testing.assert_close(out, as_heads(torch.tensor([0.2, 0.4, 0.3, 0.1, 0.0])))


def test_sharpening():
    w = as_heads(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    torch.testing.assert_close(A.sharpen(w, torch.ones(1, 1)), w)  # gamma = 1 leaves it unchanged
    sharp = A.sharpen(w, torch.full((1, 1), 3.0))
    torch.testing.assert_close(sharp.sum(-1), torch.ones(1, 1))
    expected = w ** 3 / (w ** 3).sum()
    torch.testing.assert_close(sharp, expected)
    sharper = A.sharpen(w, torch.full((1, 1), 6.0))
    assert sharp.max() > w.max() and sharper.max() > sharp.max()
    # gradients stay finite where a weight is exactly zero
    gamma = torch.full((1, 1), 2.0, requires_grad=True)
    A.sharpen(as_heads(torch.tensor([0.0, 0.5, 0.5])), gamma)[..., 1].sum().backward()
    assert torch.isfinite(gamma.grad).all()


def test_gate_zero_keeps_the_previous_weighting_exactly():
    w_content = torch.softmax(torch.randn(2, 3, 7), -1)
    w_prev = torch.softmax(torch.randn(2, 3, 7), -1)
    assert torch.equal(A.interpolate(w_content, w_prev, torch.zeros(2, 3)), w_prev)
    assert torch.equal(A.interpolate(w_content, w_prev, torch.ones(2, 3)), w_content)
    torch.testing.assert_close(A.interpolate(w_content, w_prev, torch.full((2, 3), 0.25)),
                               0.25 * w_content + 0.75 * w_prev)


def test_content_focus_picks_the_most_similar_row():
    memory = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.8, 0.1], [0.0, 0.0, 1.0]]).unsqueeze(0)
    key = torch.tensor([[[0.5, 0.9, 0.1]]])  # closest in angle to row 2, scale does not matter
    w = A.content_weights(memory, key, torch.full((1, 1), 50.0))
    assert w.argmax().item() == 2 and w[0, 0, 2] > 0.9
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 1))
    flat = A.content_weights(memory, key, torch.zeros(1, 1))  # beta = 0: uniform
    torch.testing.assert_close(flat, torch.full((1, 1, 4), 0.25))
    # cosine similarity, not dot product: a long row does not win by its length
    scaled = memory.clone()
    scaled[0, 1] *= 100
    assert A.content_weights(scaled, key, torch.full((1, 1), 50.0)).argmax().item() == 2


def test_content_focus_survives_zero_rows():
    w = A.content_weights(torch.zeros(1, 4, 3), torch.zeros(1, 2, 3), torch.full((1, 2), 5.0))
    torch.testing.assert_close(w, torch.full((1, 2, 4), 0.25))


def test_address_with_content_and_a_shift():
    memory = torch.eye(4).unsqueeze(0)  # row i = e_i
    key = torch.eye(4)[1].reshape(1, 1, 4)
    w = A.address(memory, key, beta=torch.full((1, 1), 100.0), gate=torch.ones(1, 1),
                  shift=as_heads(one_hot(3, 2)), gamma=torch.full((1, 1), 2.0), w_prev=as_heads(one_hot(4, 0)))
    assert w.argmax().item() == 2 and w[0, 0, 2] > 0.99  # found row 1, then moved one on


def test_erase_with_one_clears_exactly_the_addressed_row():
    memory = torch.randn(1, 5, 4)
    out = A.write(memory, as_heads(one_hot(5, 3)), torch.ones(1, 1, 4), torch.zeros(1, 1, 4))
    assert torch.equal(out[0, 3], torch.zeros(4))
    keep = [0, 1, 2, 4]
    assert torch.equal(out[0, keep], memory[0, keep])


def test_add_adds_exactly_w_a_transposed():
    memory = torch.randn(2, 5, 4)
    w = torch.softmax(torch.randn(2, 1, 5), -1)
    a = torch.randn(2, 1, 4)
    out = A.write(memory, w, torch.zeros(2, 1, 4), a)
    torch.testing.assert_close(out, memory + w[:, 0, :, None] * a[:, 0, None, :])


def test_several_write_heads_erase_then_add():
    memory = torch.randn(2, 6, 3)
    w = torch.softmax(torch.randn(2, 2, 6), -1)
    e, a = torch.rand(2, 2, 3), torch.randn(2, 2, 3)
    expected = memory * (1 - w[:, 0, :, None] * e[:, 0, None]) * (1 - w[:, 1, :, None] * e[:, 1, None])
    expected = expected + w[:, 0, :, None] * a[:, 0, None] + w[:, 1, :, None] * a[:, 1, None]
    torch.testing.assert_close(A.write(memory, w, e, a), expected)


def test_read_is_the_weighted_sum_of_rows():
    memory = torch.randn(2, 5, 3)
    w = torch.softmax(torch.randn(2, 2, 5), -1)
    expected = torch.stack([w[:, k, :, None].mul(memory).sum(1) for k in range(2)], dim=1)
    torch.testing.assert_close(A.read(memory, w), expected)


# ----------------------------------------------------------------------------- the core

def small_ntm(**options) -> NTMCore:
    torch.manual_seed(0)
    return make_core("ntm", 5, **{"hidden_size": 12, "memory_size": 10, "memory_width": 4, **options})


def test_state_layout_and_extras():
    core = small_ntm(read_heads=2, write_heads=3)
    state = core.initial_state(4)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "memory": (4, 10, 4), "reads": (4, 8), "read_w": (4, 2, 10), "write_w": (4, 3, 10),
        "h": (4, 12), "c": (4, 12)}
    assert core.output_size == 12 + 2 * 4
    torch.testing.assert_close(state["read_w"].sum(-1), torch.ones(4, 2))
    y, state, extras = core(torch.randn(6, 4, 5), state, torch.zeros(6, 4, dtype=torch.bool))
    assert extras["read_weights"].shape == (6, 4, 2, 10) and extras["write_weights"].shape == (6, 4, 3, 10)
    torch.testing.assert_close(extras["write_weights"].sum(-1), torch.ones(6, 4, 3))
    scalars = ("read_entropy", "write_entropy", "read_peak", "write_peak", "read_shift", "write_shift")
    assert set(extras) == {"read_weights", "write_weights", *scalars}
    assert all(not v.requires_grad for v in extras.values())
    for name in scalars:
        assert extras[name].shape == (6, 4) and extras[name].dtype == torch.float32, name
    assert ((extras["read_entropy"] >= 0) & (extras["read_entropy"] <= math.log(10) + 1e-5)).all()
    assert ((extras["write_peak"] >= 0.1 - 1e-6) & (extras["write_peak"] <= 1)).all()
    assert (extras["read_shift"].abs() <= 1).all()   # shift_range 1


def test_diagnostics_of_sharp_even_and_shifting_heads():
    """One-hot weightings have entropy 0 and peak 1, even ones log N and 1/N; a shift all on +1 is
    +1; each number is the mean over the heads of its kind."""
    core = small_ntm(read_heads=2, write_heads=1, shift_range=1)   # N = 10
    N = 10
    weights = torch.stack([one_hot(N, 3), torch.full((N,), 1.0 / N), one_hot(N, 7)]).unsqueeze(0)  # [1, R+W, N]
    shift = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])  # offsets -1, 0, +1
    ex = core.diagnostics(weights, shift)
    torch.testing.assert_close(ex["read_entropy"], torch.tensor([math.log(N) / 2]))
    torch.testing.assert_close(ex["read_peak"], torch.tensor([(1.0 + 1.0 / N) / 2]))
    torch.testing.assert_close(ex["read_shift"], torch.tensor([0.5]))
    torch.testing.assert_close(ex["write_entropy"], torch.tensor([0.0]))
    torch.testing.assert_close(ex["write_peak"], torch.tensor([1.0]))
    torch.testing.assert_close(ex["write_shift"], torch.tensor([1.0]))
    torch.testing.assert_close(ex["read_weights"], weights[:, :2])
    torch.testing.assert_close(ex["write_weights"], weights[:, 2:])
    # A symmetric blur shifts by 0 on average; an even weighting peaks at 1/N.
    blurred = torch.tensor([[[0.25, 0.5, 0.25]]])
    ex = core.diagnostics(torch.full((1, 3, N), 1.0 / N), blurred.expand(1, 3, 3))
    torch.testing.assert_close(ex["write_shift"], torch.tensor([0.0]))
    torch.testing.assert_close(ex["write_peak"], torch.tensor([1.0 / N]))


def test_gradients_reach_the_learned_initial_state_from_far_later():
    core = small_ntm()
    T = 40
    x = torch.randn(T, 3, 5)
    y, _, _ = core(x, core.initial_state(3), torch.zeros(T, 3, dtype=torch.bool))
    y[-1].pow(2).sum().backward()  # a loss on the last step only
    for name in ("memory", "read_w", "write_w", "reads", "h", "c"):
        grad = core.init.params[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("controller", ["gru", "mlp"])
def test_other_controllers_keep_the_contract(controller):
    core = small_ntm(controller=controller, shift_range=2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, 5, generator=g)
    starts = torch.zeros(7, 3, dtype=torch.bool)
    starts[0] = True
    starts[4, 1] = True
    state = core.initial_state(3)
    assert ("c" in state) is False and (("h" in state) == (controller == "gru"))
    y, final, _ = core(x, state, starts)
    ys = []
    for t in range(7):  # acting one step at a time computes the same
        yt, state, _ = core(x[t:t + 1], state, starts[t:t + 1])
        ys.append(yt)
    torch.testing.assert_close(torch.cat(ys), y)
    fresh, _, _ = core(x[4:, 1:2], core.initial_state(1), torch.zeros(3, 1, dtype=torch.bool))
    torch.testing.assert_close(y[4:, 1:2], fresh)
    y.sum().backward()
    assert all(p.grad is not None for p in core.parameters())


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="controller must be one of lstm, gru, mlp"):
        small_ntm(controller="transformer")
    with pytest.raises(ValueError, match="shift_range 3 needs at least 7 memory rows"):
        small_ntm(memory_size=5, shift_range=3)


def test_config_lists_exactly_the_core_options():
    path = Path(__file__).resolve().parents[1] / "configs" / "core" / "ntm.yaml"
    cfg = yaml.safe_load(path.read_text())
    assert cfg.pop("name") == "ntm"
    assert set(cfg) == set(core_options("ntm"))
    make_core("ntm", 8, **cfg)
