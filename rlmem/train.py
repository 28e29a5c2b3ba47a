"""Training entry: ``python -m rlmem.train agent=ppo core=gru env=repeat-previous``.

Hydra composes ``configs/`` (groups ``agent``, ``core``, ``env``, ``logger``); ``-m`` sweeps, e.g.
``python -m rlmem.train -m core=mlp,gru,lstm seed=0,1,2 env=t-maze``. Each run writes
``progress.csv``, ``summary.json`` and ``checkpoint.pt`` to its run directory and prints one last
line ``final: {...}``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from .allocator import keep_freed_memory
from .checkpoint import save_checkpoint
from .logging import CSVLogger, Logger, MultiLogger, SafeLogger
from .overrides import check_overrides, compose_config


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name} was asked for, but torch sees no CUDA device; use device=cpu or auto")
    return device


def env_params(env_cfg: DictConfig) -> tuple[str, int, dict[str, Any]]:
    """(name, n_envs, task parameters) of an ``env`` config section."""
    params = OmegaConf.to_container(env_cfg, resolve=True)
    name, n_envs = params.pop("name"), params.pop("n_envs")
    return name, int(n_envs), params


def build_env(env_cfg: DictConfig, seed: int, n_envs: int | None = None):
    from rlmem.envs import make_vector_env

    name, default_n, params = env_params(env_cfg)
    return make_vector_env(name, n_envs or default_n, seed=seed, **params)


def policy_kwargs(cfg: DictConfig, env) -> dict[str, Any]:
    core = OmegaConf.to_container(cfg.core, resolve=True)
    return {"observation_space": env.single_observation_space, "action_space": env.single_action_space,
            "core": core.pop("name"), "core_options": core, "embed_size": int(cfg.policy.embed_size),
            "prev_action": bool(cfg.policy.prev_action), "prev_reward": bool(cfg.policy.prev_reward),
            "head_size": int(cfg.policy.head_size)}


def build_agent(cfg: DictConfig, env, policy, device: torch.device):
    from rlmem.agents import AGENTS

    params = OmegaConf.to_container(cfg.agent, resolve=True)
    name = params.pop("name")
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; valid agents: {', '.join(sorted(AGENTS))}")
    return AGENTS[name](env, policy, seed=int(cfg.seed), device=device, **params)


def build_logger(cfg: DictConfig, run_dir: Path) -> Logger:
    loggers: list[Logger] = []
    if cfg.logger.csv:
        loggers.append(SafeLogger(CSVLogger(run_dir / "progress.csv"), "csv"))
    if cfg.logger.tensorboard:
        from .logging.tensorboard_logger import TensorBoardLogger

        loggers.append(SafeLogger(TensorBoardLogger(run_dir / "tb"), "tensorboard"))
    if cfg.logger.wandb:
        try:
            from .logging.wandb_logger import WandbLogger

            options = OmegaConf.to_container(cfg.logger.wandb, resolve=True)
            run_name = f"{cfg.agent.name}-{cfg.core.name}-{cfg.env.name}-s{cfg.seed}"
            loggers.append(SafeLogger(WandbLogger(OmegaConf.to_container(cfg, resolve=True), run_dir,
                                                  name=run_name, **options), "wandb"))
        except Exception as err:  # noqa: BLE001  a dashboard problem must not stop training
            print(f"warning: wandb logging is off: {err!r}", file=sys.stderr)
    return MultiLogger(loggers)


def run(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train, evaluate and save one run described by ``cfg``; returns the summary."""
    from tqdm import tqdm

    from rlmem.agents import evaluate_policy
    from rlmem.policy import RecurrentActorCritic

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.torch_threads:
        torch.set_num_threads(int(cfg.torch_threads))
    if cfg.get("keep_freed_memory", True):
        keep_freed_memory()
    device = resolve_device(str(cfg.device))
    seed = int(cfg.seed)
    torch.manual_seed(seed)
    try:
        stop_return = None if cfg.stop_return is None else float(cfg.stop_return)
    except (TypeError, ValueError):
        raise ValueError(f"stop_return must be a number or null, got {cfg.stop_return!r}") from None
    env = build_env(cfg.env, seed)
    kwargs = policy_kwargs(cfg, env)
    policy = RecurrentActorCritic(**kwargs)
    agent = build_agent(cfg, env, policy, device)
    logger = build_logger(cfg, run_dir)
    total = int(cfg.total_steps)
    start = time.perf_counter()
    bar = tqdm(total=total, unit="step", unit_scale=True, dynamic_ncols=True, disable=not cfg.progress,
               desc=f"{cfg.agent.name}/{cfg.core.name}/{cfg.env.name}", file=sys.stderr)

    config = OmegaConf.to_container(cfg, resolve=True)  # saved with every checkpoint
    every = int(cfg.checkpoint_every)
    next_save = every
    stopped = False

    def on_iteration(agent_, metrics: dict[str, float]) -> bool:
        nonlocal next_save, stopped
        bar.update(min(agent_.num_timesteps, total) - bar.n)
        shown = {"ret": metrics.get("return_mean", math.nan), "fps": metrics["fps"]}
        bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
        logger.log(metrics, agent_.num_timesteps)
        if every and agent_.num_timesteps >= next_save:
            save_checkpoint(run_dir / f"checkpoint_{agent_.num_timesteps}.pt", kwargs, agent_.state_dict(), config)
            next_save += every
        if stop_return is not None:
            # a full window of 100 episodes, as SB3's threshold callback sees
            if metrics["episodes"] >= 100 and metrics["return_mean"] >= stop_return:
                stopped = True
                bar.write(f"stop_return {stop_return:g} reached at {agent_.num_timesteps} env steps "
                          f"(return_mean {metrics['return_mean']:.3g})")
                return False
        return True

    try:
        agent.learn(total, on_iteration)
    finally:
        bar.close()
    train_wall = time.perf_counter() - start
    optimal = getattr(env, "optimal_return", None)
    evaluation: dict[str, float] = {}
    if cfg.eval_episodes:
        eval_env = build_env(cfg.env, seed + 1_000_003, n_envs=min(int(cfg.eval_episodes), env.num_envs))
        evaluation = evaluate_policy(agent.policy, eval_env, int(cfg.eval_episodes),
                                     deterministic=bool(cfg.eval_deterministic), seed=seed + 1_000_003)
        eval_env.close()
    ep = agent.episode_metrics()
    summary = {
        "agent": cfg.agent.name, "core": cfg.core.name, "env": cfg.env.name, "seed": seed,
        "env_steps": agent.num_timesteps, "episodes": int(ep["episodes"]),
        "return_mean": ep.get("return_mean"), "eval_return_mean": evaluation.get("return_mean"),
        "eval_episodes": int(evaluation.get("episodes", 0)), "optimal_return": optimal,
        "fps": agent.num_timesteps / max(train_wall, 1e-9), "wall_s": time.perf_counter() - start,
        "device": str(device), "run_dir": str(run_dir), "stopped_at_return": stopped,
    }
    if cfg.checkpoint:
        path = save_checkpoint(run_dir / "checkpoint.pt", kwargs, agent.state_dict(), config)
        summary["checkpoint"] = str(path)
    logger.log_summary(summary)
    logger.close()
    env.close()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print("final: " + json.dumps(summary), flush=True)
    return summary


def train(overrides: list[str] | None = None, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Run training from Python with command-line style overrides; returns the summary."""
    overrides = list(overrides or [])
    problem = check_overrides(overrides)
    if problem:
        raise ValueError(problem)
    cfg = compose_config(overrides)
    if run_dir is None:
        run_dir = Path("outputs") / time.strftime("%Y-%m-%d/%H-%M-%S") / f"{cfg.agent.name}_{cfg.core.name}_{cfg.env.name}"
    return run(cfg, run_dir)


@hydra.main(config_path="pkg://rlmem.configs", config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run(cfg, HydraConfig.get().runtime.output_dir)


def main() -> None:
    problem = check_overrides(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
