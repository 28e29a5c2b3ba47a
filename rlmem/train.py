"""Training entry: ``python -m rlmem.train agent=ppo core=gru env=repeat-previous``.

Hydra composes ``configs/`` (groups ``agent``, ``core``, ``env``, ``logger``); ``-m`` sweeps, e.g.
``python -m rlmem.train -m core=mlp,gru,lstm seed=0,1,2 env=t-maze``. Each run writes
``progress.csv``, ``summary.json`` and ``checkpoint.pt`` to its run directory and prints one last
line ``final: {...}``. Checkpoints are saved periodically; ``resume=RUN_DIR`` (or a checkpoint)
continues a run exactly where its newest checkpoint left it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn

import hydra
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from .allocator import keep_freed_memory
from .checkpoint import CheckpointError, load_checkpoint, newest_checkpoint, prune_checkpoints, save_checkpoint
from .logging import CSVLogger, Logger, MultiLogger, SafeLogger
from .logging.media import EpisodeMedia
from .overrides import GROUPS, compose_config
from .validation import ConfigError, check_command_line, validate_config


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
    """Arguments of the agent's ``network_class``: the policy and core sections, and the agent's
    ``network_options`` (DQN's ``dueling``)."""
    from rlmem.agents import AGENTS

    core = OmegaConf.to_container(cfg.core, resolve=True)
    options = {k: cfg.agent[k] for k in AGENTS[cfg.agent.name].network_options if k in cfg.agent}
    return {"observation_space": env.single_observation_space, "action_space": env.single_action_space,
            "core": core.pop("name"), "core_options": core, "embed_size": int(cfg.policy.embed_size),
            "prev_action": bool(cfg.policy.prev_action), "prev_reward": bool(cfg.policy.prev_reward),
            "head_size": int(cfg.policy.head_size), **options}


def build_agent(cfg: DictConfig, env, policy, device: torch.device):
    from rlmem.agents import AGENTS

    params = OmegaConf.to_container(cfg.agent, resolve=True)
    name = params.pop("name")
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; valid agents: {', '.join(sorted(AGENTS))}")
    for key in AGENTS[name].network_options:  # the network's, given to it by policy_kwargs
        params.pop(key, None)
    return AGENTS[name](env, policy, seed=int(cfg.seed), device=device, **params)


def build_logger(cfg: DictConfig, run_dir: Path, run_state: dict[str, Any], resume_step: int | None = None,
                 config: dict[str, Any] | None = None) -> Logger:
    """The run's loggers; ``resume_step`` continues an interrupted run's logs after that step;
    ``config``: ``cfg`` resolved to plain data, as the dashboards store it (made here if None)."""
    if config is None:
        config = OmegaConf.to_container(cfg, resolve=True)
    loggers: list[Logger] = []
    if cfg.logger.csv:
        loggers.append(SafeLogger(CSVLogger(run_dir / "progress.csv", resume_step=resume_step), "csv"))
    if cfg.logger.tensorboard:
        from .logging.tensorboard_logger import TensorBoardLogger

        loggers.append(SafeLogger(TensorBoardLogger(run_dir / "tb", resume_step=resume_step, config=config),
                                  "tensorboard"))
    if cfg.logger.wandb:
        try:
            from .logging.wandb_logger import WandbLogger

            options = OmegaConf.to_container(cfg.logger.wandb, resolve=True)
            run_name = f"{cfg.agent.name}-{cfg.core.name}-{cfg.env.name}-s{cfg.seed}"
            loggers.append(SafeLogger(WandbLogger(config, run_dir,
                                                  name=run_name, run_id=run_state["wandb_id"],
                                                  resume=resume_step is not None, **options), "wandb"))
        except Exception as err:  # noqa: BLE001  a dashboard problem must not stop training
            print(f"warning: wandb logging is off: {err!r}", file=sys.stderr)
    return MultiLogger(loggers)


def build_media(cfg: DictConfig, run_dir: Path, seed: int, start: int = 0) -> EpisodeMedia | None:
    """Pictures of one greedy episode every ``logger.media_every`` env steps (None when 0)."""
    every = int(cfg.logger.get("media_every", 0) or 0)
    if every <= 0:
        return None
    episode_seed = seed + 2_000_003
    return EpisodeMedia(lambda: build_env(cfg.env, episode_seed, n_envs=1), run_dir, every, seed=episode_seed,
                        start=start)


def capture_media(media: EpisodeMedia, policy, steps: int, logger: Logger, final: bool = False) -> None:
    """Record the episode when one is due (``final``: the trained policy's, unless just taken),
    without touching the run's random streams, and send the pictures drawn so far to ``logger``
    (``final``: all of them, once drawn). A failure turns pictures off with a warning instead of
    stopping training."""
    try:
        if (media.last != steps) if final else media.due(steps):
            with torch.random.fork_rng(devices=[]):
                media.capture(policy, steps)
        media.publish(logger, steps, wait=final)
    except Exception as err:  # noqa: BLE001  pictures must never stop training
        media.every = 0
        media.pending.clear()
        media.last = steps
        print(f"warning: episode pictures are off after an error: {str(err).splitlines()[0][:300]}", file=sys.stderr)


def env_state(env) -> dict[str, Any] | None:
    """The environments' own state if they can give it (built-in tasks), else None."""
    return env.state_dict() if hasattr(env, "state_dict") and hasattr(env, "load_state_dict") else None


def restore(agent, env, ckpt: dict[str, Any], seed: int) -> None:
    """Continue ``agent`` and ``env`` from a loaded checkpoint. Environments that cannot save their
    state (any Gymnasium id) start fresh episodes, reset with a seed derived from ``seed`` and the
    step count, so the run goes on but is not bitwise the uninterrupted one."""
    state = ckpt["agent"]["state"]
    exact = ckpt.get("env") is not None and env_state(env) is not None
    try:
        agent.load_state_dict(state, restore_carry=exact)
        if exact:
            env.load_state_dict(ckpt["env"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(f"cannot continue from {ckpt['_path']}: {str(err).splitlines()[0][:300]}") from None
    if not exact:
        print("warning: this environment's state is not saved in checkpoints: its episodes in progress "
              "restart on resume (training continues, but not bitwise as an uninterrupted run)", file=sys.stderr)
        agent.reset_carry(seed=(seed * 1_000_003 + agent.num_timesteps) % 2**31)


def run(cfg: DictConfig, run_dir: str | Path, resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train, evaluate and save one run described by ``cfg``; returns the summary.

    ``resume``: a loaded checkpoint (:func:`rlmem.checkpoint.load_checkpoint`) to continue from.
    A non-finite loss, gradient or parameter raises :class:`~rlmem.agents.NonFiniteError` after
    ``summary.json`` says so; the newest checkpoint stays the last good one.
    """
    from tqdm import tqdm

    from rlmem.agents import AGENTS, BufferTooLargeError, NonFiniteError, evaluate_policy

    validate_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.torch_threads:
        torch.set_num_threads(int(cfg.torch_threads))
    if cfg.get("keep_freed_memory", True):
        keep_freed_memory()
    device = resolve_device(str(cfg.device))
    seed = int(cfg.seed)
    torch.manual_seed(seed)
    stop_return = None if cfg.stop_return is None else float(cfg.stop_return)
    env = build_env(cfg.env, seed)
    policy = AGENTS[cfg.agent.name].network_class(**policy_kwargs(cfg, env))  # the network this agent trains
    try:
        agent = build_agent(cfg, env, policy, device)
    except BufferTooLargeError as err:
        raise ConfigError(f"agent={cfg.agent.name}: {err}") from None
    run_state: dict[str, Any] = {"wandb_id": uuid.uuid4().hex[:8]}
    resume_step = None
    if resume is not None:
        restore(agent, env, resume, seed)
        run_state.update(resume.get("run") or {})
        resume_step = agent.num_timesteps
    config = OmegaConf.to_container(cfg, resolve=True)  # saved with every checkpoint, stored by the dashboards
    logger = build_logger(cfg, run_dir, run_state, resume_step, config=config)
    media = build_media(cfg, run_dir, seed, start=resume_step or 0)
    total = int(cfg.total_steps)
    start = time.perf_counter()
    bar = tqdm(total=total, initial=min(agent.num_timesteps, total), unit="step", unit_scale=True,
               dynamic_ncols=True, disable=not cfg.progress, desc=f"{cfg.agent.name}/{cfg.core.name}/{cfg.env.name}",
               file=sys.stderr)

    every, every_s = int(cfg.checkpoint_every), 60.0 * float(cfg.checkpoint_every_minutes)
    last_saved, last_saved_time = agent.num_timesteps, time.perf_counter()
    stopped = False

    def save(path: Path) -> Path:
        return save_checkpoint(path, agent.policy, cfg.agent.name, agent.state_dict(), env_state=env_state(env),
                               config=config, run_state=run_state)

    def on_iteration(agent_, metrics: dict[str, float]) -> bool:
        nonlocal last_saved, last_saved_time, stopped
        steps = agent_.num_timesteps
        bar.update(min(steps, total) - bar.n)
        shown = {"ret": metrics.get("return_mean", math.nan), "fps": metrics["fps"]}
        bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
        logger.log(metrics, steps)
        if media is not None:
            capture_media(media, agent_.policy, steps, logger)
        due = (every and steps // every > last_saved // every) or (every_s and time.perf_counter() - last_saved_time >= every_s)
        if due and steps < total:
            save(run_dir / f"checkpoint_{steps}.pt")
            prune_checkpoints(run_dir, int(cfg.checkpoint_keep))
            last_saved, last_saved_time = steps, time.perf_counter()
        if stop_return is not None:
            # a full window of 100 episodes, as SB3's threshold callback sees
            if metrics["episodes"] >= 100 and metrics["return_mean"] >= stop_return:
                stopped = True
                bar.write(f"stop_return {stop_return:g} reached at {steps} env steps "
                          f"(return_mean {metrics['return_mean']:.3g})")
                return False
        return True

    def summarize(**extra: Any) -> dict[str, Any]:
        ep = agent.episode_metrics()
        return {
            "agent": cfg.agent.name, "core": cfg.core.name, "env": cfg.env.name, "seed": seed,
            "env_steps": agent.num_timesteps, "episodes": int(ep["episodes"]), "return_mean": ep.get("return_mean"),
            **extra, "device": str(device), "run_dir": str(run_dir),
        }

    try:
        agent.learn(total, on_iteration)
    except NonFiniteError as err:
        bar.close()
        summary = summarize(status="non_finite", error=str(err), stopped_at_return=False,
                            resumed_from=cfg.get("resume"), wall_s=time.perf_counter() - start)
        logger.log_summary(summary)
        logger.close()
        env.close()
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        raise
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
    if evaluation:
        logger.log_evaluation(evaluation, agent.num_timesteps)
    if media is not None and media.every > 0:
        capture_media(media, agent.policy, agent.num_timesteps, logger, final=True)  # the trained policy's episode
    steps_here = agent.num_timesteps - (resume_step or 0)
    summary = summarize(
        status="stopped_at_return" if stopped else "finished",
        eval_return_mean=evaluation.get("return_mean"), eval_episodes=int(evaluation.get("episodes", 0)),
        optimal_return=optimal, fps=steps_here / max(train_wall, 1e-9), wall_s=time.perf_counter() - start,
        stopped_at_return=stopped, resumed_from=cfg.get("resume"))
    if cfg.checkpoint:
        summary["checkpoint"] = str(save(run_dir / "checkpoint.pt"))
    logger.log_summary(summary)
    logger.close()
    env.close()
    if media is not None:
        media.close()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print("final: " + json.dumps(summary), flush=True)
    return summary


def optimizer_eps_of(ckpt: dict[str, Any]) -> float | None:
    """The eps of a checkpoint's saved optimizer, if it has one."""
    try:
        return float(ckpt["agent"]["state"]["optimizer"]["param_groups"][0]["eps"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def resume_run(target: str, overrides: list[str]) -> dict[str, Any]:
    """Continue the run of a checkpoint (or of a run directory's newest checkpoint) in its run
    directory, with its config; ``overrides`` (``key=value``, e.g. ``total_steps=2000000``) change it."""
    path = Path(target)
    if not path.exists():
        raise CheckpointError(f"resume={target}: no such checkpoint or run directory")
    ckpt_path = newest_checkpoint(path) if path.is_dir() else path
    ckpt = load_checkpoint(ckpt_path)
    for stale in ckpt_path.parent.glob(".checkpoint*.tmp"):  # a save that a kill interrupted
        stale.unlink(missing_ok=True)
    ckpt["_path"] = str(ckpt_path)
    if not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"resume={target}: {ckpt_path} holds no training config (it was not saved by "
                              f"rlmem.train); continue it from Python with agent.load_state_dict")
    cfg = OmegaConf.create(ckpt["config"])
    saved_eps = optimizer_eps_of(ckpt)
    if saved_eps is not None and "optimizer_eps" not in cfg.agent:  # saved before the key existed: keep its eps
        cfg.agent.optimizer_eps = saved_eps
    for text in overrides:
        ov = OverridesParser.create().parse_override(text)
        key = ov.key_or_group
        if key == "resume" or key.startswith("hydra"):
            continue
        if ov.is_delete():
            raise ConfigError(f"{text}: keys cannot be deleted when resuming")
        value = ov.value()
        if key in GROUPS:
            if value != cfg[key].name:
                raise ConfigError(f"{text}: resume continues the checkpoint's {key} {cfg[key].name!r}; it cannot "
                                  f"switch to {value!r} (start a new run instead)")
            continue
        OmegaConf.update(cfg, key, value, merge=True, force_add=ov.is_add() or ov.is_force_add())
    cfg.resume = str(ckpt_path)
    return run(cfg, ckpt_path.parent, resume=ckpt)


def _resume_target(args: list[str]) -> str | None:
    for a in args:
        if a.lstrip("+").startswith("resume="):
            value = a.split("=", 1)[1]
            return value if value not in ("", "null", "None") else None
    return None


def train(overrides: list[str] | None = None, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Run training from Python with command-line style overrides; returns the summary.

    Raises :class:`~rlmem.validation.ConfigError` (a ``ValueError``) for a bad override or value.
    """
    overrides = list(overrides or [])
    check_command_line(overrides)
    target = _resume_target(overrides)
    if target is not None:
        return resume_run(target, overrides)
    cfg = compose_config(overrides)
    if run_dir is None:
        run_dir = Path("outputs") / time.strftime("%Y-%m-%d/%H-%M-%S") / f"{cfg.agent.name}_{cfg.core.name}_{cfg.env.name}"
    return run(cfg, run_dir)


def _fail(err: Exception, code: int = 2) -> NoReturn:
    """One line on stderr and exit ``code``; ``HYDRA_FULL_ERROR=1`` shows the traceback instead."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise err
    print(f"error: {err}", file=sys.stderr, flush=True)
    sys.exit(code)


def _remove_if_unused(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but Hydra's own files (a run that never started)."""
    hydra_files = {".hydra", "train.log", "main.log"}
    if run_dir.is_dir() and all(p.name in hydra_files for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


@hydra.main(config_path="pkg://rlmem.configs", config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    from rlmem.agents import NonFiniteError

    try:
        run(cfg, run_dir)
    except ConfigError as err:
        _remove_if_unused(run_dir)
        _fail(err)
    except NonFiniteError as err:
        _fail(err, code=1)


def main() -> None:
    from rlmem.agents import NonFiniteError

    args = sys.argv[1:]
    try:
        check_command_line(args)
        target = _resume_target(args)
        if target is not None:
            if any(a in ("-m", "--multirun") for a in args):
                raise ConfigError("resume continues one run; resume each run of a sweep on its own (drop -m)")
            resume_run(target, [a for a in args if not a.startswith("-")])
            return
    except ConfigError as err:
        _fail(err)
    except NonFiniteError as err:
        _fail(err, code=1)
    _hydra_main()


if __name__ == "__main__":
    main()
