"""Sequence replay with stored core states, for recurrent off-policy agents (R2D2, Kapturowski et
al. 2019).

Every env copy writes a stream of rows, one per step: the observation acted on, the previous action
and reward, ``starts``, the core state before the step, the action, the reward and the
``terminated`` / ``truncated`` flags. When an episode is cut by a time limit, one more row follows
holding the episode's final observation (``final`` set, no action, no loss): a network run over
the sequence then sees that observation with the state the episode left, so a truncated step
bootstraps from it inside the sequence, as any other step bootstraps from the next row.

Each stream is cut into sequences of ``seq_len`` rows, the next starting ``seq_len - overlap``
rows later; a sequence may cross episode boundaries, since every core resets at ``starts``. A
sequence keeps the core state before its first row, or, for cores whose stored state makes every
step independent (``per_row_state``), the state before every row (unless the core's state
follows from its inputs: the agent then rebuilds the rows from the first, see
:meth:`agents.off_policy.OffPolicyAgent.row_states`). Storage is preallocated
(``[slots, seq_len, ...]``) and overwritten oldest first; sampling is uniform or prioritized by a
:class:`~agents.sum_tree.SumTree` over sequences.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces

from rlmem.cores import State
from rlmem.policy.tree import tree_map

from .memory_budget import check_fits, tree_bytes
from .space_storage import space_zeros
from .sum_tree import SumTree

ROW_FLAGS = ("starts", "terminated", "truncated", "final")


class SequenceReplayBuffer:
    """Args:
        observation_space, action_space: single-env spaces of what is stored (the encoded observation).
        state_template: one core state ``[B, ...]`` (any batch size): the keys, shapes and dtypes.
        n_envs: B, the env copies writing streams.
        capacity: rows kept at most (``capacity // seq_len`` sequences).
        seq_len, overlap: rows per sequence and rows shared by consecutive sequences of a stream.
        per_row_state: keep the state before every row (cores trained without BPTT), not only the first.
        store_prev: keep the previous action and reward (policies that take them as inputs).
        prioritized, alpha, eta: prioritized sampling, P(i) ~ p_i^alpha, with sequence priority
            ``eta * max |delta| + (1 - eta) * mean |delta|``.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, state_template: State, *,
                 n_envs: int, capacity: int, seq_len: int, overlap: int, per_row_state: bool = False,
                 store_prev: bool = False, prioritized: bool = False, alpha: float = 0.9, eta: float = 0.9,
                 device: torch.device | str = "cpu"):
        if seq_len < 2:
            raise ValueError(f"seq_len must be >= 2, got {seq_len}")
        if not 0 <= overlap < seq_len:
            raise ValueError(f"overlap must lie in [0, seq_len) = [0, {seq_len}), got {overlap}")
        self.slots = capacity // seq_len
        if self.slots < 1:
            raise ValueError(f"buffer_size ({capacity}) must hold at least one sequence of seq_len ({seq_len}) rows")
        self.n_envs, self.seq_len, self.overlap, self.per_row_state = n_envs, seq_len, overlap, per_row_state
        self.store_prev, self.prioritized, self.alpha, self.eta = store_prev, prioritized, alpha, eta
        self.device = torch.device(device)
        row_state = {k: v[0] for k, v in state_template.items()}

        def fields(lead: tuple[int, ...], state_lead: tuple[int, ...]) -> dict[str, Any]:
            f: dict[str, Any] = {
                "obs": space_zeros(observation_space, lead, self.device),
                "action": space_zeros(action_space, lead, self.device),
                "reward": torch.zeros(*lead, device=self.device),
                **{flag: torch.zeros(*lead, dtype=torch.bool, device=self.device) for flag in ROW_FLAGS},
                "state": {k: torch.zeros(*state_lead, *v.shape, dtype=v.dtype, device=self.device)
                          for k, v in row_state.items()},
            }
            if store_prev:
                f["prev_action"] = space_zeros(action_space, lead, self.device)
                f["prev_reward"] = torch.zeros(*lead, device=self.device)
            return f

        S, L, B = self.slots, seq_len, n_envs
        probe = fields((1, L), (1, L) if per_row_state else (1,))                  # one stored sequence
        one, state = tree_bytes(probe), tree_bytes(probe["state"])
        staged = tree_bytes(fields((1, L + 1), (1, L + 1)))                        # one env's staging rows
        check_fits(one * S + staged * B, self.device,
                   f"the replay buffer ({S:,} sequences of {L} rows, {one // L:,} bytes a row, "
                   f"{state // L:,} of them the stored core state)",
                   "lower agent.buffer_size" + (" or the size of the core's state (e.g. core.slots)"
                                                if state * 2 > one else ""))
        self.storage = fields((S, L), (S, L) if per_row_state else (S,))
        # a stream's rows not yet cut into a sequence; a step adds at most 2 rows, so L + 1 suffice
        self.staging = fields((B, L + 1), (B, L + 1))
        self.cursor = torch.zeros(B, dtype=torch.long, device=self.device)
        self.write = 0            # next slot to (over)write
        self.filled = 0           # slots holding a sequence
        self.steps_added = 0      # env steps written (final-observation rows not counted)
        self.tree = SumTree(S, self.device) if prioritized else None
        self.max_priority = 1.0

    def storage_bytes(self) -> int:
        """Bytes of the preallocated sequence storage."""
        return tree_bytes(self.storage)

    # ------------------------------------------------------------------ writing
    def add(self, rows: dict[str, Any], envs: torch.Tensor | None = None) -> None:
        """Append one row to the streams of ``envs`` ``[k]`` (all copies when None); ``rows`` holds
        every field ``[k, ...]`` (``state``: a core state ``[k, ...]``)."""
        envs = torch.arange(self.n_envs, device=self.device) if envs is None else envs
        if len(envs) == 0:
            return
        at = self.cursor[envs]
        tree_map(lambda buf, v: buf.__setitem__((envs, at), v), self._fields(self.staging), self._fields(rows))
        self.cursor[envs] += 1
        if not bool(rows["final"].any()):
            self.steps_added += len(envs)

    def _fields(self, f: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in f.items() if v is not None}

    def cut(self) -> int:
        """Move every complete sequence of ``seq_len`` rows from the streams into storage; returns
        how many sequences were stored."""
        stored = 0
        L, shift = self.seq_len, self.seq_len - self.overlap
        while True:
            envs = (self.cursor >= L).nonzero().squeeze(1)
            n = len(envs)
            if n == 0:
                return stored
            slots = (self.write + torch.arange(n, device=self.device)) % self.slots
            for key, buf in self.storage.items():
                src = self.staging[key]
                if key == "state":
                    for k, v in buf.items():
                        v[slots] = src[k][envs, :L] if self.per_row_state else src[k][envs, 0]
                else:
                    tree_map(lambda b, s: b.__setitem__(slots, s[envs, :L]), buf, src)
            if self.tree is not None:
                self.tree.update(slots, torch.full((n,), self.max_priority ** self.alpha, dtype=torch.float64))
            self.write = (self.write + n) % self.slots
            self.filled = min(self.filled + n, self.slots)
            # keep the last `overlap` rows (and any beyond L) as the start of each stream's next sequence
            keep = (torch.arange(L + 1, device=self.device) + shift).clamp_(max=L)
            tree_map(lambda s: s.__setitem__(envs, s[envs][:, keep]), self.staging)
            self.cursor[envs] -= shift
            stored += n

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, generator: torch.Generator | None = None, beta: float = 0.6
               ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
        """``n`` sequences, time-major: (fields ``[L, n, ...]`` with ``state`` ``[n, ...]`` (or
        ``[L, n, ...]`` per row), slots ``[n]``, importance weights ``[n]`` (ones when uniform))."""
        if self.filled == 0:
            raise ValueError("the replay buffer holds no complete sequence yet")
        if self.tree is None:
            slots = torch.randint(self.filled, (n,), generator=generator).to(self.device)
            weights = torch.ones(n, device=self.device)
        else:
            slots = self.tree.sample(n, generator)
            prob = self.tree.priorities(slots) / self.tree.total
            w = (self.filled * prob).pow(-beta)
            weights = (w / w.max()).float()
        out: dict[str, Any] = {}
        for key, buf in self.storage.items():
            if key == "state" and not self.per_row_state:
                out[key] = {k: v[slots] for k, v in buf.items()}
            else:
                out[key] = tree_map(lambda b: b[slots].transpose(0, 1), buf)
        return out, slots, weights

    def update_priorities(self, slots: torch.Tensor, td_abs: torch.Tensor, mask: torch.Tensor) -> None:
        """Set the priorities of sampled sequences from their absolute TD errors ``[L', n]`` over the
        rows of ``mask`` ``[L', n]``: ``eta * max + (1 - eta) * mean`` (R2D2's mixture)."""
        if self.tree is None:
            return
        m = mask.float()
        td = td_abs.detach().float() * m
        mean = td.sum(0) / m.sum(0).clamp(min=1.0)
        p = (self.eta * td.amax(0) + (1 - self.eta) * mean).double() + 1e-6
        self.max_priority = max(self.max_priority, float(p.max()))
        self.tree.update(slots, p.pow(self.alpha))

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {"storage": self.storage, "staging": self.staging, "cursor": self.cursor, "write": self.write,
                "filled": self.filled, "steps_added": self.steps_added, "max_priority": self.max_priority,
                "tree": None if self.tree is None else self.tree.tree}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        def copy(dst, src):
            if dst.shape != src.shape:
                raise ValueError(f"replay buffer storage of shape {tuple(src.shape)} does not fit "
                                 f"{tuple(dst.shape)} (another buffer_size, seq_len or env?)")
            dst.copy_(src)

        tree_map(copy, self.storage, state["storage"])
        tree_map(copy, self.staging, state["staging"])
        self.cursor.copy_(state["cursor"])
        self.write, self.filled = int(state["write"]), int(state["filled"])
        self.steps_added, self.max_priority = int(state["steps_added"]), float(state["max_priority"])
        if self.tree is not None and state.get("tree") is not None:
            copy(self.tree.tree, state["tree"])
