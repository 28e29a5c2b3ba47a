"""rlmem.sb3.CorePolicy: any rlmem core inside sb3-contrib's RecurrentPPO."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from rlmem.cores import CORES, Core, InitialState, register_core
from rlmem.envs import TMazeSingle
from rlmem.sb3 import CorePolicy, PackedCore

#: Small sizes so every test runs in well under a second per core.
SMALL = {
    "elman": {"hidden_size": 16}, "gated": {"hidden_size": 16}, "gru": {"hidden_size": 16},
    "lstm": {"hidden_size": 16}, "mlp": {"hidden_size": 16},
    "ntm": {"hidden_size": 16, "memory_size": 8, "memory_width": 4},
    "tmm": {"hidden_size": 16, "slots": 4, "timing_size": 8},
}
OBS, ACT = spaces.Discrete(4), spaces.Discrete(2)


def small(core: str) -> dict:
    return dict(SMALL.get(core, {}))


def make_policy(core: str, seed: int = 0, **kwargs) -> CorePolicy:
    torch.manual_seed(seed)
    kwargs.setdefault("core_options", small(core))
    return CorePolicy(OBS, ACT, lambda _: 3e-4, core=core, **kwargs)


def tmaze_venv(n_envs: int = 2, corridor: int = 2, seed: int = 0):
    return make_vec_env(TMazeSingle, n_envs=n_envs, seed=seed, env_kwargs={"corridor": corridor})


def run_core(core: Core, steps: int, batch: int, seed: int = 0) -> dict:
    """A non-trivial state: the core run ``steps`` steps from its initial state on random inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = torch.randn(steps, batch, core.input_size, generator=g)
        starts = torch.zeros(steps, batch, dtype=torch.bool)
        _, state, _ = core(x, core.initial_state(batch), starts)
    return state


# ---------------------------------------------------------------- a user's own core
@pytest.fixture
def counter_core():
    """A user core registered with register_core, with int64 and bool state entries."""

    class CounterCore(Core):
        def __init__(self, input_size: int, hidden_size: int = 8):
            super().__init__(input_size, hidden_size)
            self.proj = torch.nn.Linear(input_size + 1, hidden_size)
            self.init = InitialState({"h": (hidden_size,)}, learn=True)

        def initial_state(self, batch_size, device=None):
            h = self.init(batch_size, device)["h"]
            return {"h": h, "count": torch.full((batch_size, 2), 7, dtype=torch.int64, device=h.device),
                    "seen": torch.zeros(batch_size, 3, dtype=torch.bool, device=h.device)}

        def forward(self, x, state, starts, need_state=True):
            init = self.initial_state(x.shape[1], x.device)
            ys = []
            for t in range(x.shape[0]):
                s = {k: torch.where(starts[t].view(-1, *[1] * (v.dim() - 1)), init[k], v) for k, v in state.items()}
                feat = torch.cat([x[t], s["count"][:, :1].float() / 100], dim=-1)
                h = torch.tanh(self.proj(feat) + s["h"])
                state = {"h": h, "count": s["count"] + 1, "seen": s["seen"] | (x[t, :, :3] > 0)}
                ys.append(h)
            return torch.stack(ys), state, {}

    register_core("sb3_test_counter")(CounterCore)
    yield "sb3_test_counter"
    del CORES["sb3_test_counter"]


# ---------------------------------------------------------------- state packing
@pytest.mark.parametrize("name", sorted(CORES))
def test_state_round_trip_exact(name):
    policy = make_policy(name)
    packed_core = policy.lstm_actor
    state = run_core(packed_core.core, steps=6, batch=3)
    h, c = packed_core.pack(state) if state else packed_core.pack_empty(3, torch.device("cpu"))
    assert h.shape == c.shape == (1, 3, packed_core.hidden_size) and h.dtype == torch.float32
    assert packed_core.num_layers == 1
    # Through the rollout buffer's float32 numpy arrays, as RecurrentPPO stores them.
    h, c = torch.from_numpy(np.array(h.numpy(), dtype=np.float32)), torch.from_numpy(np.array(c.numpy()))
    back, has_state = packed_core.unpack((h, c))
    assert has_state.all()
    assert sorted(back) == sorted(state)
    for k in state:
        assert back[k].dtype == state[k].dtype and torch.equal(back[k], state[k]), k
    # sb3-contrib's zeros are "no state"
    _, has_state = packed_core.unpack((torch.zeros_like(h), torch.zeros_like(c)))
    assert not has_state.any()


def test_tmm_state_with_mixed_valid_slots_round_trips():
    packed_core = make_policy("tmm").lstm_actor
    state = run_core(packed_core.core, steps=2, batch=4)  # 4 slots, 2 steps: some valid, some not
    assert state["valid"].dtype == torch.bool and state["valid"].any() and not state["valid"].all()
    back, _ = packed_core.unpack(packed_core.pack(state))
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_integer_and_bool_state_round_trip(counter_core):
    packed_core = make_policy(counter_core, core_options={}).lstm_actor
    state = run_core(packed_core.core, steps=3, batch=2)
    state["count"] = torch.tensor([[2 ** 24, -(2 ** 24)], [0, 123456]])  # float32's exact range
    back, _ = packed_core.unpack(packed_core.pack(state))
    for k in state:
        assert back[k].dtype == state[k].dtype and torch.equal(back[k], state[k]), k
    # Beyond 2**24 float32 rounds (documented in rlmem.sb3).
    state["count"] = torch.tensor([[2 ** 24 + 1, 0], [0, 0]])
    back, _ = packed_core.unpack(packed_core.pack(state))
    assert back["count"][0, 0] != 2 ** 24 + 1


# ---------------------------------------------------------------- sequences
def sb3_layout(x_tb: torch.Tensor) -> torch.Tensor:
    """[T, n_seq, ...] -> sb3-contrib's [n_seq * T, ...] (sequence-major)."""
    return x_tb.transpose(0, 1).reshape(-1, *x_tb.shape[2:])


@pytest.mark.parametrize("name", ["gru", "tmm", "ntm", "lstm"])
def test_process_sequence_with_starts_equals_step_by_step(name):
    policy = make_policy(name)
    lstm = policy.lstm_actor
    T, n = 7, 3
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, n, lstm.input_size, generator=g)
    starts = torch.zeros(T, n, dtype=torch.bool)
    starts[0, 1] = starts[3, 0] = starts[5, 0] = starts[2, 2] = True
    # Row 0: zeros from sb3-contrib (no state); rows 1, 2: states from earlier steps.
    warm = lstm.pack(run_core(lstm.core, steps=4, batch=n, seed=2))
    h0 = warm[0].clone(); c0 = warm[1].clone()
    h0[:, 0] = 0; c0[:, 0] = 0

    with torch.enable_grad():  # as in training
        y_one, states_one = policy._process_sequence(sb3_layout(x), (h0, c0), sb3_layout(starts.float()), lstm)
    assert y_one.shape == (n * T, lstm.output_size)
    y_one = y_one.reshape(n, T, -1).transpose(0, 1)

    # Rollout path: T = 1 calls, carrying the packed state.
    ys, packed = [], (h0, c0)
    with torch.no_grad():
        for t in range(T):
            y, packed = policy._process_sequence(x[t], packed, starts[t].float(), lstm)
            ys.append(y)
    torch.testing.assert_close(y_one.detach(), torch.stack(ys), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(states_one[0], packed[0], atol=1e-5, rtol=1e-5)

    # The core itself, step by step, with explicit resets to its initial state.
    core = lstm.core
    state, _ = lstm.unpack((h0, c0))
    init = core.initial_state(n)
    ref = []
    with torch.no_grad():
        for t in range(T):
            reset = starts[t] | (torch.tensor([True, False, False]) if t == 0 else torch.zeros(n, dtype=torch.bool))
            state = {k: torch.where(reset.view(-1, *[1] * (v.dim() - 1)), init[k], v) for k, v in state.items()}
            y, state, _ = core(x[t:t + 1], state, torch.zeros(1, n, dtype=torch.bool))
            ref.append(y[0])
    torch.testing.assert_close(y_one.detach(), torch.stack(ref), atol=1e-5, rtol=1e-5)


def test_initial_state_not_zeros_at_starts():
    policy = make_policy("gru", core_options={"hidden_size": 16, "learn_init": True})
    lstm = policy.lstm_actor
    with torch.no_grad():
        lstm.core.init.params["h"].normal_()
    x = torch.randn(1, 2, lstm.input_size)
    core = lstm.core
    with torch.no_grad():
        y_init, _, _ = core(x, core.initial_state(2), torch.zeros(1, 2, dtype=torch.bool))
        y_zero, _, _ = core(x, {"h": torch.zeros(2, 1, 16)}, torch.zeros(1, 2, dtype=torch.bool))
        assert not torch.allclose(y_init, y_zero)
        zeros = (torch.zeros(1, 2, lstm.hidden_size), torch.zeros(1, 2, lstm.hidden_size))
        warm = lstm.pack(run_core(core, 3, 2))
        # zero state (sb3-contrib's initial _last_lstm_states), with or without episode_starts
        for packed, starts in [(zeros, torch.ones(2)), (zeros, torch.zeros(2)), (warm, torch.ones(2))]:
            y, _ = policy._process_sequence(x[0], packed, starts, lstm)
            torch.testing.assert_close(y, y_init[0], rtol=0, atol=0)

    # predict(state=None) starts from the initial state too
    _, state = policy.predict(np.array([0, 1]), state=None)
    with torch.no_grad():
        feats = policy.extract_features(torch.tensor([0, 1]))
        _, expect, _ = core(feats.unsqueeze(0), core.initial_state(2), torch.zeros(1, 2, dtype=torch.bool))
    back, _ = lstm.unpack(tuple(torch.from_numpy(s) for s in state))
    torch.testing.assert_close(back["h"], expect["h"])


@pytest.mark.parametrize("name,kwargs", [
    ("gru", {}), ("gru", {"enable_critic_lstm": False, "shared_lstm": True}),
    ("gru", {"enable_critic_lstm": False}), ("gru", {"share_features_extractor": False}), ("ntm", {}), ("tmm", {}),
])
def test_training_pass_matches_rollout(name, kwargs):
    """The buffer's padded, cut training sequences (stored states, zero states at the first reset,
    episode starts inside the rollout) give the rollout's own log-probs and values."""
    model = RecurrentPPO(CorePolicy, tmaze_venv(n_envs=3, corridor=3), n_steps=20, batch_size=13, seed=0,
                         policy_kwargs={"core": name, "core_options": small(name), **kwargs})
    _, callback = model._setup_learn(60, callback=None)
    assert model._last_episode_starts.all()
    assert all(torch.equal(s, torch.zeros_like(s)) for s in (*model._last_lstm_states.pi, *model._last_lstm_states.vf))
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
    buf = model.rollout_buffer
    assert not buf.hidden_states_pi[0].any() and buf.episode_starts[0].all()  # stored zeros, starts
    assert buf.episode_starts[1:].any()  # episodes start inside the rollout
    n_checked = 0
    for data in buf.get(model.batch_size):
        mask = data.mask > 1e-8
        with torch.no_grad():
            values, log_prob, _ = model.policy.evaluate_actions(data.observations, data.actions.long().flatten(),
                                                                data.lstm_states, data.episode_starts)
        torch.testing.assert_close(log_prob[mask], data.old_log_prob[mask], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(values.flatten()[mask], data.old_values[mask], atol=1e-5, rtol=1e-5)
        n_checked += int(mask.sum())
    assert n_checked == 3 * 20


# ---------------------------------------------------------------- save / load
@pytest.mark.parametrize("name", ["ntm", "tmm"])
def test_save_load_round_trip(tmp_path, name):
    venv = tmaze_venv()
    model = RecurrentPPO(CorePolicy, venv, n_steps=16, batch_size=16, n_epochs=1, seed=0,
                         policy_kwargs={"core": name, "core_options": small(name)})
    model.learn(32)
    model.save(tmp_path / "model")
    loaded = RecurrentPPO.load(tmp_path / "model", device="cpu")
    assert isinstance(loaded.policy, CorePolicy)
    assert loaded.policy_kwargs["core"] == name and loaded.policy_kwargs["core_options"] == small(name)
    params = loaded.policy._get_constructor_parameters()
    assert params["core"] == name and params["core_options"] == small(name)

    obs = np.array([[0, 1], [2, 2], [2, 2], [3, 3], [1, 0], [2, 2]])
    starts = np.array([[1, 1], [0, 0], [0, 0], [0, 0], [1, 1], [0, 0]], dtype=bool)
    states = [None, None]
    for t in range(len(obs)):
        outs = []
        for i, m in enumerate((model, loaded)):
            action, states[i] = m.predict(obs[t], state=states[i], episode_start=starts[t], deterministic=True)
            st = tuple(torch.as_tensor(s) for s in states[i])
            with torch.no_grad():
                value = m.policy.predict_values(torch.as_tensor(obs[t]), st, torch.zeros(2))
            outs.append((action, states[i], value))
        assert np.array_equal(outs[0][0], outs[1][0])
        assert all(np.array_equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))
        assert torch.equal(outs[0][2], outs[1][2])

    # policy.save / CorePolicy.load too (SB3's _get_constructor_parameters)
    model.policy.save(tmp_path / "policy")
    policy = CorePolicy.load(tmp_path / "policy")
    a, _ = policy.predict(obs[0], deterministic=True)
    b, _ = model.policy.predict(obs[0], deterministic=True)
    assert np.array_equal(a, b)

    mean, _ = evaluate_policy(loaded, gymnasium.make("rlmem/TMaze-v0", corridor=2), n_eval_episodes=2)
    assert -1.0 <= mean <= 1.0


# ---------------------------------------------------------------- errors
def test_unknown_core_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid cores: .*gru.*ntm.*tmm"):
        make_policy("no-such-core", core_options={})
    with pytest.raises(ValueError, match="valid options"):
        make_policy("gru", core_options={"hiden_size": 3})
    with pytest.raises(ValueError, match="core_options"):
        make_policy("gru", lstm_hidden_size=64)
    with pytest.raises(ValueError, match="not both"):
        make_policy("gru", shared_lstm=True)


def test_builds_no_lstm():
    policy = make_policy("gru")
    assert not any(isinstance(m, torch.nn.LSTM) for m in policy.modules())
    assert isinstance(policy.lstm_actor, PackedCore) and isinstance(policy.lstm_critic, PackedCore)


def test_aux_loss_reaches_the_core():
    """tmm's aux_loss (prediction) trains through RecurrentPPO's loss, which only sees the values."""
    model = RecurrentPPO(CorePolicy, tmaze_venv(), n_steps=16, batch_size=32, seed=0,
                         policy_kwargs={"core": "tmm", "core_options": small("tmm")})
    _, callback = model._setup_learn(32, callback=None)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=16)
    data = next(model.rollout_buffer.get(32))
    predict = model.policy.lstm_actor.core.predict.weight
    values, _, _ = model.policy.evaluate_actions(data.observations, data.actions.long().flatten(),
                                                 data.lstm_states, data.episode_starts)
    (values * 0).sum().backward()
    assert predict.grad is not None and predict.grad.abs().sum() > 0


# ---------------------------------------------------------------- optimizer
def test_adam_eps_lets_the_first_update_move_the_actor_core():
    """With a separate critic the actor's core learns from the policy loss alone, through SB3's
    0.01-gain action head: on t-maze (corridor 20) its gradients are far below SB3's Adam eps
    (1e-5), which would shrink its first step to about 1% of the learning rate (a GRU then does
    not learn the task). Adam's first step is ``lr * g / (|g| + eps)``: about ``lr`` here."""
    lr = 1e-3
    model = RecurrentPPO(CorePolicy, tmaze_venv(n_envs=8, corridor=20), n_steps=64, batch_size=512, n_epochs=1,
                         learning_rate=lr, seed=0, policy_kwargs={"core": "gru", "core_options": {"hidden_size": 64}})
    assert model.policy.optimizer.defaults["eps"] == 1e-8
    params = list(model.policy.lstm_actor.core.parameters())
    before = torch.cat([p.detach().flatten() for p in params])
    model.learn(512)  # one rollout, one minibatch, one optimizer step
    assert model._n_updates == 1
    step = (torch.cat([p.detach().flatten() for p in params]) - before).abs() / lr
    assert step.median() >= 0.5  # SB3's eps: 0.01


def test_optimizer_kwargs_given_are_used_as_is():
    policy = make_policy("gru", optimizer_kwargs={"eps": 1e-5, "weight_decay": 0.1})
    assert policy.optimizer.defaults["eps"] == 1e-5 and policy.optimizer.defaults["weight_decay"] == 0.1
    policy = make_policy("gru", optimizer_class=torch.optim.RMSprop)
    assert policy.optimizer_kwargs == {}  # the eps default is Adam's only


# ---------------------------------------------------------------- RecurrentPPO end to end
@pytest.mark.parametrize("name", sorted(CORES))
def test_every_core_learns_briefly(name):
    model = RecurrentPPO(CorePolicy, tmaze_venv(), n_steps=32, batch_size=32, n_epochs=2, seed=0,
                         policy_kwargs={"core": name, "core_options": small(name)})
    model.learn(256)
    assert model.num_timesteps >= 256


def test_user_registered_core(counter_core, tmp_path):
    model = RecurrentPPO(CorePolicy, tmaze_venv(), n_steps=16, batch_size=16, n_epochs=1, seed=0,
                         policy_kwargs={"core": counter_core})
    model.learn(32)
    model.save(tmp_path / "m")
    loaded = RecurrentPPO.load(tmp_path / "m")
    a, s = model.predict(np.array([0, 1]), deterministic=True)
    b, t = loaded.predict(np.array([0, 1]), deterministic=True)
    assert np.array_equal(a, b) and all(np.array_equal(x, y) for x, y in zip(s, t))


def test_string_env_id():
    """SB3 makes a string id with render_mode="rgb_array" and falls back on a TypeError."""
    model = RecurrentPPO(CorePolicy, "rlmem/TMaze-v0", n_steps=16, batch_size=16, n_epochs=1,
                         policy_kwargs={"core": "gru", "core_options": small("gru")})
    model.learn(16)


@pytest.mark.slow
def test_gru_learns_short_tmaze():
    model = RecurrentPPO(CorePolicy, tmaze_venv(n_envs=8, corridor=2), n_steps=32, batch_size=64,
                         n_epochs=4, learning_rate=1e-3, ent_coef=0.01, seed=0,
                         policy_kwargs={"core": "gru", "core_options": {"hidden_size": 32}})
    model.learn(6000)
    mean, _ = evaluate_policy(model, tmaze_venv(n_envs=4, corridor=2, seed=1), n_eval_episodes=40,
                              deterministic=True)
    assert mean >= 0.9  # random: 0, no memory: 0
