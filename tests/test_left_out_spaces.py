"""Observation parts that cannot be encoded (Text, Sequence, Graph, MiniGrid's MissionSpace) are
left out of the encoder, the buffers and the conversions alike, so such environments train."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlmem.checkpoint import load_policy
from rlmem.policy import RecurrentActorCritic, encodable_space, observation_selector
from rlmem.train import train

NESTED = spaces.Dict({
    "image": spaces.Box(0, 255, (5, 5, 3), np.uint8),
    "mission": spaces.Text(10),
    "parts": spaces.Tuple([spaces.Sequence(spaces.Discrete(3)), spaces.Discrete(4),
                           spaces.Graph(spaces.Box(0, 1, (2,)), None), spaces.MultiBinary(3)]),
})


def test_encodable_space_and_selector_drop_the_same_parts():
    with pytest.warns(UserWarning, match="'mission' \\(Text\\) is left out"):
        kept = encodable_space(NESTED)
    assert kept == spaces.Dict({"image": NESTED["image"],
                                "parts": spaces.Tuple([spaces.Discrete(4), spaces.MultiBinary(3)])})
    select = observation_selector(NESTED)
    obs = NESTED.sample()
    picked = select(obs)
    assert set(picked) == {"image", "parts"} and len(picked["parts"]) == 2
    assert picked["parts"][0] == obs["parts"][1] and np.array_equal(picked["parts"][1], obs["parts"][3])
    assert kept.contains(picked)
    assert observation_selector(spaces.Dict({"a": spaces.Discrete(2)})) is None  # nothing to drop, no cost


def test_a_policy_acts_and_trains_on_a_dict_with_text(tmp_path):
    env = gym.vector.SyncVectorEnv([lambda: _DictTextEnv()] * 3,
                                   autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, "gru",
                                      {"hidden_size": 8}, embed_size=8)
    from rlmem.agents import PPO

    agent = PPO(env, policy, n_steps=8, batch_size=12, seq_len=4)
    agent.learn(48)
    assert agent.episodes > 0 and set(agent.buffer.obs) == {"pos", "flag"}


class _DictTextEnv(gym.Env):
    """Three-step episodes with a Dict observation holding a Text part; truncated at the end."""

    observation_space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float32), "note": spaces.Text(6),
                                     "flag": spaces.Discrete(2)})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return {"pos": np.full(2, self.t / 3, np.float32), "note": "ab" * (self.t + 1), "flag": self.t % 2}

    def step(self, action):
        self.t += 1
        return self._obs(), float(action), False, self.t >= 3, {}


@pytest.mark.slow
def test_minigrid_memory_trains_end_to_end_and_its_checkpoint_loads(tmp_path):
    pytest.importorskip("minigrid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = train(["env=gym", "env.id=minigrid:MiniGrid-MemoryS7-v0", "env.n_envs=4", "agent.n_steps=32",
                         "agent.batch_size=64", "total_steps=512", "core.hidden_size=16", "policy.embed_size=16",
                         "eval_episodes=2", "progress=false"], run_dir=tmp_path)
        assert summary["env_steps"] == 512 and summary["eval_episodes"] == 2
        policy = load_policy(tmp_path / "checkpoint.pt")
    envs = gym.make_vec("MiniGrid-MemoryS7-v0", num_envs=2, vectorization_mode="sync")
    obs, _ = envs.reset(seed=0)
    actions, state = policy.predict(obs, deterministic=True)
    assert actions.shape == (2,) and envs.single_action_space.contains(int(actions[0]))
    assert all(v.shape[0] == 2 for v in state.values() if isinstance(v, torch.Tensor))
