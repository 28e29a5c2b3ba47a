"""PPO training throughput of the token memory machine against a GRU of equal parameter count.

tmm trains on chunks of length 1 from the state stored at every step (no loop over time in the
update); the GRU backpropagates through chunks of ``--gru-seq-len`` steps. Both train on the same
task with the same n_envs, n_steps, batch size, epochs and learning rate, and their minibatches
have the same make-up: runs of ``--gru-seq-len`` consecutive steps of one environment (tmm's
``minibatch_seq_len``; ``--tmm-minibatch-seq-len 1`` shuffles its steps one by one). The GRU's
hidden size is chosen so that its core has as many parameters as tmm's. One run measures both and
prints env-steps/s and the ratio.

    python benchmarks/tmm_throughput.py                            # surprise-recall, tmm 8 slots, hidden 128
    python benchmarks/tmm_throughput.py --env t-maze --env-arg corridor=1000
    python benchmarks/tmm_throughput.py --tmm-option prediction_readout=shared
"""

from __future__ import annotations

import argparse
import time

import torch

from rlmem.allocator import keep_freed_memory


def core_parameters(core: str, options: dict, embed: int) -> int:
    from rlmem.cores import make_core

    return sum(p.numel() for p in make_core(core, embed, **options).parameters())


def matching_gru_hidden(target: int, embed: int) -> int:
    """The GRU hidden size whose core parameter count is closest to ``target`` (the count grows with
    the hidden size, so a bisection finds the first size at or above it)."""
    count = lambda h: core_parameters("gru", {"hidden_size": h}, embed)  # noqa: E731
    lo, hi = 1, 4096
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < target else (lo, mid)
    return min((lo - 1, lo), key=lambda h: abs(count(h) - target)) if lo > 1 else lo


def measure(args, core: str, options: dict, seq_len: int, minibatch_seq_len: int | None = None
            ) -> tuple[float, float, float]:
    """(env-steps/s, seconds of rollout per iteration, seconds of update per iteration) of PPO with
    this core, over ``args.steps`` env steps after one untimed iteration."""
    from rlmem.agents import PPO
    from rlmem.envs import make_batched
    from rlmem.policy import RecurrentActorCritic

    env = make_batched(args.env, args.n_envs, seed=0, **args.env_kwargs)
    torch.manual_seed(0)
    policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, core, options,
                                  embed_size=args.embed)
    agent = PPO(env, policy, n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
                seq_len=seq_len, learning_rate=args.learning_rate, minibatch_seq_len=minibatch_seq_len)
    agent.learn(args.n_envs * args.n_steps)  # warm-up iteration, not timed
    iterations = max(1, args.steps // (args.n_envs * args.n_steps))
    rollout = update = 0.0
    for _ in range(iterations):  # what agent.learn does per iteration, timed in two parts
        start = time.perf_counter()
        agent.collect_rollout()
        middle = time.perf_counter()
        agent.update()
        rollout, update = rollout + middle - start, update + time.perf_counter() - middle
    steps = iterations * args.n_envs * args.n_steps
    return steps / (rollout + update), rollout / iterations, update / iterations


def parse_key_values(pairs: list[str]) -> dict:
    """``["corridor=1000", "timing=learned", "tie=0.5"]`` -> ``{"corridor": 1000, "timing": "learned",
    "tie": 0.5}`` (values read as ``python -m rlmem.copytask`` reads its arguments)."""
    from rlmem.copytask import parse_value

    return {key: parse_value(value) for key, _, value in (pair.partition("=") for pair in pairs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="surprise-recall")
    p.add_argument("--env-arg", action="append", default=[], help="task parameter, e.g. corridor=1000")
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--tmm-option", action="append", default=[], help="other tmm option, e.g. prediction_readout=shared")
    p.add_argument("--hidden", type=int, default=128, help="tmm hidden size")
    p.add_argument("--embed", type=int, default=128, help="embedding width fed to the gru")
    p.add_argument("--gru-seq-len", type=int, default=64)
    p.add_argument("--tmm-minibatch-seq-len", type=int, default=None,
                   help="consecutive steps of one env per minibatch run for tmm (default: --gru-seq-len)")
    p.add_argument("--n-envs", type=int, default=64)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--n-epochs", type=int, default=4)
    p.add_argument("--learning-rate", type=float, default=3e-4)
    p.add_argument("--steps", type=int, default=4 * 64 * 128, help="timed env steps per trainer")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's malloc thresholds as they are (default: keep freed memory, as rlmem.train does)")
    args = p.parse_args()
    args.env_kwargs = parse_key_values(args.env_arg)
    torch.set_num_threads(args.threads)
    kept = not args.system_malloc and keep_freed_memory()  # for every trainer measured

    from rlmem.envs import make_batched
    from rlmem.policy import make_encoder

    # tmm stores its inputs and gets the encoded observation unembedded (Core.stores_inputs).
    obs_size = make_encoder(make_batched(args.env, 1, **args.env_kwargs).single_observation_space).out_size
    tmm_options = {"hidden_size": args.hidden, "slots": args.slots, **parse_key_values(args.tmm_option)}
    tmm_params = core_parameters("tmm", tmm_options, obs_size)
    gru_hidden = matching_gru_hidden(tmm_params, args.embed)
    gru_options = {"hidden_size": gru_hidden}
    gru_params = core_parameters("gru", gru_options, args.embed)

    gru, gru_rollout, gru_update = measure(args, "gru", gru_options, args.gru_seq_len)
    tmm_runs = args.tmm_minibatch_seq_len or args.gru_seq_len
    tmm, tmm_rollout, tmm_update = measure(args, "tmm", tmm_options, 1, tmm_runs)

    env_desc = " ".join([args.env] + args.env_arg)
    print(f"\nenv={env_desc} n_envs={args.n_envs} n_steps={args.n_steps} batch_size={args.batch_size} "
          f"n_epochs={args.n_epochs} embed={args.embed} threads={args.threads} keep_freed_memory={kept}")
    print(f"| {'trainer':<44} | {'core params':>11} | {'rollout s/it':>12} | {'update s/it':>11} "
          f"| {'env-steps/s':>11} | {'ratio':>6} |")
    print(f"|{'-' * 46}|{'-' * 12}:|{'-' * 13}:|{'-' * 12}:|{'-' * 12}:|{'-' * 7}:|")
    tmm_desc = ", ".join([f"{args.slots} slots", f"hidden {args.hidden}", f"runs of {tmm_runs}", *args.tmm_option])
    for name, params, rollout, update, speed in [
            (f"PPO + gru (hidden {gru_hidden}, seq_len {args.gru_seq_len})", gru_params, gru_rollout, gru_update, gru),
            (f"PPO + tmm ({tmm_desc})", tmm_params, tmm_rollout, tmm_update, tmm)]:
        print(f"| {name:<44} | {params:>11} | {rollout:>12.3f} | {update:>11.3f} | {speed:>11.0f} "
              f"| {speed / gru:>6.2f} |")


if __name__ == "__main__":
    main()
