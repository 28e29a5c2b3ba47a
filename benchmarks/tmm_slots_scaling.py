"""How a slot memory's training speed scales with its number of slots, on a foreign env (POPGym)
through ``rlmem.train``: PPO defaults, one run per core and slot count, the same env steps each.

    python benchmarks/tmm_slots_scaling.py                       # tmm on RepeatPreviousMedium, slots 8..128
    python benchmarks/tmm_slots_scaling.py --cores tmm,tape --slots 8,64 --steps 65536

env-steps/s is the run's own ``fps`` (training time only); the ratio is against the core's first
slot count.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="popgym-RepeatPreviousMedium-v0")
    parser.add_argument("--cores", default="tmm", help="cores with a `slots` option (tmm, tape)")
    parser.add_argument("--slots", default="8,16,32,64,128")
    parser.add_argument("--steps", type=int, default=32768)
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = parser.parse_args()
    rows = []
    for core in args.cores.split(","):
        for slots in [int(s) for s in args.slots.split(",")]:
            with tempfile.TemporaryDirectory() as run_dir:
                cmd = [sys.executable, "-m", "rlmem.train", f"core={core}", f"core.slots={slots}", "env=gym",
                       f"env.id=popgym:{args.env}", f"total_steps={args.steps}", "eval_episodes=0", "progress=false",
                       "checkpoint=false", "checkpoint_every_minutes=0", f"hydra.run.dir={run_dir}", *args.overrides]
                out = subprocess.run(cmd, text=True, capture_output=True, check=True)
            final = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("final: ")][-1][7:])
            rows.append((core, slots, final["fps"]))
            print(f"{core}, slots {slots}: {final['fps']:.0f} env-steps/s", flush=True)
    print(f"\nPPO defaults, {args.env}, {args.steps} env steps per run; extra: {' '.join(args.overrides) or 'none'}")
    print("| core | slots | env-steps/s | x the core's first |\n|---|---:|---:|---:|")
    first: dict[str, float] = {}
    for core, slots, fps in rows:
        first.setdefault(core, fps)
        print(f"| {core} | {slots} | {fps:,.0f} | {fps / first[core]:.2f} |")


if __name__ == "__main__":
    main()
