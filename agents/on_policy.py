"""The on-policy loop shared by A2C and PPO: batched rollouts with stored core states, GAE, and
minibatch updates over whole sequence chunks.

Subclasses say how many epochs and minibatches an update has and write :meth:`loss`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from rlmem.cores import index_state
from rlmem.policy import RecurrentActorCritic, tree_map

from .base import OPTIMIZER_EPS, BaseAgent, Metrics, check_positive
from .rollout import Minibatch, RolloutBuffer


def _seq(batch: Any) -> Any:
    """``[B, ...] -> [1, B, ...]`` (nested for Dict observations)."""
    return tree_map(lambda v: v.unsqueeze(0), batch)


def final_observations(info: dict, rows: np.ndarray) -> Any:
    """Stack ``info["final_obs"]`` of ``rows`` into one batch ``[len(rows), ...]`` (nested if needed)."""
    items = [info["final_obs"][i] for i in rows]
    return tree_map(lambda *xs: np.stack(xs), *items)


class OnPolicyAgent(BaseAgent):
    """Collects ``n_steps`` from every environment, then updates the policy.

    Args (beyond :class:`~rlmem.agents.base.BaseAgent`):
        n_steps: steps per environment per rollout (T).
        batch_size: time steps per minibatch; a multiple of the chunk length.
        n_epochs: passes over each rollout.
        gamma, gae_lambda, ent_coef, vf_coef: as in Stable-Baselines3.
        seq_len: chunk length for backpropagation through time. Cores that train without BPTT
            (``core.bptt_free``) always use chunks of length 1.
        minibatch_seq_len: steps of one environment that a minibatch keeps together, in time
            order (a multiple of the chunk length). None: the chunk length, so a core trained
            without BPTT gets single steps shuffled one by one. A longer run lets such a core share
            the work on the slots that consecutive steps have in common, and gives its minibatches
            the make-up of a recurrent core's chunks.
        aux_coef: weight of the core's ``aux_loss`` (if it reports one).
        normalize_advantage: normalize advantages per minibatch.
    """

    def __init__(self, env: VectorEnv, policy: RecurrentActorCritic, *, n_steps: int, batch_size: int,
                 n_epochs: int, learning_rate: float, gamma: float, gae_lambda: float, seq_len: int,
                 ent_coef: float, vf_coef: float, max_grad_norm: float | None, aux_coef: float = 1.0,
                 normalize_advantage: bool = True, optimizer: str = "adam",
                 optimizer_eps: float = OPTIMIZER_EPS,
                 lr_schedule: str = "constant", minibatch_seq_len: int | None = None, seed: int = 0,
                 device: str | torch.device = "cpu"):
        super().__init__(env, policy, learning_rate=learning_rate, optimizer=optimizer, optimizer_eps=optimizer_eps,
                         lr_schedule=lr_schedule, max_grad_norm=max_grad_norm, seed=seed, device=device)
        self.chunk_len = 1 if policy.core.bptt_free else int(seq_len)
        check_positive(n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, seq_len=seq_len)
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
        self.n_steps, self.batch_size, self.n_epochs = n_steps, batch_size, n_epochs
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.ent_coef, self.vf_coef, self.aux_coef = ent_coef, vf_coef, aux_coef
        self.normalize_advantage = normalize_advantage
        self.buffer = RolloutBuffer(policy.encoded_space, env.single_action_space, n_steps,
                                    self.n_envs, self.chunk_len, policy.initial_state(self.n_envs, self.device),
                                    self.device, store_prev=self._uses_prev)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def collect_rollout(self) -> None:
        """Fill the buffer with ``n_steps`` steps of every environment and compute advantages."""
        if self.carry is None:
            self.reset_carry()
        buf, policy, c = self.buffer, self.policy, self.carry
        for t in range(self.n_steps):
            buf.store_state(t, c.state)
            buf.store_obs(t, c.obs)
            buf.starts[t] = c.starts
            if self._uses_prev:
                tree_map(lambda b, v: b[t].copy_(v), buf.prev_actions, c.prev_action)
                buf.prev_rewards[t] = c.prev_reward
            out = policy(_seq(c.obs), c.state, c.starts.unsqueeze(0), *self.prev_inputs(c.prev_action, c.prev_reward))
            action = out.dist.sample()
            buf.log_probs[t] = out.dist.log_prob(action)[0]
            buf.values[t] = out.value[0]
            action = action[0]
            tree_map(lambda b, v: b[t].copy_(v), buf.actions, action)

            obs, reward, terminated, truncated, info = self.env.step(policy.actor.to_env(action))
            reward = np.asarray(reward, dtype=np.float32)
            terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
            done = terminated | truncated
            reward_t = torch.as_tensor(reward, device=self.device)
            # a time limit that cuts an episode bootstraps from its final observation, r += gamma V(o_final);
            # a step that is both terminated and truncated is a termination (as in Stable-Baselines3)
            bootstrap = truncated & ~terminated
            if bootstrap.any():
                rows = np.flatnonzero(bootstrap)
                rows_t = torch.as_tensor(rows, device=self.device)
                final = _seq(policy.prepare_obs(final_observations(info, rows), self.device))
                prev = self.prev_inputs(tree_map(lambda v: v[rows_t], action), reward_t[rows_t])
                v_final = policy(final, index_state(out.state, rows_t),
                                 torch.zeros(1, len(rows), dtype=torch.bool, device=self.device), *prev,
                                 need_state=False).value[0]
                reward_t = reward_t.clone()
                reward_t[rows_t] += self.gamma * v_final
            buf.rewards[t] = reward_t
            done_t = torch.as_tensor(done, device=self.device)
            buf.dones[t] = done_t

            c.obs = policy.prepare_obs(obs, self.device)
            c.state = out.state
            c.starts = done_t
            c.prev_action = action
            c.prev_reward = torch.as_tensor(reward, device=self.device)
            self.track_episodes(reward, done)

        self.num_timesteps += self.n_steps * self.n_envs
        last = policy(_seq(c.obs), c.state, c.starts.unsqueeze(0), *self.prev_inputs(c.prev_action, c.prev_reward),
                      need_state=False)
        buf.compute_advantages(last.value[0], self.gamma, self.gae_lambda)

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
                self.gradient_step(loss, info)
                for k, v in info.items():
                    sums[k] = sums.get(k, 0.0) + v.detach()
                n += 1
            if self.stop_early(sums, n):
                break
        self.check_finite()
        metrics = {k: float(v) / n for k, v in sums.items()}  # one host sync per update
        metrics["learning_rate"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def stop_early(self, sums: dict[str, torch.Tensor], n: int) -> bool:
        return False

    def train_iteration(self) -> Metrics:
        self.collect_rollout()
        return self.update()


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
    """Means of a core's per-step scalar diagnostics (floating extras shaped ``[T, B]``), as
    ``core/<name>`` metrics. Higher-rank extras (weightings, per-slot ages) are for pictures and
    integer ones (slot indices) are labels: neither has a mean that means anything."""
    return {f"core/{k}": v.detach().float().mean() for k, v in extras.items()
            if k != "aux_loss" and v.is_floating_point() and v.dim() == 2}
