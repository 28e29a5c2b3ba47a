"""Checkpoints: plain data that rebuilds a trained network and continues its run exactly.

A checkpoint is one ``torch.save`` file holding only dicts, lists, strings, numbers and tensors:

    format    "rlmem-checkpoint-2"
    network   {"class": name in rlmem.policy.NETWORKS, "observation_space", "action_space": spaces
              described as plain data (rlmem.space_description), "args": constructor arguments}
    agent     {"name": "ppo", "state": the agent's state_dict (parameters, optimizer, every random
              generator, counters, episode statistics, the acting carry)}
    env       the environments' own state (built-in tasks; arrays as tensors), or None (their
              episodes restart)
    config    the resolved training config, or None
    run       {"wandb_id": ..., ...}: what the run's loggers need to continue

Loading uses ``torch.load(weights_only=True)``: a file built to run code when unpickled is refused
before anything in it runs. Writes go to a temporary file that is renamed over the target, so a
kill during a save leaves the previous checkpoint whole.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .space_description import build_space, describe_space
from .validation import ConfigError

FORMAT = "rlmem-checkpoint-2"
_PERIODIC = re.compile(r"^checkpoint_(\d+)\.pt$")


class CheckpointError(ConfigError):
    """A checkpoint file that is missing, unreadable, unsafe, foreign or damaged."""


def network_spec(network: nn.Module) -> dict[str, Any]:
    """What rebuilds ``network``: its registered class name, its spaces and constructor arguments."""
    from .policy import NETWORKS

    name = type(network).__name__
    if NETWORKS.get(name) is not type(network):
        raise ValueError(f"cannot save a {name}: only networks in rlmem.policy.NETWORKS can be rebuilt")
    args = dict(network.init_args)
    if args.get("core") is None:
        raise ValueError("cannot save a policy built around a Core object: build it with the core's registered "
                         "name (core='...', see rlmem.cores.register_core) so that loading can rebuild it")
    return {"class": name, "observation_space": describe_space(network.observation_space),
            "action_space": describe_space(network.action_space), "args": args}


def build_network(spec: dict[str, Any]) -> nn.Module:
    """The (untrained) network a :func:`network_spec` describes."""
    from .policy import NETWORKS

    cls = NETWORKS.get(spec.get("class"))
    if cls is None:
        raise ValueError(f"unknown network class {spec.get('class')!r}; known: {', '.join(NETWORKS)}")
    return cls(build_space(spec["observation_space"]), build_space(spec["action_space"]), **spec["args"])


def save_checkpoint(path: str | Path, network: nn.Module, agent_name: str, agent_state: dict[str, Any], *,
                    env_state: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                    run_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "network": network_spec(network),
               "agent": {"name": agent_name, "state": agent_state},
               "env": arrays_to_tensors(env_state), "config": config, "run": dict(run_state or {})}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def arrays_to_tensors(tree: Any) -> Any:
    """NumPy arrays anywhere in nested dicts and lists become tensors (plain data for the loader)."""
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(tree.copy())
    if isinstance(tree, dict):
        return {k: arrays_to_tensors(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(arrays_to_tensors(v) for v in tree)
    return tree


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents (tensors on the CPU), checked; :class:`CheckpointError` (one line
    naming the file and what is wrong) for a missing, unsafe, corrupt, foreign or damaged file."""
    path = Path(path)
    if path.is_dir():
        path = newest_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with path.open("rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip archive, or a legacy pickle
        raise CheckpointError(f"{path} is not a readable checkpoint: torch.save did not write it "
                              f"({'the file is empty' if not head else 'it starts with ' + repr(head)})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:
            raise CheckpointError(
                f"refused to load {path}: it holds objects that are not plain data ({found.group(1)}), and "
                f"unpickling them could run code (rlmem checkpoints hold only tensors and plain data; files "
                f"from before {FORMAT} held pickled spaces)") from None
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): "
                              f"{_unpickling_reason(err)}") from None
    except Exception as err:  # noqa: BLE001  torch.load raises many types on damaged files
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): "
                              f"{_first_line(err)}") from None
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(f"{path} is not an rlmem checkpoint (no 'format' entry; a plain state_dict "
                              f"or another library's file?)")
    if ckpt["format"] != FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {ckpt['format']!r}; this rlmem reads {FORMAT!r}")
    problem = _structure_problem(ckpt)
    if problem:
        raise CheckpointError(f"{path} is damaged: {problem}")
    return ckpt


def _structure_problem(ckpt: dict[str, Any]) -> str | None:
    net, agent = ckpt.get("network"), ckpt.get("agent")
    if not isinstance(net, dict) or not {"class", "observation_space", "action_space", "args"} <= set(net):
        return "its 'network' entry lacks the class, spaces or arguments"
    if not isinstance(agent, dict) or not isinstance(agent.get("state"), dict):
        return "its 'agent' entry lacks the agent's state"
    state = agent["state"]
    policy = state.get("policy")
    if not isinstance(policy, dict) or not all(isinstance(v, torch.Tensor) for v in policy.values()):
        return "the agent's state lacks the network's parameters"
    if not isinstance(state.get("num_timesteps"), int):
        return "the agent's state lacks its step counter"
    return None


def _unpickling_reason(err: BaseException) -> str:
    found = re.search(r"WeightsUnpickler error: (.+)", str(err).replace("\n\n", " "))
    return found.group(1).split(" Check the documentation")[0].strip()[:200] if found else _first_line(err)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def rebuild_network(ckpt: dict[str, Any], source: str | Path = "checkpoint",
                    device: str | torch.device = "cpu") -> nn.Module:
    """The trained network of a loaded checkpoint; :class:`CheckpointError` if it does not fit."""
    try:
        network = build_network(ckpt["network"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"cannot rebuild the network of {source}: {_first_line(err)}") from None
    try:
        network.load_state_dict(ckpt["agent"]["state"]["policy"])
    except RuntimeError as err:
        raise CheckpointError(f"the parameters in {source} do not fit its network: {_first_line(err)}") from None
    return network.to(device)


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained policy of a checkpoint (or of a run directory's newest one), ready for ``predict``."""
    ckpt = load_checkpoint(path)
    policy = rebuild_network(ckpt, path, device)
    policy.eval()
    return policy


def checkpoint_steps(path: Path) -> int:
    """The env steps a checkpoint was taken at (from a periodic checkpoint's name, else its contents)."""
    match = _PERIODIC.match(path.name)
    if match:
        return int(match.group(1))
    return int(load_checkpoint(path)["agent"]["state"]["num_timesteps"])


def periodic_checkpoints(run_dir: Path) -> list[Path]:
    """``checkpoint_<steps>.pt`` files of a run directory, oldest first."""
    found = [p for p in run_dir.glob("checkpoint_*.pt") if _PERIODIC.match(p.name)]
    return sorted(found, key=lambda p: int(_PERIODIC.match(p.name).group(1)))


def newest_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint of a run directory with the most env steps (periodic ones and ``checkpoint.pt``)."""
    run_dir = Path(run_dir)
    candidates = periodic_checkpoints(run_dir)
    final = run_dir / "checkpoint.pt"
    if final.is_file():
        candidates.append(final)
    if not candidates:
        raise CheckpointError(f"no checkpoint in {run_dir} (looked for checkpoint.pt and checkpoint_<steps>.pt)")
    return max(candidates, key=checkpoint_steps)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest periodic checkpoints (``keep`` 0: keep all)."""
    if keep > 0:
        for old in periodic_checkpoints(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
