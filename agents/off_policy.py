"""The off-policy loop (as Stable-Baselines3's ``OffPolicyAlgorithm``): act in every env copy with
exploration, write rows into a sequence replay buffer, and every ``train_freq`` vector steps take
``gradient_steps`` gradient steps on sampled sequences.

Subclasses choose actions (:meth:`OffPolicyAgent.explore`) and write :meth:`OffPolicyAgent.train_step`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from rlmem.cores import index_state, reset_state
from rlmem.policy import RecurrentNetwork, tree_map

from .base import OPTIMIZER_EPS, BaseAgent, Metrics, check_positive
from .on_policy import final_observations
from .sequence_replay import SequenceReplayBuffer

#: An iteration (one log row, one NaN check, one chance to checkpoint) holds at least this many env steps
#: (the last one of a run: up to total_steps, in whole rounds of train_freq vector steps).
ITERATION_STEPS = 1000


class OffPolicyAgent(BaseAgent):
    """Args (beyond :class:`~rlmem.agents.base.BaseAgent`):
        buffer_size: replay capacity in rows (env steps, plus one row per truncated episode).
        learning_starts: env steps stored before the first gradient step.
        batch_size: sequences per gradient step.
        train_freq: vector steps (each ``n_envs`` env steps) between training rounds.
        gradient_steps: gradient steps per round.
        seq_len, overlap: rows per stored sequence and rows consecutive sequences share.
        burn_in: leading rows of a sampled sequence that only warm the core state up (no loss).
            Cores trained without BPTT (``bptt_free``) get their state at every row and need none
            (stored with every row, or rebuilt from the first where it follows from the inputs).
        prioritized, priority_alpha, priority_beta, priority_eta: prioritized sequence replay.
        save_replay_buffer: checkpoints include the replay buffer (needed for a bitwise resume).
        stored_state: re-run a sampled sequence from the core state stored with it (R2D2); False
            starts it from the core's initial state instead (the "zero start state" of R2D2's
            ablation; cores trained without BPTT always use their stored per-row states).
    """

    def __init__(self, env: VectorEnv, policy: RecurrentNetwork, *, learning_rate: float, buffer_size: int,
                 learning_starts: int, batch_size: int, train_freq: int, gradient_steps: int, seq_len: int,
                 overlap: int, burn_in: int, prioritized: bool = False, priority_alpha: float = 0.9,
                 priority_beta: float = 0.6, priority_eta: float = 0.9, save_replay_buffer: bool = False,
                 stored_state: bool = True, optimizer: str = "adam", optimizer_eps: float = OPTIMIZER_EPS,
                 lr_schedule: str = "constant", max_grad_norm: float | None = 10.0,
                 seed: int = 0, device: str | torch.device = "cpu"):
        super().__init__(env, policy, learning_rate=learning_rate, optimizer=optimizer, optimizer_eps=optimizer_eps,
                         lr_schedule=lr_schedule, max_grad_norm=max_grad_norm, seed=seed, device=device)
        check_positive(buffer_size=buffer_size, batch_size=batch_size, train_freq=train_freq,
                       gradient_steps=gradient_steps, seq_len=seq_len)
        if learning_starts < 0:
            raise ValueError(f"learning_starts must be >= 0, got {learning_starts}")
        self.per_row_state = bool(policy.core.bptt_free)
        # a state that follows from the inputs alone is stored once per sequence and rebuilt per row
        self.rebuild_rows = self.per_row_state and bool(getattr(policy.core, "state_from_inputs", False))
        self.burn_in = 0 if self.per_row_state else int(burn_in)
        if not 0 <= self.burn_in < seq_len:
            raise ValueError(f"burn_in must lie in [0, seq_len) = [0, {seq_len}), got {burn_in}")
        self.learning_starts, self.batch_size = learning_starts, batch_size
        self.train_freq, self.gradient_steps = train_freq, gradient_steps
        self.priority_beta, self.save_replay_buffer = priority_beta, save_replay_buffer
        self.stored_state = bool(stored_state) or self.per_row_state
        self.buffer = SequenceReplayBuffer(
            policy.encoded_space, env.single_action_space, policy.initial_state(1, self.device), n_envs=self.n_envs,
            capacity=buffer_size, seq_len=seq_len, overlap=overlap,
            per_row_state=self.per_row_state and not self.rebuild_rows,
            store_prev=self._uses_prev, prioritized=prioritized, alpha=priority_alpha, eta=priority_eta,
            device=self.device)
        self.rounds_per_iteration = max(1, math.ceil(ITERATION_STEPS / (train_freq * self.n_envs)))
        self.n_updates = 0
        self.total_steps = 0

    # ------------------------------------------------------------------ acting
    def explore(self, out: Any) -> torch.Tensor:
        """Actions ``[B, ...]`` (as stored) from the network's output ``[1, B, ...]``."""
        raise NotImplementedError

    @torch.no_grad()
    def collect(self, vector_steps: int) -> None:
        """Step every env copy ``vector_steps`` times, writing rows into the replay buffer."""
        if self.carry is None:
            self.reset_carry()
        policy, c, buf, dev = self.policy, self.carry, self.buffer, self.device
        for _ in range(vector_steps):
            out = policy(tree_map(lambda v: v.unsqueeze(0), c.obs), c.state, c.starts.unsqueeze(0),
                         *self.prev_inputs(c.prev_action, c.prev_reward))
            action = self.explore(out)
            obs, reward, terminated, truncated, info = self.env.step(policy.to_env(action))
            reward = np.asarray(reward, dtype=np.float32)
            terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
            reward_t = torch.as_tensor(reward, device=dev)
            term_t, trunc_t = torch.as_tensor(terminated, device=dev), torch.as_tensor(truncated, device=dev)
            row = {"obs": c.obs, "action": action, "reward": reward_t, "starts": c.starts, "terminated": term_t,
                   "truncated": trunc_t & ~term_t, "final": torch.zeros_like(term_t), "state": c.state}
            if self._uses_prev:
                row.update(prev_action=c.prev_action, prev_reward=c.prev_reward)
            buf.add(row)
            # a time limit: one more row with the final observation, seen with the state the episode left
            cut = truncated & ~terminated
            if cut.any():
                rows = torch.as_tensor(np.flatnonzero(cut), device=dev)
                k = len(rows)
                no = torch.zeros(k, dtype=torch.bool, device=dev)
                final = {"obs": policy.prepare_obs(final_observations(info, np.flatnonzero(cut)), dev),
                         "action": tree_map(lambda v: v[rows], action), "reward": torch.zeros(k, device=dev),
                         "starts": no, "terminated": no, "truncated": no, "final": ~no,
                         "state": index_state(out.state, rows)}
                if self._uses_prev:
                    final.update(prev_action=tree_map(lambda v: v[rows], action), prev_reward=reward_t[rows])
                buf.add(final, rows)
            buf.cut()
            done = terminated | truncated
            c.obs = policy.prepare_obs(obs, dev)
            c.state = out.state
            c.starts = torch.as_tensor(done, device=dev)
            c.prev_action, c.prev_reward = action, reward_t
            self.track_episodes(reward, done)
            self.num_timesteps += self.n_envs

    # ------------------------------------------------------------------ learning
    def sample(self, n: int) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
        """``n`` sequences from the buffer (see :meth:`SequenceReplayBuffer.sample`), with the
        core state before every row where the core trains row by row (``per_row_state``)."""
        batch, slots, weights = self.buffer.sample(n, self.generator, self.priority_beta)
        if self.rebuild_rows:
            batch["state"] = self.row_states(batch)
        return batch, slots, weights

    @torch.no_grad()
    def row_states(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The core state before each row ``{k: [L, N, ...]}``, from the state before the first
        ``{k: [N, ...]}`` and the rows' inputs, for cores whose state follows from their inputs
        (``state_from_inputs``): the states the core had when acting, where encoding the
        observation takes no parameters; with a learned encoder (images), those of today's encoder."""
        torso, starts = self.policy.torso, batch["starts"]
        x = torso.core_inputs(batch["obs"], starts, batch.get("prev_action"), batch.get("prev_reward"))
        core, state = torso.core, batch["state"]
        initial = core.initial_state(starts.shape[1], x.device)
        rows = [state]
        any_start = starts.any(1).tolist()
        for t in range(starts.shape[0] - 1):
            state = core.next_state(x[t], reset_state(state, initial, starts[t]) if any_start[t] else state)
            rows.append(state)
        return {k: torch.stack([r[k] for r in rows]) for k in state}

    def train_step(self) -> dict[str, torch.Tensor]:
        """One gradient step on a sampled batch; returns its diagnostics (scalar tensors)."""
        raise NotImplementedError

    def can_learn(self) -> bool:
        return self.buffer.steps_added >= max(self.learning_starts, 1) and self.buffer.filled > 0

    def train_iteration(self) -> Metrics:
        sums: dict[str, torch.Tensor] = {}
        n = 0
        rounds = self.rounds_per_iteration
        if self.total_steps > self.num_timesteps:  # the last iteration stops at total_steps, in whole rounds
            rounds = min(rounds, math.ceil((self.total_steps - self.num_timesteps) / (self.train_freq * self.n_envs)))
        for _ in range(rounds):
            self.collect(self.train_freq)
            if not self.can_learn():
                continue
            for _ in range(self.gradient_steps):
                for k, v in self.train_step().items():
                    sums[k] = sums.get(k, 0.0) + v.detach()
                n += 1
                self.n_updates += 1
        self.check_finite()
        metrics = {k: float(v) / n for k, v in sums.items()}
        metrics.update(self.round_metrics())
        metrics["learning_rate"] = self.optimizer.param_groups[0]["lr"]
        metrics["gradient_steps"] = float(self.n_updates)
        return metrics

    def round_metrics(self) -> Metrics:
        return {"buffer_fill": self.buffer.filled / self.buffer.slots}

    def learn(self, total_steps: int, callback=None) -> "OffPolicyAgent":
        self.total_steps = total_steps
        return super().learn(total_steps, callback)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["n_updates"] = self.n_updates
        state["replay"] = self.buffer.state_dict() if self.save_replay_buffer else None
        return state

    def load_state_dict(self, state: dict[str, Any], restore_carry: bool = True) -> None:
        super().load_state_dict(state, restore_carry)
        self.n_updates = int(state.get("n_updates", 0))
        if state.get("replay") is not None and self.save_replay_buffer:
            self.buffer.load_state_dict(state["replay"])
