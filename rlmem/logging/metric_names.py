"""Dashboard names of the training metrics, grouped as CleanRL and Stable-Baselines3 users know them.

``progress.csv`` keeps the agents' flat names (``return_mean``, ``policy_loss``); TensorBoard and
W&B get them grouped: ``charts/`` (returns, speed, schedules), ``losses/`` (what the update
optimizes and how), ``core/`` (the memory's own diagnostics, already prefixed by the agents) and
``eval/`` (greedy evaluation at the end of training).
"""

from __future__ import annotations

from typing import Mapping

#: Flat agent metric -> dashboard name. ``charts/episodic_return`` is the mean over the last 100
#: finished training episodes (SB3's ``rollout/ep_rew_mean``), logged against env steps.
DASHBOARD_NAMES: dict[str, str] = {
    "return_mean": "charts/episodic_return",
    "length_mean": "charts/episodic_length",
    "episodes": "charts/episodes",
    "fps": "charts/SPS",
    "time_s": "charts/time_s",
    "learning_rate": "charts/learning_rate",
    "epsilon": "charts/epsilon",
    "buffer_fill": "charts/buffer_fill",
    "gradient_steps": "charts/gradient_steps",
    "policy_loss": "losses/policy_loss",
    "value_loss": "losses/value_loss",
    "entropy": "losses/entropy",
    "aux_loss": "losses/aux_loss",
    "approx_kl": "losses/approx_kl",
    "clip_fraction": "losses/clipfrac",
    "grad_norm": "losses/grad_norm",
    "td_loss": "losses/td_loss",
    "q_mean": "losses/q_values",
}


def dashboard_name(key: str) -> str:
    """The grouped name of one metric; names that carry a group already (``core/gate``) stay."""
    if "/" in key:
        return key
    if key in DASHBOARD_NAMES:
        return DASHBOARD_NAMES[key]
    return f"losses/{key}" if key.endswith("_loss") else f"charts/{key}"


def dashboard_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` under their dashboard names."""
    return {dashboard_name(k): v for k, v in metrics.items()}


def evaluation_metrics(evaluation: Mapping[str, float]) -> dict[str, float]:
    """Evaluation results (``return_mean``, ``return_std``, ...) as ``eval/`` metrics."""
    return {f"eval/{k}": v for k, v in evaluation.items()}
