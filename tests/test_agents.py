"""On-policy agents: stored-state replay, advantages, truncation, determinism, learning."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from rlmem.agents import A2C, PPO, evaluate_policy
from rlmem.agents.rollout import RolloutBuffer
from rlmem.cores import CORES, core_options
from rlmem.envs import make_batched
from rlmem.policy import RecurrentActorCritic


def make_policy(env, core: str = "gru", seed: int = 0, hidden: int = 32, **kw) -> RecurrentActorCritic:
    torch.manual_seed(seed)
    options = {"hidden_size": hidden} if "hidden_size" in core_options(core) else {}
    return RecurrentActorCritic(env.single_observation_space, env.single_action_space, core, options,
                                embed_size=hidden, **kw)


@pytest.mark.parametrize("core", sorted(CORES))
@pytest.mark.parametrize("prev", [False, True])
def test_stored_state_replay_reproduces_the_rollout(core, prev):
    """Re-running the core over stored chunks from their stored states gives the rollout's
    log-probs and values exactly: the update trains the policy that acted."""
    env = make_batched("memory-copy", 3, seed=0, length=3, bits=2)  # 7-step episodes cut chunks
    policy = make_policy(env, core, prev_action=prev, prev_reward=prev)
    agent = PPO(env, policy, n_steps=24, batch_size=24, seq_len=8, n_epochs=1)
    agent.collect_rollout()
    agent.collect_rollout()  # the second rollout starts mid-episode from a carried state
    for mb in agent.buffer.minibatches(1000, shuffle=False):
        out = agent.evaluate_minibatch(mb)
        torch.testing.assert_close(out.dist.log_prob(mb.actions), mb.log_probs, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.value, mb.values, atol=1e-5, rtol=1e-5)


def test_chunks_cover_the_rollout_once():
    buf = RolloutBuffer(spaces.Discrete(2), spaces.Discrete(2), n_steps=6, n_envs=2, chunk_len=3,
                        state_template={"h": torch.zeros(2, 1)}, device=torch.device("cpu"))
    buf.values = torch.arange(12.0).reshape(6, 2)  # value = 2 t + b identifies (t, b)
    seen = []
    for mb in buf.minibatches(1, torch.Generator().manual_seed(0)):
        col = mb.values[:, 0]
        t0, b = int(col[0]) // 2, int(col[0]) % 2
        assert t0 % 3 == 0, "every chunk starts on a chunk boundary"
        assert torch.equal(col, torch.tensor([2.0 * (t0 + i) + b for i in range(3)]))
        seen.append((t0, b))
    assert sorted(seen) == [(0, 0), (0, 1), (3, 0), (3, 1)]


@pytest.mark.parametrize("chunk_len, group", [(1, 3), (1, 6), (2, 3)])
def test_minibatch_runs_keep_consecutive_steps_of_one_env_together(chunk_len, group):
    """With ``group`` chunks per run, a minibatch holds whole runs of ``group * chunk_len``
    consecutive steps of one env, in time order, and every step appears once per pass."""
    T, B, run = 12, 3, group * chunk_len
    buf = RolloutBuffer(spaces.Discrete(2), spaces.Discrete(2), n_steps=T, n_envs=B, chunk_len=chunk_len,
                        state_template={"h": torch.zeros(B, 1)}, device=torch.device("cpu"))
    buf.values = torch.arange(float(T * B)).reshape(T, B)  # value = B t + b identifies (t, b)
    seen = []
    for mb in buf.minibatches(2 * group, torch.Generator().manual_seed(0), group=group):
        steps = mb.values.transpose(0, 1).reshape(-1, run)  # [runs, run]: chunk columns in order
        for r in steps.long().tolist():
            t0, b = r[0] // B, r[0] % B
            assert t0 % run == 0 and r == [B * (t0 + i) + b for i in range(run)]
            seen += r
    assert sorted(seen) == list(range(T * B))
    with pytest.raises(ValueError, match="must divide"):
        next(buf.minibatches(2 * group + 1, group=group))


def test_minibatch_seq_len_is_checked():
    env = make_batched("repeat-previous", 2, seed=0)
    with pytest.raises(ValueError, match="minibatch_seq_len"):
        PPO(env, make_policy(env, "gru"), n_steps=32, batch_size=64, seq_len=16, minibatch_seq_len=24)
    agent = PPO(env, make_policy(env, "tmm"), n_steps=32, batch_size=64, seq_len=16, minibatch_seq_len=8)
    assert (agent.chunk_len, agent.group_len) == (1, 8)


def test_gae_matches_hand_computation():
    buf = RolloutBuffer(spaces.Discrete(2), spaces.Discrete(2), n_steps=3, n_envs=1, chunk_len=1,
                        state_template={}, device=torch.device("cpu"))
    buf.rewards[:, 0] = torch.tensor([1.0, 2.0, 3.0])
    buf.values[:, 0] = torch.tensor([0.5, 1.0, 1.5])
    buf.dones[:, 0] = torch.tensor([False, True, False])  # the episode ends after step 1
    g, lam, last = 0.9, 0.8, torch.tensor([2.0])
    buf.compute_advantages(last, g, lam)
    d2 = 3.0 + g * 2.0 - 1.5
    d1 = 2.0 - 1.0  # terminal: no bootstrap, no later advantage
    d0 = 1.0 + g * 1.0 - 0.5
    expected = torch.tensor([d0 + g * lam * d1, d1, d2])
    torch.testing.assert_close(buf.advantages[:, 0], expected)
    torch.testing.assert_close(buf.returns[:, 0], expected + buf.values[:, 0])


class FixedLengthEnv(gym.vector.VectorEnv):
    """Reward 1 every step; every 3rd step ends the episode, by truncation, termination or both
    (``ending``: "truncate", "terminate", "both", as Gymnasium's TimeLimit may set both)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, ending: str):
        self.num_envs, self.ending = num_envs, ending
        self.single_observation_space = spaces.Box(-1, 1, (1,), np.float32)
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros((self.num_envs, 1), np.float32), {}

    def step(self, actions):
        self.t += 1
        end = self.t % 3 == 0
        flags = np.full(self.num_envs, end)
        info: dict[str, Any] = {}
        if end:
            final = np.empty(self.num_envs, dtype=object)
            for i in range(self.num_envs):
                final[i] = np.ones(1, np.float32)
            info = {"final_obs": final, "_final_obs": flags.copy()}
        obs = np.zeros((self.num_envs, 1), np.float32)
        zeros = np.zeros(self.num_envs, bool)
        return (obs, np.ones(self.num_envs, np.float32), flags if self.ending != "truncate" else zeros,
                flags if self.ending != "terminate" else zeros, info)


@pytest.mark.parametrize("ending", ["truncate", "terminate", "both"])
def test_truncation_bootstraps_and_termination_does_not(ending):
    """Only ``truncated and not terminated`` bootstraps: a step that is both is a termination."""
    env = FixedLengthEnv(2, ending)
    truncate = ending == "truncate"
    policy = make_policy(env, "gru")
    with torch.no_grad():
        policy.critic.bias.fill_(1.0)  # keep V(final observation) well away from 0
    gamma = 0.5
    agent = PPO(env, policy, n_steps=6, batch_size=6, seq_len=3, gamma=gamma)
    agent.collect_rollout()
    # V of the final observation (ones) seen after the episode's three zero observations:
    obs = torch.tensor([0.0, 0.0, 0.0, 1.0]).reshape(4, 1, 1)
    starts = torch.tensor([True, False, False, False]).reshape(4, 1)
    with torch.no_grad():
        v_final = float(policy(obs, policy.initial_state(1), starts).value[-1, 0])
    assert abs(v_final) > 1e-3
    end = 1.0 + gamma * v_final if truncate else 1.0
    expected = torch.tensor([1.0, 1.0, end, 1.0, 1.0, end])
    for b in range(2):
        torch.testing.assert_close(agent.buffer.rewards[:, b], expected, atol=1e-5, rtol=0)
        assert agent.buffer.dones[:, b].tolist() == [False, False, True, False, False, True]


def test_seeded_training_is_deterministic():
    def run():
        env = make_batched("repeat-previous", 4, seed=3, length=12, k=2)
        agent = PPO(env, make_policy(env, "gru", seed=3), n_steps=12, batch_size=24, seq_len=6, seed=3)
        agent.learn(96)
        return torch.cat([p.detach().flatten() for p in agent.policy.parameters()])

    assert torch.equal(run(), run())


def test_bad_configs_are_refused():
    env = make_batched("t-maze", 2, corridor=2)
    with pytest.raises(ValueError, match="batch_size .* multiple of seq_len"):
        PPO(env, make_policy(env), n_steps=8, batch_size=6, seq_len=4)
    with pytest.raises(ValueError, match="n_steps .* multiple of seq_len"):
        PPO(env, make_policy(env), n_steps=10, batch_size=8, seq_len=4)
    with pytest.raises(ValueError, match="gamma"):
        PPO(env, make_policy(env), gamma=1.5)
    with pytest.raises(ValueError, match="same-step autoreset"):
        PPO(gym.make_vec("CartPole-v1", 2, vectorization_mode="sync"), make_policy(env))


def _train_and_eval(agent_cls, core: str, steps: int, seed: int = 0, **kw) -> float:
    env = make_batched("t-maze", 32, seed=seed, corridor=6)
    agent = agent_cls(env, make_policy(env, core, seed=seed, hidden=64), seed=seed, **kw)
    agent.learn(steps)
    return evaluate_policy(agent.policy, make_batched("t-maze", 16, seed=seed + 100, corridor=6), 64)["return_mean"]


@pytest.mark.slow
def test_ppo_learns_t_maze_with_memory_and_mlp_cannot():
    kw = dict(n_steps=32, batch_size=256, seq_len=16, n_epochs=4, learning_rate=1e-3, ent_coef=0.01)
    assert _train_and_eval(PPO, "gru", 60_000, **kw) >= 0.9
    assert _train_and_eval(PPO, "mlp", 60_000, **kw) <= 0.4


@pytest.mark.slow
def test_a2c_learns_t_maze_with_memory_and_mlp_cannot():
    kw = dict(n_steps=16, learning_rate=3e-3, ent_coef=0.01)
    assert _train_and_eval(A2C, "gru", 80_000, **kw) >= 0.9
    assert _train_and_eval(A2C, "mlp", 80_000, **kw) <= 0.4


def test_a_core_without_need_state_still_trains():
    """A user core whose forward takes only (x, state, starts) works in the update, which asks
    other cores to skip the final state."""
    from rlmem.cores import Core

    class Decay(Core):
        def __init__(self, input_size: int):
            super().__init__(input_size, input_size)

        def initial_state(self, batch_size, device=None):
            return {"h": torch.zeros(batch_size, self.input_size, device=device)}

        def forward(self, x, state, starts):
            h, ys = state["h"], []
            for t in range(x.shape[0]):
                h = torch.where(starts[t].unsqueeze(-1), torch.zeros_like(h), 0.5 * h + x[t])
                ys.append(h)
            return torch.stack(ys), {"h": h}, {}

    env = make_batched("repeat-previous", 4, seed=0)
    policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, Decay(8), embed_size=8)
    agent = PPO(env, policy, n_steps=16, batch_size=32, seq_len=8, n_epochs=1)
    before = [p.detach().clone() for p in policy.parameters()]
    agent.learn(64)
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))


def test_evaluation_of_an_env_that_never_ends_stops_at_the_step_cap():
    class NeverEnds(FixedLengthEnv):
        def step(self, actions):
            zeros = np.zeros(self.num_envs, bool)
            return np.zeros((self.num_envs, 1), np.float32), np.ones(self.num_envs, np.float32), zeros, zeros, {}

    env = NeverEnds(2, "truncate")
    policy = make_policy(env, "gru")
    with pytest.warns(UserWarning, match="max_steps=50 .* 0 of 4 episodes"):
        result = evaluate_policy(policy, env, n_episodes=4, max_steps=50)
    assert result["capped"] == 1.0 and result["episodes"] == 0 and np.isnan(result["return_mean"])
    finished = evaluate_policy(policy, FixedLengthEnv(2, "terminate"), n_episodes=4)
    assert finished["capped"] == 0.0 and finished["episodes"] == 4 and finished["return_mean"] == 3.0
