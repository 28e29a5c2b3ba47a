"""The supervised copy task of Graves et al. (2014) for any registered core.

    python -m rlmem.copytask core=ntm
    python -m rlmem.copytask core=lstm train_sequences=20000 out_dir=outputs/copytask
    python -m rlmem.copytask core=ntm core.memory_size=64 optimizer=adam lr=1e-3 batch_size=16

A sequence of ``L`` random 8-bit vectors (``L`` uniform in ``min_length .. max_length``) is shown,
then a delimiter on its own channel, then ``L`` blank steps during which the model must emit the
sequence again. Input ``x`` [T, B, bits + 1] with ``T = 2 * L_max + 1``; the model is the core
followed by a linear readout with sigmoid outputs, trained with binary cross-entropy on the output
steps only.

Training defaults follow the paper: centered RMSprop (decay 0.95, momentum 0.9, epsilon 1e-4),
learning rate 1e-4, element-wise gradient clipping at 10, here with batches of 4 sequences.
The NTM's training is not monotone: long after it has solved the task a rare batch can undo it
(a run that stays at zero errors for 10k sequences may still collapse later), so by default the
final evaluation uses the weights of the best validation report (``keep_best=false``: the last).

Every ``log_every`` sequences it prints the loss and the bit errors on a fixed validation set; at
the end it evaluates the lengths in ``eval_lengths`` and writes to ``<out_dir>/<name>/``:
``result.json``, ``error_vs_length.png``, ``learning_curve.png`` and, for cores that report read
and write weightings (``ntm``), ``weightings.png``. ``<out_dir>/error_vs_length.png`` compares all
runs in ``out_dir``. The last line printed is ``final: {json}``.

Options are ``key=value``; ``core.<option>=value`` sets a core option (defaults: the core's own,
overridden by :data:`CORE_PRESETS` for this task). Unknown keys are refused with the valid ones.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .cores import Core, core_options, make_core

# Core options used for this task unless given on the command line: the NTM of the paper
# (LSTM controller of 100 units, 128 x 20 memory, one read and one write head) and an LSTM of
# about the same number of parameters.
CORE_PRESETS: dict[str, dict[str, Any]] = {
    "ntm": {"hidden_size": 100, "memory_size": 128, "memory_width": 20, "controller": "lstm"},
    "lstm": {"hidden_size": 128},
    "gru": {"hidden_size": 128},
}


@dataclass
class CopyTaskConfig:
    """Settings of one copy-task run (every field is a ``key=value`` option)."""

    core: str = "ntm"
    seed: int = 0
    bits: int = 8
    min_length: int = 1
    max_length: int = 20
    batch_size: int = 4              # small batches: more updates per sequence seen
    train_sequences: int = 10_000
    optimizer: str = "rmsprop"       # rmsprop (centered, decay 0.95, as in the paper) | adam
    lr: float = 1e-4
    momentum: float = 0.9            # rmsprop only
    eps: float = 1e-4                # optimizer epsilon (1e-4 as in Graves' RMSprop)
    grad_clip: float = 10.0          # 0 disables
    grad_clip_mode: str = "value"    # value (element-wise, as in the paper) | norm
    log_every: int = 1000            # sequences between validation reports
    val_sequences: int = 256
    eval_lengths: list[int] = field(default_factory=lambda: [10, 20, 30, 40, 60, 80, 100, 120])
    eval_sequences: int = 64         # per evaluated length
    timing_batches: int = 5          # batches of length max_length timed before training (0: skip)
    timing_batch_size: int = 16      # batch size of the timed batches
    threads: int = 1
    out_dir: str = "outputs/copytask"
    name: str = ""                   # run folder name; default <core>_seed<seed>
    plots: bool = True
    save_model: bool = True          # <run dir>/model.pt
    keep_best: bool = True           # evaluate the weights of the best validation report, not the last
    verbose: bool = True


# ----------------------------------------------------------------------------- options

def parse_value(text: str) -> Any:
    """The Python value a ``key=value`` argument's text stands for: ``true``/``false``, ``null``,
    a number or list literal, else the text itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Cast ``value`` to the type of ``default`` (int, float, bool, str, list of ints)."""
    if default is None or value is None:
        return value
    kind = type(default)
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if kind is float:
            return float(value)
        if kind is list:
            items = value if isinstance(value, (list, tuple)) else [value]
            return [int(v) for v in items]
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}={value!r}: expected a value of type {kind.__name__}") from None


def parse_options(args: list[str]) -> tuple[CopyTaskConfig, dict[str, Any]]:
    """``key=value`` arguments -> (config, core options). Unknown keys are refused with the valid ones."""
    top = {f.name: f for f in dataclasses.fields(CopyTaskConfig)}
    defaults = CopyTaskConfig()
    values: dict[str, Any] = {}
    core_args: dict[str, Any] = {}
    for arg in args:
        key, sep, text = arg.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"expected key=value, got {arg!r} (e.g. core=ntm train_sequences=10000)")
        if key.startswith("core."):
            core_args[key[len("core."):]] = parse_value(text)
        elif key in top:
            values[key] = _coerce(key, parse_value(text), getattr(defaults, key))
        else:
            raise ValueError(f"unknown key {key!r}; valid keys: {', '.join(sorted(top))}, core.<option>")
    cfg = CopyTaskConfig(**values)
    valid = core_options(cfg.core)  # refuses an unknown core with the valid ones
    options = {k: v for k, v in CORE_PRESETS.get(cfg.core, {}).items() if k in valid}
    for k, v in core_args.items():
        if k not in valid:
            raise ValueError(f"core {cfg.core!r} has no option {k!r}; valid options: {', '.join(sorted(valid))}")
        options[k] = _coerce(f"core.{k}", v, valid[k])
    _check_config(cfg)
    return cfg, options


def _check_config(cfg: CopyTaskConfig) -> None:
    if not 1 <= cfg.min_length <= cfg.max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {cfg.min_length}, {cfg.max_length}")
    for name in ("bits", "batch_size", "log_every", "val_sequences", "eval_sequences", "threads", "timing_batch_size"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.train_sequences < 0 or cfg.timing_batches < 0 or cfg.lr <= 0:
        raise ValueError("train_sequences and timing_batches must be >= 0 and lr > 0")
    if cfg.optimizer not in ("adam", "rmsprop"):
        raise ValueError(f"optimizer must be adam or rmsprop, got {cfg.optimizer!r}")
    if cfg.grad_clip_mode not in ("value", "norm"):
        raise ValueError(f"grad_clip_mode must be value or norm, got {cfg.grad_clip_mode!r}")


# ----------------------------------------------------------------------------- data

def make_batch(lengths: torch.Tensor, bits: int, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Copy sequences for the given per-row lengths ``[B]``.

    Returns ``x`` [T, B, bits + 1], ``target`` [T, B, bits] and ``mask`` [T, B] (True on the
    output steps), with ``T = 2 * max(lengths) + 1``. Row b shows its vectors at t < L_b, the
    delimiter (last channel) at t = L_b, and expects vector j at t = L_b + 1 + j.
    """
    lengths = lengths.long()
    B, L = lengths.shape[0], int(lengths.max())
    T = 2 * L + 1
    pos = torch.arange(L)
    seq = torch.randint(0, 2, (L, B, bits), generator=generator).float()
    seq = seq * (pos.unsqueeze(1) < lengths).unsqueeze(-1)  # [L, B, bits], zero past each row's end
    rows = torch.arange(B)
    x = torch.zeros(T, B, bits + 1)
    x[:L, :, :bits] = seq
    x[lengths, rows, bits] = 1.0
    j = torch.arange(T).unsqueeze(1) - lengths - 1  # [T, B] index of the vector due at t
    mask = (j >= 0) & (j < lengths)
    target = seq[j.clamp(0, L - 1), rows] * mask.unsqueeze(-1)
    return x, target, mask


def random_lengths(batch: int, low: int, high: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.randint(low, high + 1, (batch,), generator=generator)


# ----------------------------------------------------------------------------- model

class CopyModel(nn.Module):
    """A core and a linear readout: ``x`` [T, B, bits + 1] -> logits [T, B, bits] (and extras)."""

    def __init__(self, core: Core, bits: int):
        super().__init__()
        self.core = core
        self.readout = nn.Linear(core.output_size, bits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        T, B = x.shape[:2]
        starts = torch.zeros(T, B, dtype=torch.bool, device=x.device)
        y, _, extras = self.core(x, self.core.initial_state(B, x.device), starts)
        return self.readout(y), extras


def masked_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy (nats) per output bit, averaged over the output steps."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)  # [T, B]
    return (bce * mask).sum() / (mask.sum() * target.shape[-1])


@torch.no_grad()
def bit_errors(model: CopyModel, x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               chunk: int = 256) -> dict[str, float]:
    """Loss, bit errors per sequence and per bit of thresholded outputs over a set of sequences."""
    errors, bits_out, loss_sum = 0.0, 0.0, 0.0
    for a in range(0, x.shape[1], chunk):
        xs, ts, ms = x[:, a:a + chunk], target[:, a:a + chunk], mask[:, a:a + chunk]
        logits, _ = model(xs)
        wrong = ((logits > 0).float() != ts).float().sum(-1) * ms
        errors += float(wrong.sum())
        n_bits = float(ms.sum()) * ts.shape[-1]
        bits_out += n_bits
        loss_sum += float(masked_bce(logits, ts, ms)) * n_bits
    n_seq = x.shape[1]
    return {"loss": loss_sum / bits_out, "bit_errors_per_sequence": errors / n_seq,
            "error_per_bit": errors / bits_out}


def make_optimizer(cfg: CopyTaskConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.95, momentum=cfg.momentum, eps=cfg.eps, centered=True)
    return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.eps)


def train_step(model: CopyModel, optimizer: torch.optim.Optimizer, cfg: CopyTaskConfig,
               x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    logits, _ = model(x)
    loss = masked_bce(logits, target, mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        if cfg.grad_clip_mode == "value":
            nn.utils.clip_grad_value_(model.parameters(), cfg.grad_clip)
        else:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return loss.item()


def time_per_sequence(model: CopyModel, cfg: CopyTaskConfig, length: int) -> float:
    """Seconds per training sequence (forward, backward, update) on batches of sequences of ``length``.

    Runs on a copy of the model, so the run being trained is untouched.
    """
    import copy

    probe = copy.deepcopy(model)
    opt = make_optimizer(cfg, probe.parameters())
    g = torch.Generator().manual_seed(12345)
    batch = make_batch(torch.full((cfg.timing_batch_size,), length), cfg.bits, g)
    train_step(probe, opt, cfg, *batch)  # warm-up
    start = time.perf_counter()
    for _ in range(cfg.timing_batches):
        train_step(probe, opt, cfg, *batch)
    return (time.perf_counter() - start) / (cfg.timing_batches * cfg.timing_batch_size)


# ----------------------------------------------------------------------------- plots

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_error_vs_length(runs: list[dict[str, Any]], path: Path, title: str) -> None:
    """Error per bit against sequence length, one line per run (``result.json`` contents)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        lengths = [int(k) for k in run["eval"]]
        ax.plot(lengths, [run["eval"][str(n)]["error_per_bit"] for n in lengths], marker="o", label=run["name"])
    ax.axvspan(run["config"]["min_length"], run["config"]["max_length"], color="0.9", label="training lengths")
    ax.set(xlabel="sequence length", ylabel="bit errors per bit", title=title, ylim=(0, None))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_learning_curves(runs: list[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        seen = [p["sequences"] for p in run["curve"]]
        ax.plot(seen, [max(p["error_per_bit"], 1e-5) for p in run["curve"]], label=run["name"])
    ax.set(xlabel="training sequences", ylabel="validation bit errors per bit", yscale="log",
           title="copy task, validation lengths 1-20")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@torch.no_grad()
def plot_weightings(model: CopyModel, bits: int, length: int, path: Path, seed: int = 7) -> bool:
    """The classic figure: inputs, outputs, write and read weightings over time for one sequence.

    Returns False (and draws nothing) for cores that do not report ``read_weights``.
    """
    g = torch.Generator().manual_seed(seed)
    x, target, mask = make_batch(torch.tensor([length]), bits, g)
    logits, extras = model(x)
    if "read_weights" not in extras or "write_weights" not in extras:
        return False
    plt = _pyplot()
    write_w = extras["write_weights"][:, 0, 0].T  # [N, T], first head
    read_w = extras["read_weights"][:, 0, 0].T
    used = (write_w.amax(dim=1) > 0.05) | (read_w.amax(dim=1) > 0.05)
    rows = torch.nonzero(used).flatten()
    lo, hi = (int(rows.min()), int(rows.max()) + 1) if len(rows) else (0, write_w.shape[0])
    if hi - lo > 2 * length + 8:  # show the band the heads use, not the whole memory
        hi = lo + 2 * length + 8
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2.5]})
    axes[0, 0].imshow(x[:, 0].T.numpy(), cmap="gray_r", aspect="auto", interpolation="nearest")
    axes[0, 0].set_title("inputs")
    axes[0, 1].imshow((torch.sigmoid(logits[:, 0]).T * mask[:, 0]).numpy(), cmap="gray_r", aspect="auto",
                      interpolation="nearest", vmin=0, vmax=1)
    axes[0, 1].set_title("outputs")
    for ax, w, name in ((axes[1, 0], write_w, "write weightings"), (axes[1, 1], read_w, "read weightings")):
        ax.imshow(w[lo:hi].numpy(), cmap="gray_r", aspect="auto", interpolation="nearest", vmin=0, vmax=1,
                  extent=(-0.5, w.shape[1] - 0.5, hi - 0.5, lo - 0.5))
        ax.set(title=name, xlabel="time", ylabel="memory row")
    fig.suptitle(f"NTM copy, length {length}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def collect_runs(out_dir: Path) -> list[dict[str, Any]]:
    runs = []
    for p in sorted(out_dir.glob("*/result.json")):
        try:
            runs.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return runs


# ----------------------------------------------------------------------------- run

def run(cfg: CopyTaskConfig, options: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one model; writes the run folder and returns the result."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    say = print if cfg.verbose else (lambda *a, **k: None)
    name = cfg.name or f"{cfg.core}_seed{cfg.seed}"
    run_dir = Path(cfg.out_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)

    model = CopyModel(make_core(cfg.core, cfg.bits + 1, **options), cfg.bits)
    optimizer = make_optimizer(cfg, model.parameters())
    n_params = sum(p.numel() for p in model.parameters())
    say(f"copy task: core={cfg.core} {options} parameters={n_params} optimizer={cfg.optimizer} lr={cfg.lr} "
        f"batch={cfg.batch_size} lengths {cfg.min_length}-{cfg.max_length}")

    seconds_per_seq = None
    if cfg.timing_batches:
        seconds_per_seq = time_per_sequence(model, cfg, cfg.max_length)
        say(f"time per training sequence of length {cfg.max_length} (batch {cfg.timing_batch_size}): "
            f"{seconds_per_seq * 1e3:.2f} ms")

    val_gen = torch.Generator().manual_seed(10_000 + cfg.seed)
    val = make_batch(random_lengths(cfg.val_sequences, cfg.min_length, cfg.max_length, val_gen), cfg.bits, val_gen)
    train_gen = torch.Generator().manual_seed(cfg.seed)

    curve: list[dict[str, float]] = []
    best: dict[str, Any] = {"key": (math.inf, math.inf), "state": None, "point": None}

    def report(seen: int, train_loss: float) -> None:
        model.eval()
        point = {"sequences": seen, "train_loss": train_loss, **bit_errors(model, *val),
                 "wall_s": time.perf_counter() - start}
        model.train()
        curve.append(point)
        key = (point["error_per_bit"], point["loss"])
        if cfg.keep_best and key <= best["key"]:
            best.update(key=key, point=point, state={k: v.detach().clone() for k, v in model.state_dict().items()})
        say(f"seqs {seen:7d}  train loss {train_loss:.4f}  val loss {point['loss']:.4f}  "
            f"bit errors/seq {point['bit_errors_per_sequence']:.3f}  error/bit {point['error_per_bit']:.4f}  "
            f"{point['wall_s']:.0f}s", flush=True)

    start = time.perf_counter()
    seen, losses, next_report = 0, [], 0
    report(0, math.nan)
    next_report = cfg.log_every
    while seen < cfg.train_sequences:
        batch = make_batch(random_lengths(cfg.batch_size, cfg.min_length, cfg.max_length, train_gen), cfg.bits,
                           train_gen)
        losses.append(train_step(model, optimizer, cfg, *batch))
        seen += cfg.batch_size
        if seen >= next_report or seen >= cfg.train_sequences:
            report(seen, sum(losses) / len(losses))
            losses = []
            next_report = (seen // cfg.log_every + 1) * cfg.log_every
    train_wall = time.perf_counter() - start
    selected = curve[-1]
    if cfg.keep_best and best["state"] is not None:
        model.load_state_dict(best["state"])
        selected = best["point"]
        say(f"evaluating the weights after {selected['sequences']} sequences (best validation error per bit "
            f"{selected['error_per_bit']:.4f}; last {curve[-1]['error_per_bit']:.4f})")

    model.eval()
    evaluation = {}
    for length in cfg.eval_lengths:
        g = torch.Generator().manual_seed(20_000 + length)
        evaluation[str(length)] = bit_errors(model, *make_batch(torch.full((cfg.eval_sequences,), length),
                                                                cfg.bits, g), chunk=cfg.eval_sequences)
    say("length  bit errors/seq  error/bit")
    for length, e in evaluation.items():
        say(f"{int(length):6d}  {e['bit_errors_per_sequence']:14.3f}  {e['error_per_bit']:9.4f}")

    result = {"name": name, "core": cfg.core, "core_options": options, "parameters": n_params,
              "config": dataclasses.asdict(cfg), "sequences": seen, "train_wall_s": train_wall,
              "seconds_per_sequence": seconds_per_seq, "final_val": curve[-1], "selected_val": selected,
              "eval": evaluation,
              "curve": curve, "run_dir": str(run_dir)}
    (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    if cfg.save_model:
        torch.save(model.state_dict(), run_dir / "model.pt")
    if cfg.plots:
        plot_error_vs_length([result], run_dir / "error_vs_length.png", f"copy task: {name}")
        plot_learning_curves([result], run_dir / "learning_curve.png")
        if plot_weightings(model, cfg.bits, min(cfg.max_length, 20), run_dir / "weightings.png"):
            result["weightings_plot"] = str(run_dir / "weightings.png")
        runs = collect_runs(Path(cfg.out_dir))
        if len(runs) > 1:
            plot_error_vs_length(runs, Path(cfg.out_dir) / "error_vs_length.png", "copy task")
            plot_learning_curves(runs, Path(cfg.out_dir) / "learning_curves.png")
    summary = {"core": cfg.core, "sequences": seen, "val_error_per_bit": curve[-1]["error_per_bit"],
               "val_bit_errors_per_sequence": curve[-1]["bit_errors_per_sequence"],
               "evaluated_after": selected["sequences"], "evaluated_val_error_per_bit": selected["error_per_bit"],
               "error_per_bit_by_length": {k: v["error_per_bit"] for k, v in evaluation.items()},
               "seconds_per_sequence": seconds_per_seq, "train_wall_s": train_wall, "parameters": n_params,
               "run_dir": str(run_dir)}
    print("final: " + json.dumps(summary), flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        print("options (key=value):")
        for f in dataclasses.fields(CopyTaskConfig):
            print(f"  {f.name}={getattr(CopyTaskConfig(), f.name)!r}")
        return
    try:
        cfg, options = parse_options(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    run(cfg, options)


if __name__ == "__main__":
    main()
