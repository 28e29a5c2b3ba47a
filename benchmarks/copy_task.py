"""Copy task (Graves et al., 2014): NTM against LSTM, trained the same way, one after the other.

Usage::

    python benchmarks/copy_task.py [--cores ntm lstm] [--train-sequences 20000] [--seeds 0]
                                   [--out benchmarks/results/ntm/copytask] [-- key=value ...]

Each run is ``python -m rlmem.copytask core=<core> seed=<seed> ...`` with the task's defaults
(RMSprop lr 1e-4, momentum 0.9, batch 4, lengths 1-20, element-wise gradient clipping at 10) unless
overridden after ``--``. Prints validation error per bit against sequences seen and against
length, and the time per training sequence; the plots land in ``--out`` (per run and combined).
"""

from __future__ import annotations

import argparse

from rlmem.copytask import parse_options, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", nargs="+", default=["ntm", "lstm"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--train-sequences", type=int, default=20_000)
    parser.add_argument("--out", default="benchmarks/results/ntm/copytask")
    parser.add_argument("overrides", nargs="*", help="copytask key=value options")
    args = parser.parse_args()

    results = []
    for core in args.cores:
        for seed in args.seeds:
            cfg, options = parse_options([f"core={core}", f"seed={seed}", f"train_sequences={args.train_sequences}",
                                          f"out_dir={args.out}", "save_model=false", *args.overrides])
            results.append(run(cfg, options))

    print("\nvalidation error per bit (lengths 1-20) against training sequences")
    checkpoints = sorted({p["sequences"] for r in results for p in r["curve"]})
    print("sequences " + " ".join(f"{r['name']:>14}" for r in results))
    for seen in checkpoints:
        row = [next((p["error_per_bit"] for p in r["curve"] if p["sequences"] == seen), float("nan")) for r in results]
        print(f"{seen:9d} " + " ".join(f"{v:14.4f}" for v in row))
    print("\nerror per bit against length")
    print("   length " + " ".join(f"{r['name']:>14}" for r in results))
    for length in results[0]["eval"]:
        print(f"{int(length):9d} " + " ".join(f"{r['eval'][length]['error_per_bit']:14.4f}" for r in results))
    print("\nms per training sequence of length 20 (batch 16): "
          + ", ".join(f"{r['name']} {r['seconds_per_sequence'] * 1e3:.2f}" for r in results if r["seconds_per_sequence"]))


if __name__ == "__main__":
    main()
