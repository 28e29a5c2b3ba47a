"""Observation encoders by space, action heads by space, and the actor-critic's acting API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlmem.envs import make_batched
from rlmem.policy import ActionHead, RecurrentActorCritic, UnsupportedSpaceError, make_encoder, to_torch, tree_map

T, B = 3, 4


def batch_of(space: spaces.Space, seed: int = 0):
    """[T, B, ...] samples of ``space`` as torch tensors (nested for Dict/Tuple)."""
    space.seed(seed)
    samples = [[space.sample() for _ in range(B)] for _ in range(T)]
    stacked = tree_map(lambda *xs: np.stack(xs), *[tree_map(lambda *ys: np.stack(ys), *row) for row in samples])
    return to_torch(stacked, "cpu")


@pytest.mark.parametrize("space, size", [
    (spaces.Discrete(5), 5),
    (spaces.Discrete(3, start=-1), 3),
    (spaces.MultiDiscrete([2, 3, 4]), 9),
    (spaces.MultiBinary(7), 7),
    (spaces.Box(-1, 1, (3, 2), np.float32), 6),
    (spaces.Dict({"a": spaces.Discrete(3), "b": spaces.Box(0, 1, (2,), np.float32)}), 5),
    (spaces.Tuple((spaces.Discrete(2), spaces.MultiBinary(3))), 5),
])
def test_encoder_output_size(space, size):
    enc = make_encoder(space)
    assert enc.out_size == size
    out = enc(batch_of(space))
    assert out.shape == (T, B, size) and out.dtype == torch.float32


def test_discrete_is_one_hot():
    enc = make_encoder(spaces.Discrete(4))
    out = enc(torch.tensor([[0, 3]]))
    assert torch.equal(out, torch.tensor([[[1., 0, 0, 0], [0, 0, 0, 1]]]))


def test_multidiscrete_one_hots_each_component():
    enc = make_encoder(spaces.MultiDiscrete([2, 3]))
    out = enc(torch.tensor([[[1, 2]]]))
    assert torch.equal(out, torch.tensor([[[0., 1, 0, 0, 1]]]))


@pytest.mark.parametrize("shape", [(7, 7, 3), (3, 64, 64)])
def test_images_go_through_a_cnn(shape):
    space = spaces.Box(0, 255, shape, np.uint8)
    enc = make_encoder(space)
    assert hasattr(enc, "cnn")
    assert enc(batch_of(space)).shape == (T, B, enc.out_size)


def test_dict_leaves_out_text_with_a_warning():
    space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float32), "note": spaces.Text(5)})
    with pytest.warns(UserWarning, match="'note'"):
        enc = make_encoder(space)
    assert enc.out_size == 2


@pytest.mark.parametrize("space", [spaces.Text(4), spaces.Graph(spaces.Box(0, 1, (2,)), None)])
def test_unsupported_observation_space_is_named(space):
    with pytest.raises(UnsupportedSpaceError, match=type(space).__name__):
        make_encoder(space)


def test_dict_with_nothing_encodable_is_refused():
    with pytest.warns(UserWarning, match="'only'"), pytest.raises(UnsupportedSpaceError, match="no part"):
        make_encoder(spaces.Dict({"only": spaces.Text(3)}))


@pytest.mark.parametrize("space", [spaces.Discrete(4), spaces.MultiDiscrete([3, 2]), spaces.MultiBinary(5),
                                   spaces.Box(-2, 2, (3,), np.float32)])
def test_action_heads(space):
    head = ActionHead(8, space)
    dist = head(torch.randn(T, B, 8))
    a = dist.sample()
    assert a.shape == (T, B, *space.shape)
    assert dist.log_prob(a).shape == (T, B)
    assert dist.entropy().shape == (T, B)
    assert torch.all(dist.entropy() > 0) or isinstance(space, spaces.Box)
    env_action = head.to_env(a[0])
    for i in range(B):
        assert space.contains(np.asarray(env_action[i], dtype=space.dtype))


def test_categorical_log_prob_and_sampling_match_softmax():
    head = ActionHead(2, spaces.Discrete(3))
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    from rlmem.policy.distributions import Categorical

    dist = Categorical(logits.expand(20000, 3))
    counts = torch.bincount(dist.sample(), minlength=3).float() / 20000
    torch.testing.assert_close(counts, torch.softmax(logits[0], 0), atol=0.02, rtol=0)
    torch.testing.assert_close(dist.log_prob(torch.tensor([0] * 20000))[0], torch.log_softmax(logits[0], 0)[0])
    assert head.kind == "categorical"


def test_unsupported_action_space_is_named():
    with pytest.raises(UnsupportedSpaceError, match="Text"):
        ActionHead(4, spaces.Text(3))


def test_predict_keeps_state_and_resets_at_episode_start():
    torch.manual_seed(0)
    policy = RecurrentActorCritic(spaces.Discrete(3), spaces.Discrete(2), "gru", {"hidden_size": 8}, embed_size=8)
    obs = np.array([0, 1, 2])
    a1, s1 = policy.predict(obs, None, deterministic=True)
    assert a1.shape == (3,) and set(s1) == {"h"}
    _, s2 = policy.predict(obs, s1, np.array([False, True, False]), deterministic=True)
    _, fresh = policy.predict(obs, None, deterministic=True)
    assert torch.allclose(s2["h"][1], fresh["h"][1])
    assert not torch.allclose(s2["h"][0], fresh["h"][0])


def test_prev_action_and_reward_inputs_are_masked_at_starts():
    torch.manual_seed(0)
    policy = RecurrentActorCritic(spaces.Discrete(3), spaces.Discrete(2), "mlp", {"hidden_size": 8},
                                  embed_size=8, prev_action=True, prev_reward=True)
    obs = torch.zeros(1, 2, dtype=torch.long)
    state = policy.initial_state(2)
    prev_a, prev_r = torch.tensor([[1, 1]]), torch.tensor([[5.0, 5.0]])
    starts = torch.tensor([[True, False]])
    v = policy(obs, state, starts, prev_a, prev_r).value
    v_zero = policy(obs, state, starts, torch.zeros_like(prev_a), torch.zeros_like(prev_r)).value
    assert v[0, 0] == v_zero[0, 0]  # masked at the start
    assert v[0, 1] != v_zero[0, 1]  # used elsewhere
    with pytest.raises(ValueError, match="prev_action"):
        policy(obs, state, starts)


def test_a_core_that_stores_its_inputs_gets_them_unembedded():
    # tmm keeps tokens for many steps: it must store the encoded observation itself, not an
    # embedding that later training would change.
    space = spaces.Discrete(5)
    policy = RecurrentActorCritic(space, spaces.Discrete(2), "tmm", {"hidden_size": 8, "slots": 2}, embed_size=32)
    assert isinstance(policy.torso.embed, torch.nn.Identity) and policy.torso.core.input_size == 5
    obs = torch.tensor([[3, 1]])  # [T=1, B=2]
    _, state, _ = policy.torso(obs, policy.initial_state(2), torch.ones(1, 2, dtype=torch.bool))
    assert torch.equal(state["slot_x"][:, 0], torch.nn.functional.one_hot(obs[0], 5).float())


def test_embed_size_zero_feeds_the_encoded_observation():
    policy = RecurrentActorCritic(spaces.MultiBinary(6), spaces.Discrete(2), "gru", {"hidden_size": 8}, embed_size=0)
    assert policy.torso.core.input_size == 6
    with pytest.raises(ValueError, match="embed_size"):
        RecurrentActorCritic(spaces.MultiBinary(6), spaces.Discrete(2), "gru", {"hidden_size": 8}, embed_size=-1)


def test_predict_takes_one_unbatched_observation_or_a_batch():
    import gymnasium as gym

    import rlmem.envs  # noqa: F401  registers rlmem/... ids

    env = gym.make("rlmem/TMaze-v0", corridor=2)
    policy = RecurrentActorCritic(env.observation_space, env.action_space, "gru", {"hidden_size": 8}, embed_size=8)
    obs, _ = env.reset(seed=0)
    action, state = policy.predict(obs, deterministic=True)
    assert np.ndim(action) == 0 and env.action_space.contains(int(action))
    action2, state2 = policy.predict(np.array([obs, obs]), deterministic=True)
    assert action2.shape == (2,) and action2[0] == action
    torch.testing.assert_close(state2["h"][:1], state["h"])  # the same up to the rounding of another batch size
    obs, *_ = env.step(action)
    again, _ = policy.predict(obs, state, episode_start=False, deterministic=True)
    assert np.ndim(again) == 0
    with pytest.raises(ValueError, match="fits neither one observation"):
        policy.predict(np.zeros((2, 3)))


def test_sb3_evaluate_policy_runs_a_loaded_rlmem_policy(tmp_path):
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy as sb3_evaluate

    import rlmem.envs  # noqa: F401
    from rlmem.agents import PPO, evaluate_policy
    from rlmem.checkpoint import load_policy, save_checkpoint

    env = make_batched("t-maze", 16, seed=0, corridor=2)
    torch.manual_seed(0)
    policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, "gru", {"hidden_size": 16},
                                  embed_size=16)
    PPO(env, policy, n_steps=16, batch_size=64, seq_len=8, learning_rate=3e-3).learn(6000)
    path = save_checkpoint(tmp_path / "c.pt", policy, "ppo", {"policy": policy.state_dict(), "num_timesteps": 0})
    loaded = load_policy(path)
    venv = make_vec_env(lambda: gym.make("rlmem/TMaze-v0", corridor=2), n_envs=4, seed=1)
    mean, _ = sb3_evaluate(loaded, venv, n_eval_episodes=40, deterministic=True)
    ours = evaluate_policy(loaded, make_batched("t-maze", 4, seed=1, corridor=2), 40)["return_mean"]
    assert ours > 0.8 and abs(mean - ours) < 0.15
