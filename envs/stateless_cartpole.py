"""stateless-cartpole: cart-pole balancing from positions only (velocities hidden)."""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from .base import BatchedEnv, Oracle, check_int
from .single import SingleEnv

__all__ = ["StatelessCartPole", "StatelessCartPoleOracle", "StatelessCartPoleSingle"]

# Same constants and Euler integration as gymnasium's CartPole-v1.
GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
HALF_POLE_LENGTH = 0.5
POLE_MASS_LENGTH = MASS_POLE * HALF_POLE_LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_LIMIT = 12 * 2 * math.pi / 360
X_LIMIT = 2.4


class StatelessCartPole(BatchedEnv):
    """Cart-pole whose observation is only (cart position, pole angle).

    Dynamics, start state (uniform in [-0.05, 0.05]^4) and failure limits
    (|x| > 2.4 or |theta| > 12 degrees, which terminates) follow CartPole-v1.
    Action ``Discrete(2)``: push left (0) or right (1). Every step earns
    ``1 / max_steps``; an episode that reaches ``max_steps`` steps without
    failing is truncated (``truncated=True``, ``terminated=False``).

    Batched: observations float32 [B, 2], actions [B].
    """

    def __init__(self, num_envs: int = 1, seed: int | None = None, *, max_steps: int = 500) -> None:
        self.max_steps = check_int("max_steps", max_steps, low=1)
        super().__init__(num_envs, seed)
        high = np.array([2 * X_LIMIT, 2 * THETA_LIMIT], dtype=np.float32)
        self._set_spaces(spaces.Box(-high, high, dtype=np.float32), spaces.Discrete(2))
        self._state = np.zeros((4, self.num_envs))  # rows: x, x_dot, theta, theta_dot
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._force = np.array([-FORCE_MAG, FORCE_MAG])
        self._reward = np.float32(1.0 / self.max_steps)

    def _reset_rows(self, idx: np.ndarray) -> None:
        self._state[:, idx] = self.np_random.uniform(-0.05, 0.05, size=(4, len(idx)))
        self._steps[idx] = 0

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, x_dot, theta, theta_dot = self._state
        force = self._force[actions]
        cos, sin = np.cos(theta), np.sin(theta)
        temp = (force + POLE_MASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
        theta_acc = (GRAVITY * sin - cos * temp) / (
            HALF_POLE_LENGTH * (4.0 / 3.0 - MASS_POLE * cos**2 / TOTAL_MASS)
        )
        x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
        x += TAU * x_dot
        x_dot += TAU * x_acc
        theta += TAU * theta_dot
        theta_dot += TAU * theta_acc

        terminated = (np.abs(x) > X_LIMIT) | (np.abs(theta) > THETA_LIMIT)
        self._steps += 1
        truncated = self._steps >= self.max_steps
        truncated &= ~terminated
        rewards = np.full(self.num_envs, self._reward, dtype=np.float32)
        return rewards, terminated, truncated

    def _observe(self, idx: np.ndarray | None = None) -> np.ndarray:
        x, theta = (self._state[0], self._state[2]) if idx is None else (self._state[0, idx], self._state[2, idx])
        obs = np.empty((len(x), 2), dtype=np.float32)
        obs[:, 0] = x
        obs[:, 1] = theta
        return obs


class StatelessCartPoleOracle(Oracle):
    """Balances with a linear state-feedback rule on finite-difference velocities.

    Velocities are estimated as (obs_t - obs_{t-1}) / tau from the two latest
    observations it has seen (0 on the first step of an episode); the push goes
    right when ``K . (x, x_dot, theta, theta_dot) > 0``.
    """

    # Pole angle dominates; the small cart terms keep the cart near the centre.
    GAINS = np.array([1.0, 1.5, 18.0, 3.0])

    def __init__(self, num_envs: int, *, max_steps: int = 500) -> None:
        super().__init__(num_envs)
        self._prev = np.zeros((self.num_envs, 2))

    def act(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """obs: float [B, 2] (x, theta); returns int64 [B] actions."""
        obs = obs.astype(np.float64)
        self._prev[starts] = obs[starts]
        vel = (obs - self._prev) / TAU
        self._prev = obs
        x, theta = obs[:, 0], obs[:, 1]
        score = self.GAINS @ np.stack([x, vel[:, 0], theta, vel[:, 1]])
        return (score > 0).astype(np.int64)


class StatelessCartPoleSingle(SingleEnv):
    """Single-copy :class:`gymnasium.Env` version of :class:`StatelessCartPole`."""

    batched_cls = StatelessCartPole
