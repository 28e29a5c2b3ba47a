"""Learning under one wall-clock budget: sb3-contrib's RecurrentPPO with its own ``MlpLstmPolicy``
against RecurrentPPO with an rlmem core (``rlmem.sb3.CorePolicy``), same hyperparameters, same
env, run side by side (one process each, one torch thread each) so that both see the same machine.

    python benchmarks/sb3_learning.py --env popgym-RepeatPreviousEasy-v0 --minutes 8
    python benchmarks/sb3_learning.py --env rlmem/TMaze-v0 --policies core:gru,mlplstm --steps 500000

Prints, per policy: env steps and seconds until the mean return of the last 100 episodes first
reached 0.9 and 0.95 of ``--optimal``, the best such mean (POPGym's MMER), the last one, the steps
taken and env-steps/s. ``--one POLICY`` runs a single policy (used by the side-by-side runner).
Adam's eps is each policy's own default (CorePolicy's 1e-8, SB3's 1e-5 for ``MlpLstmPolicy``)
unless ``--adam-eps`` sets it for all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def run_one(args: argparse.Namespace, policy_name: str) -> dict:
    import gymnasium as gym
    import numpy as np
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    import rlmem.envs  # noqa: F401  registers rlmem/... ids

    torch.set_num_threads(1)
    if args.env.startswith("popgym-"):
        import popgym  # noqa: F401  registers popgym-... ids
    venv = make_vec_env(lambda: gym.make(args.env), n_envs=args.n_envs, seed=args.seed)
    if policy_name == "mlplstm":
        policy, kwargs = "MlpLstmPolicy", {"lstm_hidden_size": args.hidden}
    else:
        from rlmem.sb3 import CorePolicy

        core = policy_name.split(":", 1)[1]
        policy, kwargs = CorePolicy, {"core": core, "core_options": {"hidden_size": args.hidden}}
    if args.net_arch is not None:
        kwargs["net_arch"] = [int(v) for v in args.net_arch.split(",") if v]
    if args.shared:  # one core for actor and critic, as rlmem's own policies
        kwargs.update(shared_lstm=True, enable_critic_lstm=False)
    if args.adam_eps is not None:
        kwargs["optimizer_kwargs"] = {"eps": args.adam_eps}
    model = RecurrentPPO(policy, venv, n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
                         learning_rate=args.lr, ent_coef=args.ent_coef, gamma=args.gamma, seed=args.seed,
                         device="cpu", policy_kwargs=kwargs)
    start = time.perf_counter()
    out = {"policy": policy_name, "best": -np.inf, "last": None, "reached": {}}
    targets = (0.9 * args.optimal, 0.95 * args.optimal)

    class Track(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buf = self.model.ep_info_buffer
            if len(buf) < 100:  # a full window, as SB3's threshold callbacks see it
                return
            mean = float(np.mean([e["r"] for e in buf]))
            out["best"], out["last"] = max(out["best"], mean), mean
            for t in targets:
                if mean >= t and str(t) not in out["reached"]:
                    out["reached"][str(t)] = (self.num_timesteps, time.perf_counter() - start)

        def _on_rollout_start(self) -> None:
            if time.perf_counter() - start > 60 * args.minutes or (args.stop and len(out["reached"]) == 2):
                raise TimeoutError

    try:
        model.learn(args.steps, callback=Track())
    except TimeoutError:
        pass
    out["steps"], out["seconds"] = int(model.num_timesteps), time.perf_counter() - start
    out["fps"] = out["steps"] / out["seconds"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="popgym-RepeatPreviousEasy-v0")
    parser.add_argument("--policies", default="core:gru,mlplstm")
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget per policy")
    parser.add_argument("--steps", type=int, default=10_000_000, help="env-step budget (whichever comes first)")
    parser.add_argument("--optimal", type=float, default=1.0)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--n-steps", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--ent-coef", type=float, default=0.01)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--net-arch", help="hidden sizes of the heads after the core, e.g. 64,64; '' for linear heads")
    parser.add_argument("--shared", action="store_true", help="one core for actor and critic")
    parser.add_argument("--adam-eps", type=float, help="Adam's eps for every policy (default: each policy's own: "
                        "CorePolicy 1e-8, MlpLstmPolicy SB3's 1e-5)")
    parser.add_argument("--stop", action="store_true", help="stop a policy once it reaches 0.95 of --optimal")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args, args.one)))
        return
    forwarded, argv = [], iter(sys.argv[1:])
    for a in argv:  # all but --policies (given as "--policies X" or "--policies=X")
        if a == "--policies":
            next(argv, None)
        elif not a.startswith("--policies="):
            forwarded.append(a)
    procs = {p: subprocess.Popen([sys.executable, __file__, *forwarded, "--one", p], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
             for p in args.policies.split(",")}
    results = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs.values()]
    print(f"{args.env}: n_envs {args.n_envs}, n_steps {args.n_steps}, batch {args.batch_size}, {args.n_epochs} epochs, "
          f"lr {args.lr}, ent {args.ent_coef}, gamma {args.gamma}, hidden {args.hidden}, seed {args.seed}, "
          f"heads {'default' if args.net_arch is None else args.net_arch or 'linear'}, "
          f"{'one shared core' if args.shared else 'separate critic core'}, "
          f"Adam eps {'per policy' if args.adam_eps is None else args.adam_eps}; "
          f"budget {args.minutes} min or {args.steps} steps; policies side by side, one thread each")
    print("| policy | 0.9 at steps (s) | 0.95 at steps (s) | best mean (MMER) | last mean | steps | env-steps/s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in results:
        cells = []
        for t in (0.9 * args.optimal, 0.95 * args.optimal):
            hit = r["reached"].get(str(t))
            cells.append(f"{hit[0]:,} ({hit[1]:.0f})" if hit else "-")
        last = "-" if r["last"] is None else f"{r['last']:.3f}"
        best = "-" if r["best"] == float("-inf") else f"{r['best']:.3f}"
        print(f"| {r['policy']} | {cells[0]} | {cells[1]} | {best} | {last} | {r['steps']:,} | {r['fps']:.0f} |")


if __name__ == "__main__":
    main()
