"""Pictures of a recorded episode (:class:`~rlmem.episode_record.EpisodeRecord`): what the policy
saw, did and earned, and what its core did, over time.

Figures are built with matplotlib's Agg canvas and are never registered with ``pyplot``, so no
display is needed and a figure is freed with its last reference (``save_figures(close=True)``
also clears the figures it wrote). Names and what they show, each only where it applies:

- ``episode/inputs``: observations, actions and rewards per step;
- ``core/ntm_weights``: each NTM read and write head's weighting over the memory rows per step;
- ``core/tmm_slots``: slot ages with the slot written at each step, the readout's attention over
  the slots, and the surprise of each step's token;
- ``core/tape_attention``: the tape's attention over its slots per step (slot = step index);
- ``core/state``: a recurrent core's state over time (gru/lstm/elman ``h`` and ``c``, gated
  ``s``, the NTM controller's ``h`` and ``c``) or the counts core's counts ``n``;
- ``core/scalars``: the core's per-step scalar diagnostics (NTM entropies, the gate, tmm write rate ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .episode_record import EpisodeRecord

STATE_KEYS = ("h", "c", "s", "n")  # state entries shown in core/state (recurrent state, counts)
_WIDTH, _PANEL = 10.0, 2.3     # inches: figure width, height per panel


def _figure(panels: int, title: str) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(_WIDTH, 0.6 + _PANEL * panels), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(title)
    axes[-1].set_xlabel("step t")
    return fig, list(axes)


def _heatmap(fig: Figure, ax: Axes, values: np.ndarray, title: str, ylabel: str, colorbar: str,
             symmetric: bool = False, vmin: float | None = None, vmax: float | None = None) -> None:
    """``values`` [T, D] drawn with time on x and the D rows on y (row 0 at the bottom)."""
    values = np.asarray(values, dtype=np.float64)
    if symmetric:
        bound = float(np.nanmax(np.abs(values))) if values.size else 1.0
        vmin, vmax = -(bound or 1.0), bound or 1.0
    image = ax.imshow(values.T, aspect="auto", origin="lower", interpolation="nearest",
                      cmap="RdBu_r" if symmetric else "viridis", vmin=vmin, vmax=vmax,
                      extent=(-0.5, values.shape[0] - 0.5, -0.5, values.shape[1] - 0.5))
    fig.colorbar(image, ax=ax, label=colorbar, pad=0.01)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)


def _flatten_step(obs: Any) -> np.ndarray:
    if isinstance(obs, dict):
        return np.concatenate([_flatten_step(v) for v in obs.values()]) if obs else np.zeros(0)
    if isinstance(obs, (tuple, list)):
        return np.concatenate([_flatten_step(v) for v in obs]) if obs else np.zeros(0)
    return np.asarray(obs, dtype=np.float64).reshape(-1)


def _parts(obs: Any) -> str:
    if isinstance(obs, dict):
        return ", ".join(map(str, obs))
    return ", ".join(f"part {i}" for i in range(len(obs)))


def _values_panel(fig: Figure, ax: Axes, values: np.ndarray, what: str, ylabel: str) -> None:
    """Per-step values [T, ...]: small integer codes as a one-hot map, vectors as a heatmap, a
    scalar as a line."""
    values = np.asarray(values)
    if values.ndim == 1 and values.dtype.kind in "iub" and values.size and np.ptp(values) < 32:
        low = int(values.min())
        onehot = np.zeros((values.shape[0], int(values.max()) - low + 1))
        onehot[np.arange(values.shape[0]), values.astype(np.int64) - low] = 1.0
        _heatmap(fig, ax, onehot, f"{what} (a mark at the value of each step)", ylabel, "1: this value", vmin=0, vmax=1)
        ticks = np.arange(onehot.shape[1])
        ax.set_yticks(ticks[:: max(1, len(ticks) // 8)], [str(low + t) for t in ticks[:: max(1, len(ticks) // 8)]])
    elif values.ndim == 1:
        ax.step(np.arange(values.shape[0]), values, where="mid")
        ax.set_title(what, fontsize=10)
        ax.set_ylabel(ylabel)
    else:
        _heatmap(fig, ax, values.reshape(values.shape[0], -1), f"{what} (each row one feature)",
                 f"{ylabel} feature", "value")


def inputs_figure(record: EpisodeRecord) -> Figure:
    """Observations [T, ...], actions [T, ...] and rewards [T] of the episode."""
    fig, (obs_ax, act_ax, rew_ax) = _figure(3, f"episode of {record.core}: return {record.episode_return:.3g}, "
                                                f"{record.length} steps" + (" (cut at the step cap)"
                                                                             if record.truncated_by_cap else ""))
    if isinstance(record.observations, list):
        flat = np.stack([_flatten_step(o) for o in record.observations])
        _heatmap(fig, obs_ax, flat, f"observations (flattened: {_parts(record.observations[0])})",
                 "observation feature", "value")
    else:
        _values_panel(fig, obs_ax, record.observations, "observation per step", "observation")
    _values_panel(fig, act_ax, record.actions, "action per step", "action")
    t = np.arange(record.length)
    rew_ax.bar(t, record.rewards, width=0.8, color="tab:blue", label="reward")
    rew_ax.set_ylabel("reward")
    cumulative = rew_ax.twinx()
    cumulative.plot(t, np.cumsum(record.rewards), color="tab:orange", label="return so far")
    cumulative.set_ylabel("return so far")
    rew_ax.set_title("reward per step (bars) and return so far (line)", fontsize=10)
    return fig


def ntm_figure(record: EpisodeRecord) -> Figure:
    """Each head's weighting over the N memory rows per step (``read_weights`` [T, R, N],
    ``write_weights`` [T, W, N])."""
    heads = [(kind, h, record.extras[f"{kind}_weights"][:, h]) for kind in ("read", "write")
             for h in range(record.extras[f"{kind}_weights"].shape[1])]
    fig, axes = _figure(len(heads), "NTM addressing: where each head reads and writes at each step")
    for ax, (kind, h, w) in zip(axes, heads):
        _heatmap(fig, ax, w, f"{kind} head {h}: weighting over memory rows", "memory row", "weight", vmin=0, vmax=1)
    return fig


def tmm_figure(record: EpisodeRecord) -> Figure:
    """Slot ages [T, N] with the written slot [T], attention over slots [T, N], surprise [T]."""
    ex = record.extras
    panels = [k for k in ("slot_age", "attention", "surprise") if k in ex]
    fig, axes = _figure(len(panels), "token memory: slot writes, ages, attention and surprise")
    written = ex.get("written_slot")
    steps = np.flatnonzero(written >= 0) if written is not None else np.zeros(0, dtype=int)
    for ax, key in zip(axes, panels):
        if key == "slot_age":
            _heatmap(fig, ax, ex["slot_age"], "slot ages in steps (x: the slot written at that step)", "slot",
                     "age (steps)")
        elif key == "attention":
            _heatmap(fig, ax, ex["attention"], "readout attention over slots (mean over heads)", "slot",
                     "weight", vmin=0)
        else:
            ax.plot(np.arange(record.length), ex["surprise"], color="tab:purple", label="surprise")
            if len(steps):
                ax.scatter(steps, ex["surprise"][steps], marker="x", color="tab:red", label="written", zorder=3)
            ax.set_title("surprise of each step's token (0..2; x: written to a slot)", fontsize=10)
            ax.set_ylabel("surprise")
            ax.legend(loc="upper right", fontsize=8)
        if key in ("slot_age", "attention") and len(steps):
            ax.scatter(steps, written[steps], marker="x", color="tab:red", s=25, zorder=3)
    return fig


def tape_figure(record: EpisodeRecord) -> Figure:
    """Each head's attention over the tape's slots per step (``tape_attention`` [T, heads, slots])."""
    attention = record.extras["tape_attention"]
    fig, axes = _figure(attention.shape[1], "tape: which stored steps each step reads (slot = step index mod slots)")
    for h, ax in enumerate(axes):
        _heatmap(fig, ax, attention[:, h], f"head {h}", "slot", "weight", vmin=0, vmax=1)
    return fig


def state_figure(record: EpisodeRecord) -> Figure:
    """The recurrent state entries (``h``, ``c``, ``s``) after each step, as [T, units] maps."""
    keys = [k for k in STATE_KEYS if k in record.states]
    who = "NTM controller" if record.core == "ntm" else record.core
    fig, axes = _figure(len(keys), f"{who} state after each step")
    for ax, key in zip(axes, keys):
        values = record.states[key].reshape(record.length, -1)
        _heatmap(fig, ax, values, f"{who} state {key} ({values.shape[1]} units)", "unit", "activation",
                 symmetric=True)
    return fig


def scalars_figure(record: EpisodeRecord) -> Figure:
    """Every per-step scalar extra [T] in its own panel."""
    keys = [k for k, v in record.extras.items() if v.ndim == 1 and k != "written_slot"]
    fig, axes = _figure(len(keys), f"{record.core} diagnostics per step")
    for ax, key in zip(axes, keys):
        ax.plot(np.arange(record.length), record.extras[key], marker=".", markersize=3)
        ax.set_title(key.replace("_", " "), fontsize=10)
        ax.set_ylabel(key)
    return fig


def episode_figures(record: EpisodeRecord) -> dict[str, Figure]:
    """The figures that apply to ``record``, by name (see the module docstring)."""
    if record.length == 0:
        return {}
    figs = {"episode/inputs": inputs_figure(record)}
    if "read_weights" in record.extras and "write_weights" in record.extras:
        figs["core/ntm_weights"] = ntm_figure(record)
    if {"slot_age", "attention", "surprise"} & set(record.extras):
        figs["core/tmm_slots"] = tmm_figure(record)
    if "tape_attention" in record.extras:
        figs["core/tape_attention"] = tape_figure(record)
    if any(k in record.states for k in STATE_KEYS):
        figs["core/state"] = state_figure(record)
    if any(v.ndim == 1 and k != "written_slot" for k, v in record.extras.items()):
        figs["core/scalars"] = scalars_figure(record)
    return figs


def figure_file_name(name: str, prefix: str = "", suffix: str = "") -> str:
    """``"core/ntm_weights"`` -> ``prefix + "core_ntm_weights" + suffix + ".png"``."""
    return f"{prefix}{name.replace('/', '_')}{suffix}.png"


def save_figures(figs: dict[str, Figure], directory: str | Path, prefix: str = "", *, suffix: str = "",
                 close: bool = False) -> list[Path]:
    """Write each figure as ``directory / (prefix + name with '/' as '_' + suffix) .png``, drawn
    once at its own dpi; returns the paths. ``close``: clear each figure after writing it (its
    memory is freed at once)."""
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        path = directory / figure_file_name(name, prefix, suffix)
        # the canvas's own drawing: savefig would lay out and rasterize the figure a second time
        Image.fromarray(figure_to_rgb(fig)).save(path, compress_level=1)
        paths.append(path)
        if close:
            fig.clear()
    return paths


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """The figure drawn as an image [H, W, 3] uint8 (for TensorBoard's ``add_image(dataformats="HWC")``
    or ``wandb.Image``)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
