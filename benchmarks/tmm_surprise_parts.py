"""The parts of surprise-recall without reinforcement learning: does tmm store the rare tokens, and
can it answer the queries when told the answers?

1. ``store``: only the next-token prediction is trained (aux loss, chunks of length 1 from the
   stored states); every few batches, the share of episodes whose three rare tokens are all in
   memory at the first query, and the mean surprise of rare and of pattern tokens.
2. ``answer``: the prediction and a linear answer head are trained together, the head with
   cross-entropy on the three answers; accuracy per query.

    python benchmarks/tmm_surprise_parts.py                 # both, stream 200, hidden 64
    python benchmarks/tmm_surprise_parts.py --part store --length 50
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F


def episodes(env, encoder, n_envs: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One episode of every copy: raw observations [T, B, 2] and encoded tokens [T, B, F]."""
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    seq = [obs.copy()]
    for _ in range(env.length + env.n_surprises - 1):
        obs, *_ = env.step(np.zeros(n_envs, dtype=np.int64))
        seq.append(obs.copy())
    raw = torch.as_tensor(np.stack(seq))
    return raw, encoder(raw.flatten(0, 1)).view(*raw.shape[:2], -1).float()


def states_along(core, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The state before every step [T, B, ...] and the surprise of every token [T, B] (no gradient)."""
    from rlmem.cores import stack_states

    states, surprise, state = [], [], core.initial_state(x.shape[1])
    with torch.no_grad():
        for t in range(x.shape[0]):
            states.append(state)
            _, state, extras = core.step(x[t], state)
            surprise.append(extras["surprise"])
    return stack_states(states), torch.stack(surprise)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["store", "answer", "both"], default="both")
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--n-envs", type=int, default=64)
    p.add_argument("--batches", type=int, default=None, help="training batches (default: store 30, answer 200)")
    p.add_argument("--tie", type=float, default=1.0, help="tmm's tie tolerance")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    from rlmem.cores import make_core
    from rlmem.envs import make_batched
    from rlmem.policy import make_encoder

    env = make_batched("surprise-recall", args.n_envs, seed=args.seed, length=args.length)
    encoder = make_encoder(env.single_observation_space)
    L, S, P = env.length, env.n_surprises, env.period
    for part in (["store", "answer"] if args.part == "both" else [args.part]):
        torch.manual_seed(args.seed)
        rng = np.random.default_rng(args.seed)
        core = make_core("tmm", encoder.out_size, hidden_size=args.hidden, slots=8, tie=args.tie)
        head = torch.nn.Linear(args.hidden, env.n_rare)
        opt = torch.optim.Adam(list(core.parameters()) + list(head.parameters()), lr=2e-3)
        print(f"\n{part}: stream {L}, tmm hidden {args.hidden}, 8 slots, tie {args.tie}, "
              f"batches of {args.n_envs} episodes")
        batches = args.batches if args.batches is not None else {"store": 30, "answer": 200}[part]
        for batch in range(batches + 1):
            raw, x = episodes(env, encoder, args.n_envs, rng)
            states, surprise = states_along(core, x)
            tokens = raw[:L, :, 0]                                    # [L, B]
            rare = tokens >= P
            if part == "store" and batch % 5 == 0:
                at_query = {k: v[L] for k, v in states.items()}
                stored = at_query["slot_x"][..., : P + env.n_rare + 1].argmax(-1)   # token id per slot
                kept = [set(stored[b][at_query["valid"][b]].tolist()) >= set(tokens[rare[:, b], b].tolist())
                        for b in range(args.n_envs)]
                stream = surprise[1:L]                                # the first token's is the maximum
                print(f"batch {batch:4d}: all rare tokens in memory {np.mean(kept):.2f}; mean surprise "
                      f"rare {stream[rare[1:]].mean():.3f}, pattern {stream[~rare[1:]].mean():.3f}")
            # chunks of length 1: query steps (answer part) and random stream steps
            t_stream = torch.randint(1, L, (256,))
            b_stream = torch.randint(0, args.n_envs, (256,))
            t_query = torch.arange(L, L + S).repeat_interleave(args.n_envs)
            b_query = torch.arange(args.n_envs).repeat(S)
            t_rows = torch.cat([t_query, t_stream]) if part == "answer" else t_stream
            b_rows = torch.cat([b_query, b_stream]) if part == "answer" else b_stream
            y, _, extras = core.step(x[t_rows, b_rows], {k: v[t_rows, b_rows] for k, v in states.items()})
            loss = extras["aux_loss"]
            if part == "answer":
                target = torch.stack([tokens[rare[:, b], b][:S] - P for b in range(args.n_envs)]).T.reshape(-1)
                logits = head(y[: S * args.n_envs])
                loss = loss + F.cross_entropy(logits, target)
                if batch % 20 == 0:
                    accuracy = (logits.argmax(-1) == target).float().view(S, -1).mean(1)
                    print(f"batch {batch:4d}: accuracy per query {[round(a, 2) for a in accuracy.tolist()]}")
            opt.zero_grad()
            loss.backward()
            opt.step()


if __name__ == "__main__":
    main()
