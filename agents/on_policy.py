"""The on-policy loop shared by A2C and PPO: batched rollouts with stored core states, GAE, and
minibatch updates over whole sequence chunks.

Subclasses say how many epochs and minibatches an update has and write :meth:`loss`.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import nn

from rlmem.cores import index_state
from rlmem.policy import RecurrentActorCritic, to_torch, tree_map

from .rollout import Minibatch, RolloutBuffer

Metrics = dict[str, float]


def check_same_step_autoreset(env: VectorEnv) -> None:
    mode = getattr(env, "autoreset_mode", None) or env.metadata.get("autoreset_mode")
    if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.SAME_STEP.value):
        raise ValueError(
            f"rlmem agents need vector environments with same-step autoreset, got {mode!r}; build them "
            f"with rlmem.envs.make_vector_env or pass autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP")


def _seq(batch: Any) -> Any:
    """``[B, ...] -> [1, B, ...]`` (nested for Dict observations)."""
    return tree_map(lambda v: v.unsqueeze(0), batch)


def final_observations(info: dict, rows: np.ndarray) -> Any:
    """Stack ``info["final_obs"]`` of ``rows`` into one batch ``[len(rows), ...]`` (nested if needed)."""
    items = [info["final_obs"][i] for i in rows]
    return tree_map(lambda *xs: np.stack(xs), *items)


class OnPolicyAgent:
    """Collects ``n_steps`` from every environment, then updates the policy.

    Args:
        env: a Gymnasium vector env with same-step autoreset (``rlmem.envs.make_vector_env``).
        policy: the recurrent actor-critic to train.
        n_steps: steps per environment per rollout (T).
        batch_size: time steps per minibatch; a multiple of the chunk length.
        n_epochs: passes over each rollout.
        learning_rate, gamma, gae_lambda, ent_coef, vf_coef, max_grad_norm: as in Stable-Baselines3.
        seq_len: chunk length for backpropagation through time. Cores that train without BPTT
            (``core.bptt_free``) always use chunks of length 1.
        minibatch_seq_len: steps of one environment that a minibatch keeps together, in time
            order (a multiple of the chunk length). None: the chunk length, so a core trained
            without BPTT gets single steps shuffled one by one. A longer run lets such a core share
            the work on the slots that consecutive steps have in common, and gives its minibatches
            the make-up of a recurrent core's chunks.
        aux_coef: weight of the core's ``aux_loss`` (if it reports one).
        normalize_advantage: normalize advantages per minibatch.
        optimizer: ``adam`` or ``rmsprop``.
        lr_schedule: ``constant`` or ``linear`` (to zero at ``total_steps``).
        seed: seeds torch's sampling and the minibatch order.
        device: torch device for the policy and buffers.
    """

    def __init__(self, env: VectorEnv, policy: RecurrentActorCritic, *, n_steps: int, batch_size: int,
                 n_epochs: int, learning_rate: float, gamma: float, gae_lambda: float, seq_len: int,
                 ent_coef: float, vf_coef: float, max_grad_norm: float | None, aux_coef: float = 1.0,
                 normalize_advantage: bool = True, optimizer: str = "adam", lr_schedule: str = "constant",
                 minibatch_seq_len: int | None = None, seed: int = 0, device: str | torch.device = "cpu"):
        check_same_step_autoreset(env)
        self.env, self.device = env, torch.device(device)
        self.policy = policy.to(self.device)
        self.n_envs = env.num_envs
        self.chunk_len = 1 if policy.core.bptt_free else int(seq_len)
        _check_positive(n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, seq_len=seq_len,
                        learning_rate=learning_rate)
        if not 0.0 <= gamma <= 1.0 or not 0.0 <= gae_lambda <= 1.0:
            raise ValueError(f"gamma and gae_lambda must lie in [0, 1], got {gamma}, {gae_lambda}")
        if n_steps % self.chunk_len:
            raise ValueError(f"n_steps ({n_steps}) must be a multiple of seq_len ({self.chunk_len})")
        if batch_size % self.chunk_len:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of seq_len ({self.chunk_len}): "
                             f"minibatches hold whole chunks")
        self.group_len = int(minibatch_seq_len or self.chunk_len)
        if self.group_len % self.chunk_len or n_steps % self.group_len or batch_size % self.group_len:
            raise ValueError(f"minibatch_seq_len ({self.group_len}) must be a multiple of the chunk length "
                             f"({self.chunk_len}) and divide n_steps ({n_steps}) and batch_size ({batch_size})")
        if lr_schedule not in ("constant", "linear"):
            raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {lr_schedule!r}")
        self.n_steps, self.batch_size, self.n_epochs = n_steps, batch_size, n_epochs
        self.learning_rate, self.lr_schedule = learning_rate, lr_schedule
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.ent_coef, self.vf_coef, self.aux_coef = ent_coef, vf_coef, aux_coef
        self.max_grad_norm, self.normalize_advantage = max_grad_norm, normalize_advantage
        self.optimizer = _make_optimizer(optimizer, self.policy.parameters(), learning_rate)
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)

        self._uses_prev = policy.torso.uses_prev_action or policy.torso.prev_reward
        self.buffer = RolloutBuffer(env.single_observation_space, env.single_action_space, n_steps,
                                    self.n_envs, self.chunk_len, policy.initial_state(self.n_envs, self.device),
                                    self.device, store_prev=self._uses_prev)
        self.num_timesteps = 0
        self.iterations = 0
        self.episodes = 0
        self.episode_returns: deque[float] = deque(maxlen=100)
        self.episode_lengths: deque[int] = deque(maxlen=100)
        self._seed = seed
        self._obs: Any = None

    # ------------------------------------------------------------------ acting
    def _reset(self) -> None:
        obs, _ = self.env.reset(seed=self._seed)
        B = self.n_envs
        self._obs = to_torch(obs, self.device)
        self._state = self.policy.initial_state(B, self.device)
        self._starts = torch.ones(B, dtype=torch.bool, device=self.device)
        self._prev_action = tree_map(lambda v: torch.zeros_like(v[0]), self.buffer.actions)  # [B, ...]
        self._prev_reward = torch.zeros(B, device=self.device)
        self._ep_return = np.zeros(B)
        self._ep_length = np.zeros(B, dtype=np.int64)

    @torch.no_grad()
    def collect_rollout(self) -> None:
        """Fill the buffer with ``n_steps`` steps of every environment and compute advantages."""
        if self._obs is None:
            self._reset()
        buf, policy = self.buffer, self.policy
        for t in range(self.n_steps):
            buf.store_state(t, self._state)
            buf.store_obs(t, self._obs)
            buf.starts[t] = self._starts
            if self._uses_prev:
                tree_map(lambda b, v: b[t].copy_(v), buf.prev_actions, self._prev_action)
                buf.prev_rewards[t] = self._prev_reward
            out = policy(_seq(self._obs), self._state, self._starts.unsqueeze(0),
                         *self._prev_inputs(self._prev_action, self._prev_reward))
            action = out.dist.sample()
            buf.log_probs[t] = out.dist.log_prob(action)[0]
            buf.values[t] = out.value[0]
            action = action[0]
            tree_map(lambda b, v: b[t].copy_(v), buf.actions, action)

            obs, reward, terminated, truncated, info = self.env.step(policy.actor.to_env(action))
            reward = np.asarray(reward, dtype=np.float32)
            done = np.logical_or(terminated, truncated)
            reward_t = torch.as_tensor(reward, device=self.device)
            if truncated.any():  # bootstrap from the final observation: r += gamma V(o_final)
                rows = np.flatnonzero(truncated)
                rows_t = torch.as_tensor(rows, device=self.device)
                final = _seq(to_torch(final_observations(info, rows), self.device))
                prev = self._prev_inputs(tree_map(lambda v: v[rows_t], action), reward_t[rows_t])
                v_final = policy(final, index_state(out.state, rows_t),
                                 torch.zeros(1, len(rows), dtype=torch.bool, device=self.device), *prev,
                                 need_state=False).value[0]
                reward_t = reward_t.clone()
                reward_t[rows_t] += self.gamma * v_final
            buf.rewards[t] = reward_t
            done_t = torch.as_tensor(done, device=self.device)
            buf.dones[t] = done_t

            self._obs = to_torch(obs, self.device)
            self._state = out.state
            self._starts = done_t
            self._prev_action = action
            self._prev_reward = torch.as_tensor(reward, device=self.device)
            self._track_episodes(reward, done)

        self.num_timesteps += self.n_steps * self.n_envs
        last = policy(_seq(self._obs), self._state, self._starts.unsqueeze(0),
                      *self._prev_inputs(self._prev_action, self._prev_reward), need_state=False)
        buf.compute_advantages(last.value[0], self.gamma, self.gae_lambda)

    def _prev_inputs(self, action: Any, reward: torch.Tensor) -> tuple[Any, torch.Tensor | None]:
        """Previous action and reward ``[B, ...]`` as one-step sequences, if the policy takes them."""
        if not self._uses_prev:
            return None, None
        return _seq(action), reward.unsqueeze(0)

    def _track_episodes(self, reward: np.ndarray, done: np.ndarray) -> None:
        self._ep_return += reward
        self._ep_length += 1
        if done.any():
            for i in np.flatnonzero(done):
                self.episode_returns.append(float(self._ep_return[i]))
                self.episode_lengths.append(int(self._ep_length[i]))
            self.episodes += int(done.sum())
            self._ep_return[done] = 0.0
            self._ep_length[done] = 0

    # ------------------------------------------------------------------ learning
    def loss(self, mb: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of one minibatch and its diagnostics (scalar tensors)."""
        raise NotImplementedError

    def update_plan(self) -> tuple[int, int, bool]:
        """(epochs, chunks per minibatch, shuffle) for one update."""
        raise NotImplementedError

    def evaluate_minibatch(self, mb: Minibatch):
        """Re-run the policy over a minibatch of chunks from their stored states (the state after
        the chunk is not needed)."""
        return self.policy(mb.obs, mb.states, mb.starts, mb.prev_actions, mb.prev_rewards, need_state=False)

    def update(self) -> Metrics:
        epochs, chunks_per_batch, shuffle = self.update_plan()
        self.policy.train()
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for _ in range(epochs):
            for mb in self.buffer.minibatches(chunks_per_batch, self.generator, shuffle,
                                              group=self.group_len // self.chunk_len):
                loss, info = self.loss(mb)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.max_grad_norm:
                    info["grad_norm"] = nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.optimizer.step()
                for k, v in info.items():
                    sums[k] = sums.get(k, 0.0) + v.detach()
                n += 1
            if self.stop_early(sums, n):
                break
        metrics = {k: float(v) / n for k, v in sums.items()}  # one host sync per update
        metrics["learning_rate"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def stop_early(self, sums: dict[str, torch.Tensor], n: int) -> bool:
        return False

    def learn(self, total_steps: int, callback: Callable[["OnPolicyAgent", Metrics], Any] | None = None
              ) -> "OnPolicyAgent":
        """Train until ``total_steps`` environment steps have been taken (whole rollouts).

        ``callback(agent, metrics)`` runs after every update; returning ``False`` stops training.
        """
        start_steps, start = self.num_timesteps, time.perf_counter()
        while self.num_timesteps < total_steps:
            if self.lr_schedule == "linear":
                frac = max(0.0, 1.0 - self.num_timesteps / total_steps)
                for group in self.optimizer.param_groups:
                    group["lr"] = self.learning_rate * frac
            self.collect_rollout()
            metrics = self.update()
            self.iterations += 1
            elapsed = time.perf_counter() - start
            metrics.update(self.episode_metrics())
            metrics["fps"] = (self.num_timesteps - start_steps) / max(elapsed, 1e-9)
            metrics["time_s"] = elapsed
            if callback is not None and callback(self, metrics) is False:
                break
        return self

    def episode_metrics(self) -> Metrics:
        out: Metrics = {"episodes": float(self.episodes)}
        if self.episode_returns:
            out["return_mean"] = float(np.mean(self.episode_returns))
            out["length_mean"] = float(np.mean(self.episode_lengths))
        return out

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "num_timesteps": self.num_timesteps, "iterations": self.iterations, "episodes": self.episodes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.num_timesteps, self.iterations = state["num_timesteps"], state["iterations"]
        self.episodes = state.get("episodes", 0)


def policy_gradient_terms(agent: OnPolicyAgent, mb: Minibatch, out) -> tuple[torch.Tensor, ...]:
    """(log_prob, advantages, value loss, entropy, aux loss) of a re-run minibatch."""
    log_prob = out.dist.log_prob(mb.actions)
    adv = mb.advantages
    if agent.normalize_advantage and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    value_loss = (out.value - mb.returns).pow(2).mean()
    entropy = out.dist.entropy().mean()
    aux = out.extras.get("aux_loss", torch.zeros((), device=agent.device))
    return log_prob, adv, value_loss, entropy, aux


def core_diagnostics(extras: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Means of a core's floating-point per-step extras, as ``core/<name>`` metrics."""
    return {f"core/{k}": v.detach().float().mean() for k, v in extras.items()
            if k != "aux_loss" and v.is_floating_point()}


def _check_positive(**values: float) -> None:
    bad = {k: v for k, v in values.items() if not v > 0}
    if bad:
        raise ValueError("must be positive: " + ", ".join(f"{k}={v}" for k, v in bad.items()))


def _make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=1e-5, fused=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-5)
    raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {name!r}")
