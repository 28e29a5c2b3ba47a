"""What every agent shares, whatever it learns from (as Stable-Baselines3's ``BaseAlgorithm``):

- the acting carry (observation, core state, ``starts``, previous action and reward, the running
  episode return and length), one object threaded through the acting loop;
- episode statistics, the learn loop with its callback, the optimizer and its learning-rate
  schedule;
- ``state_dict`` / ``load_state_dict`` holding everything exact resume needs (parameters,
  optimizer, every random generator, counters, episode statistics, the carry), as plain data;
- the NaN guard: a non-finite loss, gradient norm or parameter stops training with
  :class:`NonFiniteError`, naming the quantity and the env step.

Subclasses write :meth:`BaseAgent.train_iteration` (on-policy: a rollout and an update).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import nn

from rlmem.cores import State
from rlmem.policy import RecurrentActorCritic, tree_map
from rlmem.rng import capture_rng, restore_rng

from .space_storage import space_zeros

Metrics = dict[str, float]

#: The optimizer's epsilon unless an agent is given another (SB3's PPO value; DQN sets its own).
OPTIMIZER_EPS = 1e-5


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss, gradient or parameter."""

    def __init__(self, quantity: str, env_step: int, where: str):
        self.quantity, self.env_step, self.where = quantity, env_step, where
        super().__init__(f"non-finite {quantity} at env step {env_step} ({where}); training stopped")


def check_same_step_autoreset(env: VectorEnv) -> None:
    mode = getattr(env, "autoreset_mode", None) or env.metadata.get("autoreset_mode")
    if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.SAME_STEP.value):
        raise ValueError(
            f"rlmem agents need vector environments with same-step autoreset, got {mode!r}; build them "
            f"with rlmem.envs.make_vector_env or pass autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP")


@dataclass
class Carry:
    """What the acting loop threads from one step to the next, for all ``B`` env copies.

    ``obs`` is the observation about to be acted on (torch, nested like the encoded space),
    ``state`` the core state before it, ``starts`` [B] whether it begins an episode,
    ``prev_action`` / ``prev_reward`` [B, ...] the previous step's, and ``ep_return`` /
    ``ep_length`` [B] (numpy) the running episode statistics.
    """

    obs: Any
    state: State
    starts: torch.Tensor
    prev_action: Any
    prev_reward: torch.Tensor
    ep_return: np.ndarray
    ep_length: np.ndarray

    def state_dict(self) -> dict[str, Any]:
        return {"obs": self.obs, "state": dict(self.state), "starts": self.starts,
                "prev_action": self.prev_action, "prev_reward": self.prev_reward,
                "ep_return": torch.from_numpy(self.ep_return.copy()),
                "ep_length": torch.from_numpy(self.ep_length.copy())}

    @classmethod
    def from_state_dict(cls, d: dict[str, Any], device: torch.device) -> "Carry":
        move = lambda tree: tree_map(lambda v: v.to(device), tree)  # noqa: E731
        return cls(move(d["obs"]), move(d["state"]), d["starts"].to(device), move(d["prev_action"]),
                   d["prev_reward"].to(device), d["ep_return"].numpy().copy(), d["ep_length"].numpy().copy())


class FiniteGuard:
    """Collects each gradient step's loss and gradient norm (on the device, no host sync) and checks
    them, and the parameters, once per update."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.grad_norms: list[torch.Tensor] = []

    def record(self, loss: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        self.losses.append(loss.detach())
        if grad_norm is not None:
            self.grad_norms.append(grad_norm.detach())

    def check(self, named_parameters, env_step: int, update: int) -> None:
        """Raise :class:`NonFiniteError` for the first non-finite loss or gradient norm recorded since
        the last check (by gradient step), else for the first non-finite parameter."""
        losses, norms = self.losses, self.grad_norms
        self.losses, self.grad_norms = [], []
        first: tuple[int, str] | None = None
        for name, values in (("loss", losses), ("gradient norm", norms)):
            if values:
                bad = ~torch.isfinite(torch.stack(values))
                if bool(bad.any()):
                    i = int(bad.nonzero()[0, 0])
                    if first is None or i < first[0]:
                        first = (i, name)
        if first is not None:
            raise NonFiniteError(first[1], env_step, f"update {update}, gradient step {first[0] + 1} of {len(losses)}")
        params = list(named_parameters)
        ok = torch.stack([torch.isfinite(p).all() for _, p in params]) if params else torch.ones(1, dtype=torch.bool)
        if not bool(ok.all()):
            name = params[int((~ok).nonzero()[0, 0])][0]
            raise NonFiniteError(f"parameter {name}", env_step, f"after update {update}")


class BaseAgent:
    """The loop, the carry, the optimizer and persistence shared by every agent.

    Args:
        env: a Gymnasium vector env with same-step autoreset (``rlmem.envs.make_vector_env``).
        policy: the network to train (``network_class``).
        learning_rate: the optimizer's step size (the start of a ``linear`` schedule).
        optimizer: ``adam`` or ``rmsprop``.
        optimizer_eps: the optimizer's epsilon (added to the root of its second-moment estimate).
        lr_schedule: ``constant`` or ``linear`` (to zero at ``total_steps``).
        max_grad_norm: clip the global gradient norm (None: no clipping).
        seed: seeds torch's sampling, the agent's own generator and the environments' first reset.
        device: torch device for the network and buffers.
    """

    #: the network class an agent trains; checkpoints record its name (``rlmem.policy.NETWORKS``)
    network_class: ClassVar[type[nn.Module]] = RecurrentActorCritic
    #: keys of the agent's config that shape the network it trains: ``rlmem.train`` passes them to
    #: ``network_class`` instead of the agent (DQN's ``dueling``)
    network_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, env: VectorEnv, policy: nn.Module, *, learning_rate: float, optimizer: str = "adam",
                 optimizer_eps: float = OPTIMIZER_EPS, lr_schedule: str = "constant",
                 max_grad_norm: float | None = None, seed: int = 0, device: str | torch.device = "cpu"):
        check_same_step_autoreset(env)
        check_positive(learning_rate=learning_rate, optimizer_eps=optimizer_eps)
        if lr_schedule not in ("constant", "linear"):
            raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {lr_schedule!r}")
        self.env, self.device = env, torch.device(device)
        self.policy = policy.to(self.device)
        self.n_envs = env.num_envs
        self.learning_rate, self.lr_schedule, self.max_grad_norm = learning_rate, lr_schedule, max_grad_norm
        self.optimizer_eps = float(optimizer_eps)
        self.optimizer = make_optimizer(optimizer, self.policy.parameters(), learning_rate, self.optimizer_eps)
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self._uses_prev = policy.torso.uses_prev_action or policy.torso.prev_reward
        self.num_timesteps = 0
        self.iterations = 0
        self.episodes = 0
        self.episode_returns: deque[float] = deque(maxlen=100)
        self.episode_lengths: deque[int] = deque(maxlen=100)
        self._seed = seed
        self.carry: Carry | None = None
        self.guard = FiniteGuard()

    # ------------------------------------------------------------------ acting
    def reset_carry(self, seed: int | None = None) -> None:
        """Reset every env copy (with ``seed``, default the agent's) and start a fresh carry."""
        obs, _ = self.env.reset(seed=self._seed if seed is None else seed)
        B = self.n_envs
        self.carry = Carry(obs=self.policy.prepare_obs(obs, self.device),
                           state=self.policy.initial_state(B, self.device),
                           starts=torch.ones(B, dtype=torch.bool, device=self.device),
                           prev_action=space_zeros(self.env.single_action_space, (B,), self.device),
                           prev_reward=torch.zeros(B, device=self.device),
                           ep_return=np.zeros(B), ep_length=np.zeros(B, dtype=np.int64))

    def prev_inputs(self, action: Any, reward: torch.Tensor) -> tuple[Any, torch.Tensor | None]:
        """Previous action and reward ``[B, ...]`` as one-step sequences, if the policy takes them."""
        if not self._uses_prev:
            return None, None
        return tree_map(lambda v: v.unsqueeze(0), action), reward.unsqueeze(0)

    def track_episodes(self, reward: np.ndarray, done: np.ndarray) -> None:
        c = self.carry
        c.ep_return += reward
        c.ep_length += 1
        if done.any():
            for i in np.flatnonzero(done):
                self.episode_returns.append(float(c.ep_return[i]))
                self.episode_lengths.append(int(c.ep_length[i]))
            self.episodes += int(done.sum())
            c.ep_return[done] = 0.0
            c.ep_length[done] = 0

    # ------------------------------------------------------------------ learning
    def train_iteration(self) -> Metrics:
        """Act and learn once (on-policy: one rollout and one update); returns the update's metrics."""
        raise NotImplementedError

    def gradient_step(self, loss: torch.Tensor, info: dict[str, torch.Tensor]) -> None:
        """Backpropagate ``loss``, clip, step the optimizer; the guard records loss and gradient norm."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = None
        if self.max_grad_norm:
            grad_norm = info["grad_norm"] = nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.guard.record(loss, grad_norm)
        self.optimizer.step()

    def check_finite(self) -> None:
        """The NaN guard, once per update (raises :class:`NonFiniteError`)."""
        self.guard.check(self.policy.named_parameters(), self.num_timesteps, self.iterations + 1)

    def apply_lr_schedule(self, total_steps: int) -> None:
        if self.lr_schedule == "linear":
            frac = max(0.0, 1.0 - self.num_timesteps / total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate * frac

    def learn(self, total_steps: int, callback: Callable[["BaseAgent", Metrics], Any] | None = None) -> "BaseAgent":
        """Train until ``total_steps`` environment steps have been taken (whole iterations).

        ``callback(agent, metrics)`` runs after every iteration; returning ``False`` stops training.
        A non-finite loss, gradient or parameter raises :class:`NonFiniteError`.
        """
        start_steps, start = self.num_timesteps, time.perf_counter()
        while self.num_timesteps < total_steps:
            self.apply_lr_schedule(total_steps)
            metrics = self.train_iteration()
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
        """Everything exact resume needs, as plain data and tensors."""
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "num_timesteps": self.num_timesteps, "iterations": self.iterations, "episodes": self.episodes,
                "episode_returns": list(self.episode_returns), "episode_lengths": list(self.episode_lengths),
                "rng": capture_rng({"agent": self.generator}),
                "carry": None if self.carry is None else self.carry.state_dict()}

    def load_state_dict(self, state: dict[str, Any], restore_carry: bool = True) -> None:
        """Continue from :meth:`state_dict`. ``restore_carry=False`` drops the acting carry (for
        environments whose own state could not be saved: their episodes start afresh)."""
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the step size and eps asked for now (the same, unless overridden)
            group["lr"], group["eps"] = self.learning_rate, self.optimizer_eps
        self.num_timesteps, self.iterations = int(state["num_timesteps"]), int(state["iterations"])
        self.episodes = int(state.get("episodes", 0))
        self.episode_returns = deque((float(v) for v in state.get("episode_returns", [])), maxlen=100)
        self.episode_lengths = deque((int(v) for v in state.get("episode_lengths", [])), maxlen=100)
        if "rng" in state:
            restore_rng(state["rng"], {"agent": self.generator})
        carry = state.get("carry")
        self.carry = Carry.from_state_dict(carry, self.device) if restore_carry and carry is not None else None


def check_positive(**values: float) -> None:
    bad = {k: v for k, v in values.items() if not v > 0}
    if bad:
        raise ValueError("must be positive: " + ", ".join(f"{k}={v}" for k, v in bad.items()))


def make_optimizer(name: str, params, lr: float, eps: float = OPTIMIZER_EPS) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=eps)
    raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {name!r}")
