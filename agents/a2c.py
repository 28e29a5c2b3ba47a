"""Advantage actor-critic over recurrent cores.

The advantage is GAE (seed notation ``A_t = TD_t + gamma lambda A_{t+1} (1 - d_t)``):
``gae_lambda = 1`` gives the n-step advantage over the rollout (Stable-Baselines3's default),
``gae_lambda = 0`` the one-step ``A_t = r_t + gamma V_{t+1} - V_t``.
"""

from __future__ import annotations

import torch

from .on_policy import OnPolicyAgent, core_diagnostics, policy_gradient_terms
from .rollout import Minibatch


class A2C(OnPolicyAgent):
    """One gradient step per rollout on ``-A_t log pi(a_t) + vf_coef (V_t - R_t)^2 - ent_coef H``,
    backpropagating through each chunk of ``seq_len`` steps (default: the whole rollout) from its
    stored starting state."""

    def __init__(self, env, policy, *, n_steps: int = 16, learning_rate: float = 3e-3, gamma: float = 0.99,
                 gae_lambda: float = 1.0, seq_len: int | None = None, ent_coef: float = 0.0,
                 vf_coef: float = 0.5, max_grad_norm: float | None = 0.5, normalize_advantage: bool = False,
                 batch_size: int | None = None, n_epochs: int = 1, **kwargs):
        super().__init__(env, policy, n_steps=n_steps, batch_size=batch_size or n_steps * env.num_envs,
                         n_epochs=n_epochs, learning_rate=learning_rate, gamma=gamma, gae_lambda=gae_lambda,
                         seq_len=seq_len or n_steps, ent_coef=ent_coef, vf_coef=vf_coef,
                         max_grad_norm=max_grad_norm, normalize_advantage=normalize_advantage, **kwargs)

    def update_plan(self) -> tuple[int, int, bool]:
        n_chunks = (self.n_steps // self.chunk_len) * self.n_envs
        return self.n_epochs, min(self.batch_size // self.chunk_len, n_chunks), False

    def loss(self, mb: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.evaluate_minibatch(mb)
        log_prob, adv, value_loss, entropy, aux = policy_gradient_terms(self, mb, out)
        policy_loss = -(adv * log_prob).mean()
        loss = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy + self.aux_coef * aux
        return loss, {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(),
                      "entropy": entropy.detach(), "aux_loss": aux.detach(), **core_diagnostics(out.extras)}
