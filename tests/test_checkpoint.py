"""Checkpoints are plain data: a stranger's file cannot run code, a bad file gets one line, a
saved policy acts exactly as the trained one, and a save interrupted by a crash leaves the
previous checkpoint whole."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlmem.agents import PPO
from rlmem.checkpoint import (CheckpointError, load_checkpoint, load_policy, newest_checkpoint, save_checkpoint)
from rlmem.envs import make_batched
from rlmem.policy import RecurrentActorCritic
from rlmem.space_description import OpaqueSpace, build_space, describe_space


def trained_agent(core: str = "gru", **policy_kw) -> PPO:
    env = make_batched("repeat-previous", 4, seed=0, length=8, k=2)
    torch.manual_seed(0)
    policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, core,
                                  {"hidden_size": 16}, embed_size=16, **policy_kw)
    agent = PPO(env, policy, n_steps=16, batch_size=32, seq_len=8)
    agent.learn(128)
    return agent


def save(agent: PPO, path: Path) -> Path:
    return save_checkpoint(path, agent.policy, "ppo", agent.state_dict(), env_state=agent.env.state_dict())


class _RunsCode:
    """Unpickling this calls ``open(marker, "w")``: a file appears if the loader runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "rlmem-checkpoint-2", "network": _RunsCode(marker)}, path)
    # the payload is live: an unsafe load would create the marker (checked in a child process)
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(path)!r}, weights_only=False)"],
                   check=True, capture_output=True)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="refused to load .*evil.pt.*not plain data.*could run code"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        load_policy(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage, message", [
    ("truncate", "not a readable checkpoint"),
    ("garbage", "not a readable checkpoint"),
    ("empty", "not a readable checkpoint"),
    ("foreign", "not an rlmem checkpoint"),
    ("old_format", "refused to load"),
    ("other_version", "format 'rlmem-checkpoint-9'"),
    ("no_params", "is damaged"),
    ("missing", "does not exist"),
])
def test_a_bad_file_gets_one_line_naming_it(tmp_path, damage, message):
    agent = trained_agent()
    good = save(agent, tmp_path / "good.pt")
    path = tmp_path / "bad.pt"
    data = good.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "foreign":
        torch.save(agent.policy.state_dict(), path)  # what a plain PyTorch user saves
    elif damage == "old_format":  # the format before plain data: pickled Gymnasium spaces
        torch.save({"format": "rlmem-checkpoint-1", "policy_kwargs": {"observation_space": spaces.Discrete(3)}}, path)
    elif damage == "other_version":
        torch.save({"format": "rlmem-checkpoint-9"}, path)
    elif damage == "no_params":
        ckpt = load_checkpoint(good)
        del ckpt["agent"]["state"]["policy"]
        torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as err:
        load_policy(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text, text


def test_a_loaded_policy_acts_exactly_as_the_trained_one(tmp_path):
    agent = trained_agent(prev_action=True, prev_reward=True)
    policy = agent.policy.eval()
    loaded = load_policy(save(agent, tmp_path / "ckpt.pt"))
    for (k, a), (k2, b) in zip(policy.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    env_a, env_b = make_batched("repeat-previous", 5, seed=7), make_batched("repeat-previous", 5, seed=7)
    obs_a, _ = env_a.reset(seed=7)
    obs_b, _ = env_b.reset(seed=7)
    sa = sb = None
    prev_a = prev_b = np.zeros(5, dtype=np.int64)
    rew_a = rew_b = np.zeros(5, np.float32)
    for _ in range(12):
        act_a, sa = policy.predict(obs_a, sa, None, True, prev_a, rew_a)
        act_b, sb = loaded.predict(obs_b, sb, None, True, prev_b, rew_b)
        assert np.array_equal(act_a, act_b)
        for k in sa:
            assert torch.equal(sa[k], sb[k])
        obs_a, rew_a, *_ = env_a.step(act_a)
        obs_b, rew_b, *_ = env_b.step(act_b)
        prev_a, prev_b = act_a, act_b


def test_a_save_interrupted_by_a_crash_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    agent = trained_agent()
    path = save(agent, tmp_path / "checkpoint.pt")
    before = path.read_bytes()
    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        f.write(b"partial bytes")
        raise KeyboardInterrupt  # what a kill looks like from inside the writer

    monkeypatch.setattr(torch, "save", crash_midway)
    agent.learn(256)
    with pytest.raises(KeyboardInterrupt):
        save(agent, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left
    load_checkpoint(path)


def test_newest_checkpoint_of_a_run_directory(tmp_path):
    agent = trained_agent()
    save(agent, tmp_path / "checkpoint_64.pt")
    save(agent, tmp_path / "checkpoint_128.pt")
    assert newest_checkpoint(tmp_path).name == "checkpoint_128.pt"
    assert load_policy(tmp_path) is not None  # a run directory works where a file does
    agent.learn(256)
    save(agent, tmp_path / "checkpoint.pt")  # the final one, with more steps
    assert newest_checkpoint(tmp_path).name == "checkpoint.pt"
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        newest_checkpoint(tmp_path / "empty") if (tmp_path / "empty").mkdir() is None else None


def test_a_policy_around_a_core_object_is_refused_by_name(tmp_path):
    from rlmem.cores import make_core

    env = make_batched("t-maze", 2, seed=0)
    policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, make_core("gru", 8),
                                  embed_size=8)
    agent = PPO(env, policy, n_steps=4, batch_size=8, seq_len=4)
    with pytest.raises(ValueError, match="registered name"):
        save(agent, tmp_path / "x.pt")


SPACES = [
    spaces.Box(-1.0, 1.0, (3,), np.float32),
    spaces.Box(np.array([-np.inf, 0.0]), np.array([np.inf, 5.0]), dtype=np.float64),
    spaces.Box(0, 255, (7, 7, 3), np.uint8),
    spaces.Discrete(5, start=-2),
    spaces.MultiDiscrete([3, 4, 2], start=[0, 1, -1]),
    spaces.MultiDiscrete(np.array([[2, 3], [4, 5]])),
    spaces.MultiBinary(6),
    spaces.MultiBinary([2, 3]),
    spaces.Text(12, min_length=2, charset="abc"),
    spaces.Sequence(spaces.Discrete(3), stack=True),
    spaces.Graph(spaces.Box(0, 1, (2,)), spaces.Discrete(3)),
    spaces.Graph(spaces.Box(0, 1, (2,)), None),
    spaces.OneOf([spaces.Discrete(2), spaces.Box(0, 1, (2,))]),
    spaces.Dict({"image": spaces.Box(0, 255, (4, 4, 1), np.uint8), "mission": spaces.Text(5),
                 "nested": spaces.Tuple([spaces.Discrete(2), spaces.MultiBinary(3)])}),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_spaces_round_trip_through_plain_data(space, tmp_path):
    path = tmp_path / "space.pt"
    torch.save(describe_space(space), path)
    rebuilt = build_space(torch.load(path, weights_only=True))
    assert rebuilt == space and type(rebuilt) is type(space)


def test_an_unknown_space_class_is_kept_by_name():
    class MissionLike(spaces.Space):
        def __init__(self):
            super().__init__(None, None)

    desc = describe_space(spaces.Dict({"x": spaces.Discrete(2), "m": MissionLike()}))
    rebuilt = build_space(desc)
    assert rebuilt["m"] == OpaqueSpace("MissionLike") and rebuilt["x"] == spaces.Discrete(2)
    with pytest.raises(ValueError, match="malformed space description"):
        build_space({"type": "Box"})
    pickle.dumps(desc)  # plain data
