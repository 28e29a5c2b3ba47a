"""Recording one episode (rlmem.episode_record) and drawing it (rlmem.episode_pictures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlmem.envs import make_vector_env
from rlmem.episode_pictures import episode_figures, figure_to_rgb, save_figures
from rlmem.episode_record import EpisodeRecord, record_episode
from rlmem.episode_video import FrameRecorder, renders_rgb, save_gif
from rlmem.policy import RecurrentActorCritic, RecurrentQNetwork

TESTS = Path(__file__).parent

# core, its options, env, env params, episode length, figures
CASES = {
    "gru": (dict(hidden_size=16), "t-maze", dict(corridor=4), 6, {"episode/inputs", "core/state"}),
    "ntm": (dict(hidden_size=16, memory_size=8, memory_width=4, read_heads=2), "memory-copy",
            dict(length=3, bits=4), 7, {"episode/inputs", "core/ntm_weights", "core/state", "core/scalars"}),
    "tmm": (dict(hidden_size=16, heads=2, slots=4, timing_size=4), "repeat-previous", dict(length=12), 12,
            {"episode/inputs", "core/tmm_slots", "core/scalars"}),
    "tape": (dict(slots=16, heads=2, position_size=4), "repeat-previous", dict(length=12), 12,
             {"episode/inputs", "core/tape_attention", "core/scalars"}),
    "counts": (dict(levels=8), "count-recall", dict(length=10), 10, {"episode/inputs", "core/state", "core/scalars"}),
}


def build(core: str, n_envs: int = 3, seed: int = 0, network=RecurrentActorCritic, **policy_args):
    options, env_name, params, _, _ = CASES[core]
    env = make_vector_env(env_name, n_envs, seed=seed, **params)
    torch.manual_seed(seed)
    policy = network(env.single_observation_space, env.single_action_space, core=core, core_options=options,
                     embed_size=16, **policy_args)
    return policy, env


def assert_same_record(a: EpisodeRecord, b: EpisodeRecord) -> None:
    assert (a.core, a.length, a.episode_return, a.truncated_by_cap) == (b.core, b.length, b.episode_return,
                                                                       b.truncated_by_cap)
    for name in ("observations", "actions", "rewards"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("extras", "states"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.keys() == y.keys()
        assert all(torch.equal(torch.from_numpy(x[k]), torch.from_numpy(y[k])) for k in x), name


@pytest.mark.parametrize("core", list(CASES))
def test_record_has_the_episode_and_the_core_diagnostics(core):
    policy, env = build(core)
    length, figures = CASES[core][3], CASES[core][4]
    record = record_episode(policy, env, seed=1)
    assert record.core == core and record.length == length and not record.truncated_by_cap
    assert record.actions.shape[0] == record.rewards.shape[0] == len(record.observations) == length
    assert record.episode_return == float(np.sum(record.rewards))
    assert all(v.shape[0] == length for v in (*record.extras.values(), *record.states.values()))
    if core == "ntm":
        read, write = record.extras["read_weights"], record.extras["write_weights"]
        assert read.shape == (length, 2, 8) and write.shape == (length, 1, 8)
        np.testing.assert_allclose(read.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(write.sum(-1), 1.0, atol=1e-5)
        assert record.states["memory"].shape == (length, 8, 4) and record.states["h"].shape == (length, 16)
    if core == "tmm":
        assert record.extras["slot_age"].shape == record.extras["attention"].shape == (length, 4)
        written = record.extras["written_slot"]
        assert written.shape == (length,) and written[0] == 0 and ((-1 <= written) & (written < 4)).all()
        assert (record.extras["attention"].sum(-1) <= 1 + 1e-5).all()
        assert "valid" not in record.states  # float entries only
    if core == "gru":
        assert record.states["h"].shape == (length, 1, 16) and record.extras == {}
    if core == "tape":
        attention = record.extras["tape_attention"]
        assert attention.shape == (length, 2, 16)
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
        assert (attention[..., length:] == 0).all()            # slots never written get no weight
    if core == "counts":
        assert record.states["n"].shape == (length, 8)         # one count per encoded feature (4 + 4 one-hot)
        assert record.states["n"].sum(-1).tolist() == [2.0 * (t + 1) for t in range(length)]
    assert set(episode_figures(record)) == figures


@pytest.mark.parametrize("core", list(CASES))
def test_same_seed_gives_the_same_episode_even_when_sampling(core):
    policy, env = build(core)
    for deterministic in (True, False):
        first = record_episode(policy, env, deterministic=deterministic, seed=5)
        again = record_episode(policy, env, deterministic=deterministic, seed=5)
        assert_same_record(first, again)
    other_policy, other_env = build(core)  # a fresh, equal policy and env
    assert_same_record(record_episode(other_policy, other_env, seed=5), record_episode(policy, env, seed=5))


@pytest.mark.parametrize("core", list(CASES))
def test_replaying_the_recorded_actions_gives_the_recorded_rewards(core):
    policy, env = build(core, n_envs=2)
    record = record_episode(policy, env, seed=2)
    _, fresh = build(core, n_envs=2)
    fresh.reset(seed=2)
    for t in range(record.length):
        both = np.stack([record.actions[t]] * 2)  # copy 1 acts as copy 0 did; only copy 0 is checked
        _, reward, terminated, truncated, _ = fresh.step(both)
        assert reward[0] == np.float32(record.rewards[t])
        assert bool(terminated[0] or truncated[0]) == (t == record.length - 1)


def test_record_acts_as_predict_does_with_previous_action_and_reward():
    policy, env = build("gru", n_envs=2, prev_action=True, prev_reward=True)
    record = record_episode(policy, env, seed=3)
    obs, _ = env.reset(seed=3)
    state, starts, prev_a, prev_r = None, np.ones(2, bool), np.zeros(2, np.int64), np.zeros(2, np.float32)
    actions = []
    for _ in range(record.length):
        action, state = policy.predict(obs, state, starts, True, prev_a, prev_r)
        obs, reward, terminated, truncated, _ = env.step(action)
        actions.append(action[0])
        starts, prev_a, prev_r = terminated | truncated, action, reward.astype(np.float32)
    assert np.array_equal(np.array(actions), record.actions)
    assert torch.equal(state["h"][0], torch.from_numpy(record.states["h"][-1]))


def test_q_network_and_the_step_cap():
    policy, env = build("ntm", network=RecurrentQNetwork)
    record = record_episode(policy, env, seed=0)
    assert record.length == 7 and record.actions.shape == (7, 4) and "read_weights" in record.extras
    capped = record_episode(policy, env, seed=0, max_steps=3)
    assert capped.length == 3 and capped.truncated_by_cap
    assert np.array_equal(capped.actions, record.actions[:3])
    with pytest.raises(ValueError, match="max_steps"):
        record_episode(policy, env, max_steps=0)


@pytest.mark.parametrize("core", list(CASES))
def test_pictures_are_written_as_non_empty_pngs(core, tmp_path):
    policy, env = build(core)
    figs = episode_figures(record_episode(policy, env, seed=0))
    image = figure_to_rgb(figs["episode/inputs"])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.std() > 0
    paths = save_figures(figs, tmp_path / "pics", prefix="ep_", close=True)
    assert sorted(p.name for p in paths) == sorted("ep_" + n.replace("/", "_") + ".png" for n in figs)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


@pytest.mark.parametrize("env_id, parts", [("foreign_envs:ForeignDictText-v0", {"position", "cue"}),
                                           ("foreign_envs:ForeignTupleGraph-v0", None)])
def test_foreign_dict_and_tuple_envs_record(env_id, parts, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(TESTS))
    env = make_vector_env("gym", 2, seed=0, id=env_id)
    with pytest.warns(UserWarning):  # the parts that cannot be encoded are left out
        policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, core="lstm",
                                      core_options=dict(hidden_size=8), embed_size=8)
    record = record_episode(policy, env, seed=0)
    assert record.length == 4 and isinstance(record.observations, list) and len(record.observations) == 4
    if parts is not None:
        assert set(record.observations[0]) == parts  # Text and Sequence left out
    else:
        assert len(record.observations[0]) == 1  # the Graph left out
    figs = episode_figures(record)
    assert set(figs) == {"episode/inputs", "core/state"}
    assert all(p.stat().st_size > 0 for p in save_figures(figs, tmp_path))


def test_minigrid_episode_with_rgb_frames_as_a_gif(tmp_path):
    pytest.importorskip("minigrid")
    env = make_vector_env("gym", 1, seed=0, id="minigrid:MiniGrid-Empty-5x5-v0", kwargs={"render_mode": "rgb_array"})
    assert renders_rgb(env)
    with pytest.warns(UserWarning):
        policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, core="gru",
                                      core_options=dict(hidden_size=8), embed_size=8)
    frames = FrameRecorder(env)
    record = record_episode(policy, frames, seed=0, max_steps=20)
    assert record.length == len(frames.frames) and frames.frames[0].shape[2] == 3
    assert set(record.observations[0]) == {"direction", "image"}
    gif = save_gif(frames.frames, tmp_path / "episode.gif")
    assert gif.read_bytes()[:6] == b"GIF89a"
    assert "episode/inputs" in episode_figures(record)
