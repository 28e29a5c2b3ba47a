"""Evaluate a trained policy: ``python -m rlmem.evaluate checkpoint=PATH [key=value ...]``.

    python -m rlmem.evaluate checkpoint=outputs/.../checkpoint.pt episodes=200 env.corridor=50
    python -m rlmem.evaluate checkpoint=outputs/2026-12-02/10-00-00_ppo_gru_t-maze   # its newest checkpoint

Keys: ``checkpoint`` (a checkpoint file or a run directory; required; a path alone, without
``checkpoint=``, means the same), ``episodes`` (100),
``deterministic`` (true), ``seed`` (0), ``n_envs`` (default: the smaller of ``episodes`` and the
run's ``env.n_envs``), ``device`` (cpu, auto, cuda, cuda:N; default cpu), ``record`` (false: true
also records one episode and saves its pictures, and a GIF where the env renders ``rgb_array``
frames), ``out`` (a folder or a ``.json`` file for the results; default the checkpoint's folder),
and ``env.KEY=VALUE`` (``+env.kwargs.KEY=VALUE`` to add a key), which change the env section of the
config stored in the checkpoint. The environment must keep the observation and action spaces the
policy was trained on.

The episodes are those of :func:`rlmem.agents.evaluate_policy` on ``n_envs`` fresh copies reset
with ``seed``. Printed and written to ``eval.json``: the return's mean, its standard deviation
(over episodes, ``np.std``: no Bessel correction) and a 95% interval of the mean by the normal
approximation, ``mean +- 1.96 std / sqrt(n)`` for ``n`` episodes; the fraction of the optimal
return (``mean / optimal_return``, for envs that know theirs); the mean episode length.

Every bad input ends with one line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoint import CheckpointError, load_checkpoint, newest_checkpoint, rebuild_network
from .overrides import parse_override
from .space_description import build_space, describe_space
from .validation import BOOL, INT, NONE, STR, ConfigError, Rule, check_device, check_value, validate_config

#: Keys of the command line other than ``env.*``, with their defaults and what they take.
OPTIONS: dict[str, tuple[Any, Rule]] = {
    "checkpoint": (None, Rule(STR | NONE)),
    "episodes": (100, Rule(INT, low=1)),
    "deterministic": (True, Rule(BOOL)),
    "seed": (0, Rule(INT, low=0)),
    "n_envs": (None, Rule(INT | NONE, low=1)),
    "device": ("cpu", Rule(STR)),
    "record": (False, Rule(BOOL)),
    "out": (None, Rule(STR | NONE)),
}
Z95 = 1.96  # two-sided 95% quantile of the standard normal


def is_bare_path(text: str) -> bool:
    """A word without ``=`` that names a file or directory (``python -m rlmem.evaluate outputs/run``):
    taken as ``checkpoint=`` so that a path written as ``rlmem.plot`` takes its paths is understood."""
    return "=" not in text and not text.startswith(("-", "+", "~")) and (
        os.sep in text or text.endswith(".pt") or os.path.exists(text))


def parse_command_line(args: list[str]) -> tuple[dict[str, Any], list[tuple[str, Any, bool]]]:
    """``key=value`` words -> (options with defaults filled in, env overrides ``(key, value, add)``);
    :class:`ConfigError` for a word that is not a valid override, an unknown key or a bad value."""
    options = {k: default for k, (default, _) in OPTIONS.items()}
    env_overrides: list[tuple[str, Any, bool]] = []
    for text in args:
        if is_bare_path(text):
            options["checkpoint"] = text
            continue
        try:
            ov = parse_override(text)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        key = ov.key_or_group
        if ov.is_delete() or ov.is_sweep_override():
            raise ConfigError(f"{text}: evaluation takes one value per key (no ~deletions, no sweeps)")
        if key == "env":
            raise ConfigError(f"{text}: the env is the one the checkpoint was trained on; change its settings "
                              f"with env.KEY=VALUE (e.g. env.n_envs=8)")
        value = ov.value()
        if key.startswith("env."):
            env_overrides.append((key, value, ov.is_add() or ov.is_force_add()))
            continue
        if key in OPTIONS and ov.is_add():
            raise ConfigError(f"{text}: {key} is a key of rlmem.evaluate already; write {key}=VALUE (no '+')")
        if key not in OPTIONS:
            raise ConfigError(f"unknown key {key!r}; valid keys: {', '.join(OPTIONS)} and env.KEY "
                              f"(python -m rlmem.evaluate --help)")
        if key in ("checkpoint", "out") and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = text.split("=", 1)[1]  # a file name that looks like a number
        check_value(key, value, OPTIONS[key][1])
        options[key] = value
    if options["checkpoint"] in (None, ""):
        raise ConfigError("checkpoint=PATH is required: a checkpoint file or a run directory, e.g. "
                          "python -m rlmem.evaluate checkpoint=outputs/<date>/<time>_ppo_gru_t-maze")
    check_device(options["device"])
    return options, env_overrides


def resolve_checkpoint(target: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint file ``target`` names (a run directory: its newest one) and its contents."""
    path = Path(target)
    if not path.exists():
        raise CheckpointError(f"checkpoint={target}: no such checkpoint file or run directory")
    path = newest_checkpoint(path) if path.is_dir() else path
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt["config"].get("env"), dict):
        raise CheckpointError(f"{path} holds no training config (it was not saved by rlmem.train), so its env "
                              f"is unknown; load it with rlmem.checkpoint.load_policy and call "
                              f"rlmem.agents.evaluate_policy")
    return path, ckpt


def env_config(ckpt: dict[str, Any], overrides: list[tuple[str, Any, bool]]) -> DictConfig:
    """The checkpoint's training config with ``overrides`` applied to its env section, checked."""
    cfg = OmegaConf.create(ckpt["config"])
    missing = object()
    for key, value, add in overrides:
        if not add and OmegaConf.select(cfg, key, default=missing) is missing:
            parent = key.rpartition(".")[0]
            section = OmegaConf.select(cfg, parent, default=None)
            valid = ", ".join(sorted(map(str, section.keys()))) if isinstance(section, DictConfig) else "none"
            raise ConfigError(f"unknown key {key!r}; valid keys of {parent}: {valid} (prefix with '+' to add a "
                              f"new key, e.g. +env.kwargs.KEY=VALUE)")
        OmegaConf.update(cfg, key, value, merge=True, force_add=add)
    checked = copy.deepcopy(cfg)
    checked.device = "cpu"  # where it trained does not matter here
    validate_config(checked)
    return cfg


def check_spaces(policy: torch.nn.Module, env, overrides: list[tuple[str, Any, bool]]) -> None:
    """:class:`ConfigError` unless ``env`` has the spaces ``policy`` was trained on."""
    changed = " ".join(f"{k}={v}" for k, v, _ in overrides) or "the checkpoint's env settings"
    for what, mine, theirs in (("observation", env.single_observation_space, policy.observation_space),
                               ("action", env.single_action_space, policy.action_space)):
        # through the plain-data description, as the checkpoint stored it (custom spaces by name)
        if build_space(describe_space(mine)) != theirs:
            raise ConfigError(f"{changed} gives the {what} space {mine}, but the policy was trained on a "
                              f"different {what} space, {theirs}; evaluate it on env settings with the same spaces")


def interval(mean: float, std: float, n: int) -> tuple[float, float]:
    """95% interval of the mean by the normal approximation: ``mean +- 1.96 std / sqrt(n)``."""
    half = Z95 * std / math.sqrt(n) if n else math.nan
    return mean - half, mean + half


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def results_path(options: dict[str, Any], ckpt_path: Path) -> Path:
    out = options["out"]
    if out is None:
        return ckpt_path.parent / "eval.json"
    out = Path(out)
    return out if out.suffix == ".json" else out / "eval.json"


def evaluate_checkpoint(args: list[str], echo: bool = False) -> dict[str, Any]:
    """Evaluate as ``python -m rlmem.evaluate`` does (``args``: its ``key=value`` words), write
    ``eval.json`` (and, with ``record=true``, the pictures) and return what it holds; ``echo``
    prints the summary. Raises :class:`~rlmem.validation.ConfigError` for any bad input."""
    from rlmem.agents import evaluate_policy

    from .train import build_env, env_params, resolve_device

    options, overrides = parse_command_line(args)
    ckpt_path, ckpt = resolve_checkpoint(str(options["checkpoint"]))
    cfg = env_config(ckpt, overrides)
    device = resolve_device(options["device"])
    policy = rebuild_network(ckpt, ckpt_path, device)
    policy.eval()
    episodes, seed, deterministic = int(options["episodes"]), int(options["seed"]), bool(options["deterministic"])
    n_envs = int(options["n_envs"] or min(episodes, int(cfg.env.n_envs)))
    env = _build(build_env, cfg.env, seed, n_envs)
    try:
        check_spaces(policy, env, overrides)
        torch.manual_seed(seed)  # a sampling policy draws from torch's generator
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stats = evaluate_policy(policy, env, episodes, deterministic=deterministic, seed=seed)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        optimal = getattr(env, "optimal_return", None)
    finally:
        env.close()
    n = int(stats["episodes"])
    low, high = interval(stats["return_mean"], stats["return_std"], n)
    name, _, params = env_params(cfg.env)
    config = OmegaConf.to_container(cfg, resolve=True)
    result = {
        "checkpoint": str(ckpt_path), "agent": ckpt["agent"].get("name"), "core": config["core"]["name"],
        "trained_env_steps": int(ckpt["agent"]["state"]["num_timesteps"]),
        "env": {**config["env"], "n_envs": n_envs}, "seed": seed, "deterministic": deterministic,
        "episodes": n, "return_mean": stats["return_mean"], "return_std": stats["return_std"],
        "return_ci95": [low, high], "optimal_return": optimal,
        "optimal_fraction": stats["return_mean"] / optimal if optimal else None,
        "length_mean": stats["length_mean"], "capped": bool(stats["capped"]), "device": str(device),
    }
    out = results_path(options, ckpt_path)
    notes: list[str] = []
    if options["record"]:
        result.update(_record(policy, cfg, seed, deterministic, out, build_env, notes))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({k: [_finite(v) for v in x] if isinstance(x, list) else _finite(x)
                               for k, x in result.items()}, indent=2))
    if echo:
        _print_summary(result, name, params, out, notes)
    return result


def _build(build_env, env_cfg: DictConfig, seed: int, n_envs: int):
    try:
        return build_env(env_cfg, seed, n_envs=n_envs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"cannot build the env: {err}") from None


def _record(policy, cfg: DictConfig, seed: int, deterministic: bool, out: Path, build_env,
            notes: list[str]) -> dict[str, Any]:
    """Record one episode on a one-copy env; save its pictures (and a GIF) next to ``out``."""
    from .episode_pictures import episode_figures, save_figures
    from .episode_record import record_episode
    from .episode_video import FrameRecorder, renders_rgb, save_gif

    env_cfg = cfg.env
    env = _build(build_env, env_cfg, seed, 1)
    frames = None
    if env_cfg.name == "gym" and renders_rgb(env):
        env.close()
        env_cfg = copy.deepcopy(env_cfg)
        OmegaConf.update(env_cfg, "kwargs", {**(env_cfg.get("kwargs") or {}), "render_mode": "rgb_array"},
                         force_add=True)
        env = frames = FrameRecorder(_build(build_env, env_cfg, seed, 1))
    else:
        notes.append(f"env {cfg.env.name} has no rgb_array rendering: no video")
    try:
        record = record_episode(policy, env, deterministic=deterministic, seed=seed)
    finally:
        env.close()
    prefix = f"{out.stem}_"
    pictures = save_figures(episode_figures(record), out.parent, prefix, close=True)
    recorded: dict[str, Any] = {"recorded_return": record.episode_return, "recorded_length": record.length,
                                "pictures": [str(p) for p in pictures]}
    if frames is not None and frames.frames:
        fps = float(frames.env.metadata.get("render_fps") or 10)
        recorded["video"] = str(save_gif(frames.frames, out.parent / f"{prefix}episode.gif", fps))
    return recorded


def _show(value: Any) -> str:
    """A config value as it is written on the command line."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _num(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _print_summary(r: dict[str, Any], name: str, params: dict[str, Any], out: Path, notes: list[str]) -> None:
    settings = " ".join(f"{k}={_show(v)}" for k, v in params.items() if k != "kwargs" or v)
    low, high = r["return_ci95"]
    lines = [
        f"checkpoint  {r['checkpoint']} ({r['agent']}, {r['core']}, {r['trained_env_steps']} env steps)",
        f"env         {name} {settings} ({r['env']['n_envs']} copies, seed {r['seed']})",
        f"episodes    {r['episodes']} ({'deterministic' if r['deterministic'] else 'sampled'} actions)",
        f"return      mean {_num(r['return_mean'])}, std {_num(r['return_std'])}, "
        f"95% interval [{_num(low)}, {_num(high)}] (normal approximation)",
    ]
    if r["optimal_return"] is not None:
        lines.append(f"optimal     {_num(r['optimal_return'])} (mean return is {_num(r['optimal_fraction'])} of it)")
    lines.append(f"length      mean {_num(r['length_mean'])} steps")
    if r["capped"]:
        lines.append("capped      some episodes did not end within the step cap: statistics over those that did")
    if "pictures" in r:
        lines.append(f"recorded    one episode: return {_num(r['recorded_return'])}, {r['recorded_length']} steps")
        lines += [f"picture     {p}" for p in r["pictures"]]
        if "video" in r:
            lines.append(f"video       {r['video']}")
        lines += [f"note        {n}" for n in notes]
    lines.append(f"wrote       {out}")
    print("\n".join(lines), flush=True)


def main() -> None:
    from .train import _fail

    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return
    try:
        evaluate_checkpoint(args, echo=True)
    except ConfigError as err:
        _fail(err)


if __name__ == "__main__":
    main()
