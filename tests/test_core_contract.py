"""The contract every registered core keeps. A new core is checked by registering it."""

from __future__ import annotations

import pytest
import torch

from rlmem.cores import CORES, core_options, index_state, make_core

F, H, T, B = 6, 16, 9, 5

# Small, fast settings per core, added to {"hidden_size": H}.
TEST_OPTIONS: dict[str, dict] = {
    "ntm": {"memory_size": 8, "memory_width": 6},
    "tmm": {"slots": 4},
    "tape": {"slots": 6, "position_size": 4},
}


# Cores checked in more than one configuration: "core:variant" -> (core, options).
VARIANTS: dict[str, tuple[str, dict]] = {
    "notation:gru_textbook": ("notation", {"spec": "gru_textbook"}),  # two step matmuls, reset inside
    "notation:lstm": ("notation", {"spec": "lstm"}),  # two states
    "tmm:order_levels": ("tmm", {"order_levels": 3}),  # a few evenly spaced order levels
    "tape:sinusoidal": ("tape", {"addressing": "sinusoidal"}),  # positions as sinusoids, not per slot
    "tape:learn_init": ("tape", {"learn_init": True}),  # starts full of learned entries
}


def core_name(name: str) -> str:
    return VARIANTS[name][0] if name in VARIANTS else name


def build(name: str, seed: int = 0, **extra) -> torch.nn.Module:
    torch.manual_seed(seed)
    base, variant = VARIANTS.get(name, (name, {}))
    options = {"hidden_size": H, **TEST_OPTIONS.get(base, {}), **variant, **extra}
    if "hidden_size" not in core_options(base):  # a core whose width follows from its input (counts)
        del options["hidden_size"]
    return make_core(base, F, **options)


def random_starts(generator: torch.Generator, p: float = 0.2) -> torch.Tensor:
    starts = torch.rand(T, B, generator=generator) < p
    starts[0] = True
    return starts


def run_stepwise(core, x, state, starts):
    ys = []
    for t in range(x.shape[0]):
        y, state, _ = core(x[t:t + 1], state, starts[t:t + 1])
        ys.append(y)
    return torch.cat(ys), state


# notation runs only as its variants (its default spec is one of them); tmm also with its defaults
ALL = sorted([n for n in CORES if n != "notation"] + list(VARIANTS))


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_state_layout(name):
    core = build(name)
    state = core.initial_state(B)
    for k, v in state.items():
        assert v.shape[0] == B, f"state entry {k} must have the batch dimension first"
    x = torch.randn(T, B, F)
    y, new_state, extras = core(x, state, torch.zeros(T, B, dtype=torch.bool))
    assert y.shape == (T, B, core.output_size)
    assert set(new_state) == set(state)
    for k in state:
        assert new_state[k].shape == state[k].shape and new_state[k].dtype == state[k].dtype
    for k, v in extras.items():
        if k == "aux_loss":
            assert v.dim() == 0
        else:
            assert v.shape[:2] == (T, B), f"extra {k} must be [T, B, ...], got {tuple(v.shape)}"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("grad", [True, False], ids=["train", "act"])
def test_stepwise_equals_whole_sequence(name, grad):
    """Acting (T = 1, often without autograd) and training over chunks compute the same thing."""
    core = build(name)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, F, generator=g)
    starts = random_starts(g)
    state = core.initial_state(B)
    y_all, s_all, _ = core(x, state, starts)
    with torch.set_grad_enabled(grad):
        y_step, s_step = run_stepwise(core, x, state, starts)
    torch.testing.assert_close(y_all, y_step, atol=1e-5, rtol=1e-5)
    for k in s_all:
        torch.testing.assert_close(s_all[k].float(), s_step[k].float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_skipping_the_final_state_changes_nothing_else(name):
    """``need_state=False`` (training on stored states) gives the same outputs and extras, and the
    gradients of a loss on them are the same."""
    core = build(name)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(T, B, F, generator=g)
    starts = random_starts(g)
    results = []
    for need_state in (True, False):
        core.zero_grad(set_to_none=True)
        y, _, extras = core(x, core.initial_state(B), starts, need_state=need_state)
        loss = y.pow(2).mean() + extras.get("aux_loss", torch.zeros(()))
        if loss.requires_grad:  # a core without parameters (counts) has no gradients to compare
            loss.backward()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in core.parameters()]
        results.append((y.detach(), {k: v.detach() for k, v in extras.items()}, grads))
    (y1, e1, g1), (y2, e2, g2) = results
    torch.testing.assert_close(y1, y2)
    assert set(e1) == set(e2)
    for k in e1:
        torch.testing.assert_close(e1[k], e2[k])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ALL)
def test_start_resets_to_fresh_state(name):
    """After a start, a row's outputs equal those of a fresh run: nothing leaks across starts."""
    core = build(name)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(T, B, F, generator=g)
    # Drive the state somewhere far from initial first.
    warm = torch.randn(7, B, F, generator=g) * 3
    _, state, _ = core(warm, core.initial_state(B), torch.zeros(7, B, dtype=torch.bool))
    k = 4
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[k, 1] = True
    starts[0, 3] = True
    y, _, _ = core(x, state, starts)
    fresh1, _, _ = core(x[k:, 1:2], core.initial_state(1), torch.zeros(T - k, 1, dtype=torch.bool))
    fresh3, _, _ = core(x[:, 3:4], core.initial_state(1), torch.zeros(T, 1, dtype=torch.bool))
    torch.testing.assert_close(y[k:, 1:2], fresh1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y[:, 3:4], fresh3, atol=1e-5, rtol=1e-5)
    if state:  # a memory core must actually carry something: row 0 differs from a fresh run
        fresh0, _, _ = core(x[:, 0:1], core.initial_state(1), torch.zeros(T, 1, dtype=torch.bool))
        assert not torch.allclose(y[:, 0:1], fresh0, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_batch_permutation_equivariance(name):
    core = build(name)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, F, generator=g)
    starts = random_starts(g)
    state = core.initial_state(B)
    y, s, _ = core(x, state, starts)
    perm = torch.randperm(B, generator=g)
    y_p, s_p, _ = core(x[:, perm], index_state(state, perm), starts[:, perm])
    torch.testing.assert_close(y_p, y[:, perm], atol=1e-5, rtol=1e-5)
    for k in s:
        torch.testing.assert_close(s_p[k].float(), s[k][perm].float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_per_step_diagnostics_are_detached_and_finite(name):
    """Extras other than ``aux_loss`` are diagnostics: [T, B, ...], finite, without gradient (agents
    average the floating [T, B] ones into ``core/<name>`` metrics)."""
    core = build(name)
    x = torch.randn(T, B, F, requires_grad=True)
    _, _, extras = core(x, core.initial_state(B), random_starts(torch.Generator().manual_seed(4)))
    for k, v in extras.items():
        if k != "aux_loss":
            assert v.shape[:2] == (T, B) and not v.requires_grad, k
            assert not v.is_floating_point() or torch.isfinite(v).all(), k


def test_gated_reports_its_mean_gate():
    core = build("gated")
    with torch.no_grad():  # g = sigmoid(0) = 1/2 everywhere; then a gate bias of 2 in half the units
        for p in core.parameters():
            p.zero_()
        _, _, extras = core(torch.randn(T, B, F), core.initial_state(B), torch.zeros(T, B, dtype=torch.bool))
        assert set(extras) == {"gate"} and torch.equal(extras["gate"], torch.full((T, B), 0.5))
        core.input_proj.bias[:H // 2] = 2.0
        _, _, extras = core(torch.randn(T, B, F), core.initial_state(B), torch.zeros(T, B, dtype=torch.bool))
        half_open = (0.5 + torch.sigmoid(torch.tensor(2.0)).item()) / 2
        torch.testing.assert_close(extras["gate"], torch.full((T, B), half_open))


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_initial_state(name):
    options = {"learn_init": True} if "learn_init" in core_options(core_name(name)) else {}
    core = build(name, **options)
    state = core.initial_state(B)
    if not state:
        pytest.skip(f"{name} has no state")
    init_params = [p for p in core.parameters() if any(p is q for q in _init_parameters(core))]
    assert init_params, f"{name} should offer a learned initial state (learn_init or built in)"
    x = torch.randn(T, B, F)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    starts[5, 2] = True
    y, _, _ = core(x, state, starts)
    y.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in init_params)


def _init_parameters(core) -> list[torch.nn.Parameter]:
    """Parameters that the initial state depends on."""
    state = core.initial_state(2)
    params = [p for p in core.parameters() if p.requires_grad]
    tensors = [v for v in state.values() if v.requires_grad and v.is_floating_point()]
    if not tensors:
        return []
    grads = torch.autograd.grad(sum(t.sum() for t in tensors), params, allow_unused=True)
    return [p for p, gr in zip(params, grads) if gr is not None]


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_all_parameters(name):
    core = build(name)
    x = torch.randn(T, B, F, requires_grad=True)
    starts = torch.zeros(T, B, dtype=torch.bool)
    y, _, extras = core(x, core.initial_state(B), starts)
    loss = y.pow(2).mean() + extras.get("aux_loss", torch.zeros(()))
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    missing = [n for n, p in core.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("name", ALL)
def test_seeded_construction_is_deterministic(name):
    x = torch.randn(T, B, F)
    starts = torch.zeros(T, B, dtype=torch.bool)
    a, b = build(name, seed=7), build(name, seed=7)
    ya, _, _ = a(x, a.initial_state(B), starts)
    yb, _, _ = b(x, b.initial_state(B), starts)
    assert torch.equal(ya, yb)


@pytest.mark.parametrize("name", ALL)
def test_bad_input_shape_is_refused(name):
    core = build(name)
    with pytest.raises(ValueError, match="expects x of shape"):
        core(torch.randn(T, B, F + 1), core.initial_state(B), torch.zeros(T, B, dtype=torch.bool))


def test_unknown_core_and_option_are_refused():
    with pytest.raises(ValueError, match="valid cores: .*gru"):
        make_core("grux", F)
    with pytest.raises(ValueError, match="valid options: .*hidden_size"):
        make_core("gru", F, hiden_size=3)
