"""Tests for the batched memory tasks in ``rlmem.envs``."""

from __future__ import annotations

import ast
import pathlib
import sys
import warnings
from typing import Any, Callable

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.utils.env_checker import check_env
from gymnasium.vector.utils import batch_space

from rlmem.envs import BUILTIN_ENVS, ORACLES, BatchedEnv, env_id, env_params, make_batched
from rlmem.envs.stateless_cartpole import THETA_LIMIT, X_LIMIT

NAMES = list(BUILTIN_ENVS)
ENVS_DIR = pathlib.Path(__file__).resolve().parents[1] / "envs"

# Episode length (number of actions) with default parameters; None where it depends on play.
DEFAULT_LENGTH = {
    "memory-copy": 2 * 5 + 1,
    "repeat-previous": 52,
    "repeat-first": 52,
    "count-recall": 52,
    "t-maze": 20 + 2,
    "stateless-cartpole": None,
    "surprise-recall": 200 + 3,
}


# -- helpers --------------------------------------------------------------------------------
def run_policy(
    env: BatchedEnv,
    policy: Callable[[np.ndarray, np.ndarray], np.ndarray],
    episodes_per_copy: int,
    seed: int = 0,
) -> np.ndarray:
    """Returns of all episodes finished until every copy has finished ``episodes_per_copy``."""
    obs, _ = env.reset(seed=seed)
    starts = np.ones(env.num_envs, dtype=bool)
    running = np.zeros(env.num_envs)
    finished = np.zeros(env.num_envs, dtype=np.int64)
    returns: list[np.ndarray] = []
    while finished.min() < episodes_per_copy:
        obs, rewards, terminated, truncated, _ = env.step(policy(obs, starts))
        running += rewards
        starts = terminated | truncated
        returns.append(running[starts].copy())
        running[starts] = 0.0
        finished += starts
    return np.concatenate(returns)


def collect_episodes(env: BatchedEnv, n_steps: int, seed: int = 0) -> list[dict[str, Any]]:
    """Play random actions and split the stream into finished per-copy episodes.

    Each episode holds ``obs`` (the observations acted on), ``actions``, ``rewards``,
    ``final`` (info["final_obs"] entry), ``terminated`` and ``truncated``.
    """
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    current = [{"obs": [obs[i]], "actions": [], "rewards": []} for i in range(env.num_envs)]
    episodes = []
    for _ in range(n_steps):
        actions = env.action_space.sample()
        obs, rewards, terminated, truncated, info = env.step(actions)
        for i in range(env.num_envs):
            ep = current[i]
            ep["actions"].append(actions[i])
            ep["rewards"].append(rewards[i])
            if terminated[i] or truncated[i]:
                ep.update(final=info["final_obs"][i], terminated=terminated[i], truncated=truncated[i])
                episodes.append(ep)
                current[i] = {"obs": [obs[i]], "actions": [], "rewards": []}
            else:
                ep["obs"].append(obs[i])
    return episodes


def expected_rewards(name: str, params: dict[str, Any], ep: dict[str, Any]) -> list[float]:
    """Rewards of one episode recomputed from the task rules and the observations alone."""
    p = {**env_params(name), **params}
    obs, actions = ep["obs"], ep["actions"]
    out = []
    for t, action in enumerate(actions):
        if name == "memory-copy":
            delim = next(i for i, o in enumerate(obs) if o[-1] == 1)
            if t > delim:
                shown = obs[t - delim - 1][:-1]
                matches = int(np.sum(np.asarray(action) == shown))
                out.append((2 * matches - p["bits"]) / (delim * p["bits"]))
            else:
                out.append(0.0)
        elif name == "repeat-previous":
            k, length = p["k"], p["length"]
            out.append(0.0 if t < k else (1 if action == obs[t - k] else -1) / (length - k))
        elif name == "repeat-first":
            out.append(0.0 if t == 0 else (1 if action == obs[0] else -1) / (p["length"] - 1))
        elif name == "count-recall":
            query = obs[t][1]
            count = min(sum(int(o[0] == query) for o in obs[: t + 1]), p["max_count"])
            out.append((1 if action == count else -1) / p["length"])
        elif name == "t-maze":
            out.append(0.0 if t < p["corridor"] + 1 else (1.0 if action == obs[0] else -1.0))
        elif name == "stateless-cartpole":
            out.append(1.0 / p["max_steps"])
        elif name == "surprise-recall":
            period, stream_len, n_s = p["period"], p["length"], p["n_surprises"]
            rare = [o[0] for o in obs[:stream_len] if o[0] >= period]
            if t < stream_len:
                out.append(0.0)
            else:
                i = obs[t][1]
                out.append((1 if action == rare[i - 1] - period else -1) / n_s)
    return out


def first_obs_ok(name: str, env: BatchedEnv, o: np.ndarray) -> bool:
    """Whether ``o`` can be the first observation of an episode."""
    if o not in env.single_observation_space:
        return False
    if name == "memory-copy":
        return o[-1] == 0
    if name == "t-maze":
        return o in (0, 1)
    if name == "stateless-cartpole":
        return bool(np.all(np.abs(o) <= 0.05))
    if name == "surprise-recall":
        return o[1] == 0 and o[0] < env.marker
    return True


# -- gymnasium integration ------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_check_env(name: str) -> None:
    env = gymnasium.make(env_id(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "different from the unwrapped version" for make()'s wrappers
        check_env(env, skip_render_check=True)
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("name", NAMES)
def test_spaces_and_make_vec(name: str) -> None:
    num_envs = 5
    batched = make_batched(name, num_envs, seed=0)
    single = gymnasium.make(env_id(name))
    assert single.observation_space == batched.single_observation_space
    assert single.action_space == batched.single_action_space
    assert batched.observation_space == batch_space(batched.single_observation_space, num_envs)
    assert batched.action_space == batch_space(batched.single_action_space, num_envs)
    assert single.unwrapped.optimal_return == batched.optimal_return == 1.0
    assert batched.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
    assert batched.autoreset_mode == gymnasium.vector.AutoresetMode.SAME_STEP

    vec = gymnasium.make_vec(env_id(name), num_envs=num_envs, vectorization_mode="vector_entry_point")
    assert type(vec) is BUILTIN_ENVS[name]
    assert vec.num_envs == num_envs
    obs, info = vec.reset(seed=1)
    assert obs in vec.observation_space and info == {}
    obs, rewards, terminated, truncated, _ = vec.step(vec.action_space.sample())
    assert obs in vec.observation_space
    assert rewards.dtype == np.float32 and rewards.shape == (num_envs,)
    assert terminated.dtype == np.bool_ and truncated.dtype == np.bool_
    assert terminated.shape == truncated.shape == (num_envs,)


def test_make_with_params_and_module_prefix() -> None:
    env = gymnasium.make("rlmem.envs:rlmem/TMaze-v0", corridor=5)
    assert env.unwrapped.batched.corridor == 5
    vec = gymnasium.make_vec("rlmem/TMaze-v0", num_envs=256, vectorization_mode="vector_entry_point", corridor=5)
    assert vec.num_envs == 256 and vec.corridor == 5
    # The single env also works under gymnasium's own vectorization.
    sync = gymnasium.make_vec("rlmem/RepeatFirst-v0", num_envs=3, vectorization_mode="sync", length=4)
    obs, _ = sync.reset(seed=0)
    assert obs.shape == (3,)


def test_gymnasium_vector_wrappers_see_same_step_autoreset() -> None:
    env = gymnasium.wrappers.vector.RecordEpisodeStatistics(make_batched("t-maze", 8, seed=0, corridor=4))
    policy = ORACLES["t-maze"](8)
    obs, _ = env.reset()
    starts = np.ones(8, dtype=bool)
    for _ in range(6 * 3):
        obs, _, terminated, truncated, info = env.step(policy.act(obs, starts))
        starts = terminated | truncated
    assert info["_episode"].all()
    assert list(env.length_queue) == [6] * len(env.length_queue) and len(env.length_queue) == 24
    assert list(env.return_queue) == [1.0] * 24


def test_reimport_does_not_reregister() -> None:
    import importlib

    import rlmem.envs

    importlib.reload(rlmem.envs)
    assert "rlmem/TMaze-v0" in gymnasium.registry


def test_envs_package_is_self_contained() -> None:
    # Only the standard library, numpy and gymnasium: no torch, no other rlmem modules.
    allowed = set(sys.stdlib_module_names) | {"gymnasium", "numpy"}
    for path in ENVS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"


# -- returns ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_oracle_reaches_optimal_return(name: str) -> None:
    env = make_batched(name, 64, seed=0)
    policy = ORACLES[name](64)
    returns = run_policy(env, policy.act, episodes_per_copy=3, seed=1)
    assert len(returns) >= 3 * 64
    np.testing.assert_allclose(returns, env.optimal_return, atol=1e-5)
    assert abs(returns.mean() - 1.0) <= 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_random_policy_scores_far_below_optimal(name: str) -> None:
    env = make_batched(name, 64, seed=0)
    env.action_space.seed(0)
    returns = run_policy(env, lambda obs, starts: env.action_space.sample(), episodes_per_copy=20, seed=2)
    # Expected means: memory-copy and t-maze 0, stateless-cartpole ~0.04, the others -0.5 or below.
    assert returns.mean() <= 0.1


# -- seeding ------------------------------------------------------------------------------------
def _trajectory(name: str, seed: int | None, actions: list[np.ndarray], reset_seed: int | None = None) -> list:
    env = make_batched(name, 4, seed=seed)
    obs, _ = env.reset(seed=reset_seed)
    out = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        final = [None if f is None else np.asarray(f) for f in info.get("final_obs", [None] * 4)]
        out += [obs, r, term, trunc, final]
    return out


def _same(a: list, b: list) -> bool:
    return all(
        all(np.array_equal(u, v) for u, v in zip(x, y)) if isinstance(x, list) else np.array_equal(x, y)
        for x, y in zip(a, b)
    )


@pytest.mark.parametrize("name", NAMES)
def test_seed_determinism(name: str) -> None:
    space = make_batched(name, 4).action_space
    space.seed(0)
    actions = [space.sample() for _ in range(120)]
    base = _trajectory(name, 7, actions)
    assert _same(base, _trajectory(name, 7, actions))
    assert _same(base, _trajectory(name, None, actions, reset_seed=7))
    assert not _same(base, _trajectory(name, 8, actions))


# -- same-step autoreset ----------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_same_step_autoreset(name: str) -> None:
    env = make_batched(name, 8, seed=0)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    assert all(first_obs_ok(name, env, o) for o in obs)
    t = np.zeros(env.num_envs, dtype=np.int64)
    ended_any = False
    for _ in range(450):
        obs, rewards, terminated, truncated, info = env.step(env.action_space.sample())
        t += 1
        done = terminated | truncated
        if not done.any():
            assert info == {}
            continue
        ended_any = True
        assert np.array_equal(info["_final_obs"], done)
        for i in range(env.num_envs):
            final = info["final_obs"][i]
            if not done[i]:
                assert final is None
                continue
            assert final in env.single_observation_space
            assert first_obs_ok(name, env, obs[i])
            if DEFAULT_LENGTH[name] is not None:
                assert t[i] == DEFAULT_LENGTH[name]
            if name == "memory-copy":
                assert not final.any()
            elif name == "t-maze":
                assert final == 3
            elif name == "surprise-recall":
                assert tuple(final) == (env.marker, 0)
            elif name == "stateless-cartpole":
                out = abs(final[0]) > X_LIMIT or abs(final[1]) > THETA_LIMIT
                assert out == terminated[i]
        t[done] = 0
    assert ended_any


@pytest.mark.parametrize("name", NAMES)
def test_rewards_follow_task_rules(name: str) -> None:
    params = {
        "memory-copy": {"min_length": 2, "length": 6, "bits": 3},
        "repeat-previous": {"length": 10, "k": 3},
        "repeat-first": {"length": 8},
        "count-recall": {"n_tokens": 2, "length": 12, "max_count": 3},  # counts often exceed max_count
        "t-maze": {"corridor": 3},
        "stateless-cartpole": {"max_steps": 30},
        "surprise-recall": {"length": 12, "n_surprises": 4, "period": 3, "n_rare": 2},
    }[name]
    env = make_batched(name, 6, seed=3, **params)
    episodes = collect_episodes(env, n_steps=150)
    assert len(episodes) >= 6
    for ep in episodes:
        np.testing.assert_allclose(ep["rewards"], expected_rewards(name, params, ep), rtol=0, atol=1e-7)


def test_reset_mask_resets_only_marked_copies() -> None:
    env = make_batched("t-maze", 4, seed=0, corridor=5)
    env.reset()
    for _ in range(3):
        env.step(np.zeros(4, dtype=np.int64))
    obs, _ = env.reset(options={"reset_mask": np.array([True, False, True, False])})
    assert obs[0] in (0, 1) and obs[2] in (0, 1)
    assert obs[1] == obs[3] == 2


def test_step_before_reset_and_bad_action_shape() -> None:
    env = make_batched("repeat-first", 3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3, dtype=np.int64))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(4, dtype=np.int64))


# -- single env wrapper -------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_single_env_matches_one_copy(name: str) -> None:
    single = gymnasium.make(env_id(name)).unwrapped
    batched = make_batched(name, 1)
    single.action_space.seed(0)
    obs_s, _ = single.reset(seed=5)
    obs_b, _ = batched.reset(seed=5)
    assert np.array_equal(obs_s, obs_b[0])
    for _ in range(600):
        action = single.action_space.sample()
        obs_s, r_s, term_s, trunc_s, info_s = single.step(action)
        obs_b, r_b, term_b, trunc_b, info_b = batched.step(np.asarray(action)[None])
        assert isinstance(r_s, float) and isinstance(term_s, bool) and isinstance(trunc_s, bool)
        assert r_s == r_b[0] and term_s == term_b[0] and trunc_s == trunc_b[0] and info_s == {}
        if term_s or trunc_s:
            # No autoreset: the single env reports the final observation of the episode.
            assert np.array_equal(obs_s, info_b["final_obs"][0])
            break
        assert np.array_equal(obs_s, obs_b[0])
    else:
        pytest.fail("episode did not end")


def test_single_env_dtypes() -> None:
    env = gymnasium.make("rlmem/RepeatPrevious-v0").unwrapped
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, np.int64)
    env = gymnasium.make("rlmem/MemoryCopy-v0").unwrapped
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, np.ndarray) and obs.shape == (9,)


# -- parameter validation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "params", "bad"),
    [
        ("memory-copy", {"length": 0}, "length"),
        ("memory-copy", {"bits": 0}, "bits"),
        ("memory-copy", {"length": 4, "min_length": 5}, "min_length"),
        ("repeat-previous", {"k": 52}, "k"),
        ("repeat-previous", {"k": 60, "length": 10}, "k"),
        ("repeat-previous", {"n_tokens": 1}, "n_tokens"),
        ("repeat-first", {"length": 1}, "length"),
        ("count-recall", {"max_count": 0}, "max_count"),
        ("count-recall", {"n_tokens": 1}, "n_tokens"),
        ("t-maze", {"corridor": -1}, "corridor"),
        ("t-maze", {"corridor": 2.5}, "corridor"),
        ("stateless-cartpole", {"max_steps": 0}, "max_steps"),
        ("surprise-recall", {"length": 3, "n_surprises": 4}, "n_surprises"),
        ("surprise-recall", {"n_rare": 1}, "n_rare"),
        ("surprise-recall", {"period": 0}, "period"),
    ],
)
def test_bad_params_raise_value_error(name: str, params: dict[str, Any], bad: str) -> None:
    with pytest.raises(ValueError, match=rf"^{bad} must be an integer"):
        make_batched(name, 2, **params)
    with pytest.raises(ValueError, match=bad):
        gymnasium.make(env_id(name), **params)


@pytest.mark.parametrize("name", NAMES)
def test_bad_num_envs(name: str) -> None:
    with pytest.raises(ValueError, match=r"num_envs must be an integer >= 1"):
        make_batched(name, 0)


def test_make_batched_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="valid names") as err:
        make_batched("no-such-env", 4)
    for name in NAMES:
        assert name in str(err.value)


def test_make_batched_unknown_param_lists_valid_params() -> None:
    with pytest.raises(TypeError, match="corridor_length") as err:
        make_batched("t-maze", 4, corridor_length=3)
    assert "valid parameters: corridor" in str(err.value)


def test_edge_parameters() -> None:
    # Every stream position is a surprise; a zero-length corridor; single-token copies.
    for name, params in [
        ("surprise-recall", {"length": 3, "n_surprises": 3}),
        ("t-maze", {"corridor": 0}),
        ("memory-copy", {"length": 1, "bits": 1}),
        ("repeat-previous", {"length": 2, "k": 1}),
    ]:
        env = make_batched(name, 16, seed=0, **params)
        returns = run_policy(env, ORACLES[name](16, **params).act, episodes_per_copy=2)
        np.testing.assert_allclose(returns, 1.0, atol=1e-6)


# -- task-specific rules ----------------------------------------------------------------------
def test_t_maze_rules() -> None:
    env = make_batched("t-maze", 2, seed=0, corridor=3)
    obs, _ = env.reset()
    cue = obs.copy()
    assert set(cue) <= {0, 1}
    seen = [obs]
    for _ in range(4):
        # Actions before the junction are ignored.
        obs, rewards, terminated, _, info = env.step(np.array([0, 1]))
        assert not rewards.any() and not terminated.any() and info == {}
        seen.append(obs)
    assert [list(o) for o in seen[1:]] == [[2, 2], [2, 2], [2, 2], [3, 3]]
    # At the junction copy 0 answers the cue, copy 1 the other side.
    obs, rewards, terminated, truncated, info = env.step(np.array([cue[0], 1 - cue[1]]))
    assert list(rewards) == [1.0, -1.0]
    assert terminated.all() and not truncated.any()
    assert list(info["final_obs"]) == [3, 3]
    assert set(obs) <= {0, 1}


def test_t_maze_long_corridor_length() -> None:
    env = make_batched("t-maze", 3, seed=0, corridor=1000)
    env.reset()
    for step in range(1, 1003):
        _, rewards, terminated, _, _ = env.step(np.zeros(3, dtype=np.int64))
        assert terminated.all() == (step == 1002)
    assert set(np.abs(rewards)) == {1.0}


def test_memory_copy_reward_counts_bits() -> None:
    length, bits = 3, 8
    env = make_batched("memory-copy", 4, seed=0, length=length, bits=bits)
    obs, _ = env.reset()
    shown = [obs[:, :bits].copy()]
    zeros = np.zeros((4, bits), dtype=np.int8)
    for _ in range(length):
        obs, rewards, *_ = env.step(zeros)
        assert not rewards.any()
        shown.append(obs[:, :bits].copy())
    assert (obs[:, bits] == 1).all() and not obs[:, :bits].any()  # delimiter at t = L
    obs, rewards, *_ = env.step(np.ones((4, bits), dtype=np.int8))
    assert not rewards.any() and not obs.any()
    flips = np.array([0, 1, 3, 8])  # wrong bits per copy
    for j in range(length):
        action = shown[j].copy()
        for i, n in enumerate(flips):
            action[i, :n] ^= 1
        obs, rewards, terminated, _, _ = env.step(action)
        np.testing.assert_allclose(rewards, (bits - 2 * flips) / (length * bits), rtol=1e-6)
        assert terminated.all() == (j == length - 1)
    assert isinstance(obs, np.ndarray) and (obs[:, bits] == 0).all()


def test_memory_copy_variable_length() -> None:
    env = make_batched("memory-copy", 32, seed=0, length=6, min_length=2)
    lengths = {len(ep["actions"]) for ep in collect_episodes(env, n_steps=80)}
    assert lengths <= {2 * n + 1 for n in range(2, 7)} and len(lengths) > 1


def test_count_recall_clips_at_max_count() -> None:
    params = {"n_tokens": 2, "length": 20, "max_count": 2}
    env = make_batched("count-recall", 8, seed=0, **params)
    obs, _ = env.reset()
    counts = np.zeros((8, 2), dtype=np.int64)
    clipped = 0
    for _ in range(params["length"]):
        counts[np.arange(8), obs[:, 0]] += 1
        true = counts[np.arange(8), obs[:, 1]]
        obs, rewards, *_ = env.step(np.minimum(true, 2))
        assert (rewards > 0).all()
        clipped += int((true > 2).sum())
    assert clipped > 0


def test_stateless_cartpole_hides_velocities_and_truncates() -> None:
    env = make_batched("stateless-cartpole", 16, seed=0, max_steps=50)
    assert env.single_observation_space.shape == (2,)
    policy = ORACLES["stateless-cartpole"](16, max_steps=50)
    obs, _ = env.reset()
    starts = np.ones(16, dtype=bool)
    for step in range(1, 51):
        obs, rewards, terminated, truncated, info = env.step(policy.act(obs, starts))
        starts[:] = False
        np.testing.assert_allclose(rewards, 1 / 50)
        assert not terminated.any()
        assert truncated.all() == (step == 50)
    assert obs.shape == (16, 2) and obs.dtype == np.float32
    assert info["_final_obs"].all()


def test_stateless_cartpole_matches_gymnasium_physics() -> None:
    env = make_batched("stateless-cartpole", 1, seed=0)
    env.reset()
    reference = CartPoleEnv()
    reference.reset(seed=0)
    reference.state = env._state[:, 0].copy()  # same start state
    rng = np.random.default_rng(0)
    for _ in range(200):
        action = int(rng.integers(2))
        ref_obs, _, ref_term, _, _ = reference.step(action)
        obs, _, terminated, _, info = env.step(np.array([action]))
        got = info["final_obs"][0] if info else obs[0]
        np.testing.assert_allclose(got, ref_obs[[0, 2]], atol=1e-5)
        assert terminated[0] == ref_term
        if ref_term:
            break
    else:
        pytest.fail("random play should fail within 200 steps")


def test_surprise_recall_stream() -> None:
    params = {"length": 30, "n_surprises": 3, "period": 4, "n_rare": 3}
    env = make_batched("surprise-recall", 16, seed=0, **params)
    for ep in collect_episodes(env, n_steps=80):
        tokens = [int(o[0]) for o in ep["obs"]]
        stream = tokens[:30]
        surprises = [i for i, tok in enumerate(stream) if tok >= 4]
        assert len(surprises) == 3 and all(4 <= stream[i] < 7 for i in surprises)
        pattern = [i for i in range(30) if i not in surprises]
        phase = (stream[pattern[0]] - pattern[0]) % 4
        assert all(stream[i] == (phase + i) % 4 for i in pattern)
        assert tokens[30:] == [7, 7, 7] and [int(o[1]) for o in ep["obs"][30:]] == [1, 2, 3]
        assert len(ep["actions"]) == 33


@pytest.mark.parametrize("name", sorted(BUILTIN_ENVS))
def test_env_state_dict_continues_exactly(name):
    """A batched task restored from its state_dict (through plain-data save and load) steps on
    exactly as the original: same observations, rewards, flags and final observations."""
    import io

    import torch

    env = make_batched(name, 5, seed=2)
    env.reset(seed=2)
    env.single_action_space.seed(0)
    for _ in range(7):
        env.step(_random_actions(env))
    from rlmem.checkpoint import arrays_to_tensors

    buf = io.BytesIO()
    torch.save(arrays_to_tensors(env.state_dict()), buf)
    buf.seek(0)
    other = make_batched(name, 5, seed=99)
    other.load_state_dict(torch.load(buf, weights_only=True))
    for _ in range(40):
        actions = _random_actions(env)
        a, b = env.step(actions), other.step(actions.copy())
        for x, y in zip(a[:4], b[:4]):
            assert np.array_equal(x, y)
        assert [None if f is None else np.asarray(f).tolist() for f in a[4].get("final_obs", [])] == \
               [None if f is None else np.asarray(f).tolist() for f in b[4].get("final_obs", [])]
    with pytest.raises(ValueError, match="cannot be loaded"):
        make_batched(name, 3, seed=0).load_state_dict(env.state_dict())


def _random_actions(env):
    return np.stack([np.asarray(env.single_action_space.sample()) for _ in range(env.num_envs)])
