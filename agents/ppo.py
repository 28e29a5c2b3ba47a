"""Proximal Policy Optimization with GAE over recurrent cores."""

from __future__ import annotations

import torch

from .on_policy import OnPolicyAgent, core_diagnostics, policy_gradient_terms
from .rollout import Minibatch


class PPO(OnPolicyAgent):
    """PPO (clipped surrogate) with minibatches of whole sequence chunks and stored starting states.

    Args (beyond :class:`OnPolicyAgent`):
        clip_range: the surrogate's ratio clip epsilon.
        clip_range_vf: clip the value change per update (None: no clipping).
        target_kl: stop the epochs of an update once the approximate KL passes this (None: never).
    """

    def __init__(self, env, policy, *, n_steps: int = 128, batch_size: int = 512, n_epochs: int = 4,
                 learning_rate: float = 3e-4, gamma: float = 0.99, gae_lambda: float = 0.95,
                 seq_len: int = 16, clip_range: float = 0.2, clip_range_vf: float | None = None,
                 ent_coef: float = 0.0, vf_coef: float = 0.5, max_grad_norm: float | None = 0.5,
                 target_kl: float | None = None, **kwargs):
        super().__init__(env, policy, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs,
                         learning_rate=learning_rate, gamma=gamma, gae_lambda=gae_lambda, seq_len=seq_len,
                         ent_coef=ent_coef, vf_coef=vf_coef, max_grad_norm=max_grad_norm, **kwargs)
        if clip_range <= 0:
            raise ValueError(f"clip_range must be positive, got {clip_range}")
        self.clip_range, self.clip_range_vf, self.target_kl = clip_range, clip_range_vf, target_kl

    def update_plan(self) -> tuple[int, int, bool]:
        return self.n_epochs, self.batch_size // self.chunk_len, True

    def loss(self, mb: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.evaluate_minibatch(mb)
        log_prob, adv, value_loss, entropy, aux = policy_gradient_terms(self, mb, out)
        log_ratio = log_prob - mb.log_probs
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1.0 - self.clip_range, 1.0 + self.clip_range)
        policy_loss = -torch.min(ratio * adv, clipped * adv).mean()
        if self.clip_range_vf is not None:
            v_clipped = mb.values + (out.value - mb.values).clamp(-self.clip_range_vf, self.clip_range_vf)
            value_loss = torch.max(value_loss, (v_clipped - mb.returns).pow(2).mean())
        loss = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy + self.aux_coef * aux
        with torch.no_grad():
            approx_kl = ((ratio - 1.0) - log_ratio).mean()
            clip_fraction = ((ratio - 1.0).abs() > self.clip_range).float().mean()
        return loss, {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(),
                      "entropy": entropy.detach(), "aux_loss": aux.detach(), "approx_kl": approx_kl,
                      "clip_fraction": clip_fraction, **core_diagnostics(out.extras)}

    def stop_early(self, sums: dict[str, torch.Tensor], n: int) -> bool:
        return self.target_kl is not None and float(sums["approx_kl"]) / n > 1.5 * self.target_kl