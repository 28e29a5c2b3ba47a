"""Where the token memory machine's readout finds the entries it attends over.

A readout attends, per batch row, over that row's ``E`` entries (its slots and the current token).
The entries are consolidations ``r`` kept once per distinct entry in a table ``[U, H]`` (with
their timing vectors and salience logits, ``extra`` ``[U, Dt + G]``) and an index ``[B, E]``.

- :class:`RowEntries` gathers every row's entries into keys ``[B, E, H + Dt (+ order)]`` and
  attends row by row (:func:`~rlmem.cores.tmm_attention.entry_attention`). Acting uses it.
- :class:`GroupedEntries` serves a training minibatch whose rows come in runs of consecutive
  steps of one environment (PPO's ``minibatch_seq_len``): a step writes at most one slot, so a
  run of ``S`` rows holds at most ``N + 2 S`` distinct entries between them, where the rows'
  gathered keys hold ``S (N + 1)``. Each group of ``S`` rows gets one table of its distinct
  entries ``[P, H + Dt]``, and its rows are scored and read against it with one matrix product
  per group, each row masked to its own entries. What depends on the row (an entry's age and
  surprise, the order counts) is kept per row and table position ``[B, P]``; the age's timing
  term, additive for the sinusoidal and learned timings (``u + e(age)``), is scored against a
  table of the minibatch's distinct ages. The keys ``[B, E, D]`` and their gradient are never
  built. The results equal :class:`RowEntries`' up to float rounding (sums in another order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .tmm_attention import entry_attention


def sorted_unique(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(keys, sorted=True, return_inverse=True)`` for a 1-D integer ``keys`` [n]:
    (``unique`` [u], ``inverse`` [n] long), through numpy's sort on CPU (several times faster)."""
    if keys.device.type == "cpu":
        unique, inverse = np.unique(keys.numpy(), return_inverse=True)
        return torch.from_numpy(unique), torch.from_numpy(inverse.reshape(-1).astype(np.int64, copy=False))
    return torch.unique(keys, sorted=True, return_inverse=True)


def order_basis(count: torch.Tensor, levels: torch.Tensor, scale: float | None) -> torch.Tensor:
    """Order counts ``count`` [..., G] on Gaussian bumps at ``levels`` [L] (as wide as their spacing
    times ``scale``, or unit spacing with None) -> [..., G * L]."""
    offset = count.unsqueeze(-1) - levels
    if scale is not None:
        offset = offset * scale
    return torch.exp(-2.0 * offset.pow(2)).flatten(-2)


#: levels on each side of a count that :func:`order_scores` evaluates: a bump 3 spacings away weighs
#: exp(-18) ~ 1.5e-8 of the nearest one, below float32's rounding (6e-8)
ORDER_WINDOW = 3


def nearest_levels(count: torch.Tensor, levels: int, scale: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``2 ORDER_WINDOW`` levels nearest each count of ``count`` [B, P, G] and the bumps there:
    (``level`` [B, G, P * K] long, ``bump`` [B, G, P * K]), ``order_basis`` without its near-zero rest."""
    position = count * scale if scale is not None else count                      # in level spacings
    with torch.no_grad():
        nearest = torch.arange(1 - ORDER_WINDOW, ORDER_WINDOW + 1, device=count.device, dtype=torch.long)
        level = position.detach().floor().long().unsqueeze(-1) + nearest          # [B, P, G, K]
        inside = (level >= 0) & (level < levels)
        level = level.clamp(0, levels - 1)
    bump = torch.exp(-2.0 * (position.unsqueeze(-1) - level.to(position.dtype)).pow(2)) * inside
    B, P, G, K = level.shape
    return level.permute(0, 2, 1, 3).reshape(B, G, P * K), bump.permute(0, 2, 1, 3).reshape(B, G, P * K)


def order_scores(q_order: torch.Tensor, level: torch.Tensor, bump: torch.Tensor) -> torch.Tensor:
    """The order term of the scores, ``q_order . order_basis(count)``, from the few levels near each
    count (``level``, ``bump`` [B, G, P * K] of :func:`nearest_levels`): ``q_order`` [B, h, G * L]
    -> [B, h, P]. Equal to the product with the whole basis up to float rounding, at a cost of
    ``2 ORDER_WINDOW`` levels instead of ``L``."""
    B, heads = q_order.shape[:2]
    G = level.shape[1]
    levels = q_order.shape[-1] // G
    # q_order's value at each (entry, gate, level), for every head: a gather over the levels
    picked = q_order.view(B, heads, G, levels).gather(3, level.unsqueeze(1).expand(B, heads, G, level.shape[-1]))
    return (picked * bump.unsqueeze(1)).view(B, heads, G, -1, 2 * ORDER_WINDOW).sum(dim=(2, 4))


def order_read(weights: torch.Tensor, level: torch.Tensor, bump: torch.Tensor, levels: int) -> torch.Tensor:
    """What attention ``weights`` [B, h, P] read of the entries' order basis: ``weights @
    order_basis(count)`` -> [B, h, G * L], from the levels near each count (``level``, ``bump`` of
    :func:`nearest_levels`; see :func:`order_scores`)."""
    B, heads, P = weights.shape
    G, K = level.shape[1], 2 * ORDER_WINDOW
    spread = weights.unsqueeze(2).unsqueeze(-1) * bump.view(B, 1, G, P, K)       # [B, h, G, P, K]
    out = weights.new_zeros(B, heads, G, levels)
    out = out.scatter_add(3, level.unsqueeze(1).expand(B, heads, G, P * K), spread.reshape(B, heads, G, P * K))
    return out.flatten(-2)


def older_salient_count(age: torch.Tensor, valid: torch.Tensor, salience: torch.Tensor) -> torch.Tensor:
    """For every valid entry of every row, the summed ``salience`` [B, P, G] of the valid entries that
    are strictly older: ``age`` [B, P] (float), ``valid`` [B, P] bool -> [B, P, G].

    A sort by age and a cumulative sum (cost ``P log P`` per row, where comparing every pair
    costs ``P^2``); entries of equal age do not count each other."""
    B, P, G = salience.shape
    key = torch.where(valid, age, torch.full_like(age, -math.inf))
    sorted_age, perm = key.sort(dim=-1, descending=True, stable=True)            # oldest first
    sal = (salience * valid.unsqueeze(-1).to(salience.dtype)).gather(1, perm.unsqueeze(-1).expand(B, P, G))
    before = torch.nn.functional.pad(sal.cumsum(dim=1)[:, :-1], (0, 0, 1, 0))    # sum over earlier positions
    position = torch.arange(P, device=age.device).expand(B, P)
    starts = torch.ones_like(valid)
    starts[:, 1:] = sorted_age[:, 1:] != sorted_age[:, :-1]
    first_of_tie = torch.where(starts, position, torch.zeros_like(position)).cummax(dim=1).values
    count_sorted = before.gather(1, first_of_tie.unsqueeze(-1).expand(B, P, G))
    return count_sorted.gather(1, perm.argsort(dim=1).unsqueeze(-1).expand(B, P, G))


class RowEntries:
    """Every row's entries gathered: ``keys`` [B, E, D] (``[r | tau | order basis]``), ``valid`` [B, E]."""

    def __init__(self, keys: torch.Tensor, valid: torch.Tensor, value_size: int):
        self.keys, self.valid, self.value_size = keys, valid, value_size

    def attend(self, q_content: torch.Tensor, q_timing: torch.Tensor, q_order: torch.Tensor | None,
               null_score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scaled queries ``q_content`` [B, h, H], ``q_timing`` [B, h, Dt], ``q_order`` [B, h, O] or
        None, the null entry's score [B, h, 1] -> (mixed ``[r | tau]`` [B, h, H + Dt], the weights
        [B, h, E + 1] with the null entry last, the null entry's weight [B, h, 1])."""
        parts = [q_content, q_timing] + ([q_order] if q_order is not None else [])
        mixed, weights = entry_attention(torch.cat(parts, dim=-1), self.keys, self.valid, null_score, self.value_size)
        return mixed, weights, weights[..., -1:]


@dataclass
class EntryGroups:
    """Rows in groups of ``size`` consecutive rows, each group with a table of its distinct valid
    entries: ``table`` [G, P] (long, into the ``[U, ...]`` tables; 0 where unused); the valid
    entries ``(row, entry)`` of the rows and ``position`` (long), each one's place in its group's table."""

    size: int
    table: torch.Tensor
    row: torch.Tensor
    entry: torch.Tensor
    position: torch.Tensor

    @property
    def width(self) -> int:
        return self.table.shape[1]

    def per_row(self, values: torch.Tensor, rows: int, fill: float | bool = 0) -> torch.Tensor:
        """Values [B, E] of the entries -> [B, P] at their table positions (``fill`` elsewhere)."""
        out = torch.full((rows * self.width,), fill, dtype=values.dtype, device=values.device)
        out[self.row * self.width + self.position] = values[self.row, self.entry]
        return out.view(rows, self.width)


def group_entries(index: torch.Tensor, valid: torch.Tensor, size: int, max_width: int) -> EntryGroups | None:
    """Group rows of ``index`` [B, E] (long) into runs of ``size`` and table the distinct valid
    entries of each group; None where the groups' rows share few entries (rows that are not runs
    of one environment: the tables would hold more than half as many entries as the rows, or a
    group more than ``max_width``) or a row holds one entry twice."""
    B, E = index.shape
    row, entry = valid.nonzero(as_tuple=True)
    if row.numel() == 0:
        return None
    U = int(index.max()) + 1
    group = row // size
    keys = group * U + index[row, entry]
    unique, inverse = sorted_unique(keys)
    if 2 * unique.shape[0] > keys.shape[0]:
        return None
    group_of = unique // U
    counts = torch.bincount(group_of, minlength=-(-B // size))
    width = int(counts.max())
    if width > max_width:
        return None
    start = counts.cumsum(0) - counts
    place = torch.arange(unique.shape[0], device=index.device) - start[group_of]
    table = torch.zeros(counts.shape[0], width, dtype=torch.long, device=index.device)
    table[group_of, place] = unique % U
    position = place[inverse]
    taken = torch.bincount(row * width + position, minlength=B * width)
    if int(taken.max()) > 1:  # one entry twice in a row (two equal slots): the rows' own path handles it
        return None
    return EntryGroups(size, table, row, entry, position)


class GroupedEntries:
    """A minibatch's entries as one table per group of rows (see the module docstring).

    Args:
        groups: from :func:`group_entries`.
        r: consolidations [U, H]; ``u``: their timing vectors [U, Dt]; ``salience_logit``: [U, G] or None.
        age, surprise: [B, E] of the entries; ``valid`` [B, E] bool.
        age_table: ``ages [A] -> e(ages) [A, Dt]``, the additive part of the timing signal.
        order: None, or (salience slope [G], levels [L], scale) for the order basis.
        read_order: the mixed entries include the order basis (``[r | tau | order]``).
    """

    def __init__(self, groups: EntryGroups, r: torch.Tensor, u: torch.Tensor, salience_logit: torch.Tensor | None,
                 age: torch.Tensor, surprise: torch.Tensor, valid: torch.Tensor, age_table, order=None,
                 read_order: bool = False):
        B, E = valid.shape
        self.groups, self.rows, self.entries = groups, B, E
        table = groups.table
        self.keys = torch.cat([r.index_select(0, table.flatten()), u.index_select(0, table.flatten())],
                              dim=-1).view(*table.shape, -1)                           # [G, P, H + Dt]
        self.valid = groups.per_row(valid, B, False)                                  # [B, P]
        age_p = groups.per_row(age, B)
        with torch.no_grad():
            ages, age_id = torch.unique(age_p[self.valid], return_inverse=True)
        self.age_id = torch.zeros(B * groups.width, dtype=torch.long, device=age.device)
        self.age_id[self.valid.flatten()] = age_id
        self.age_id = self.age_id.view(B, groups.width)
        self.age_embedding = age_table(ages)                                          # [A, Dt]
        self.order, self.read_order = None, read_order and order is not None
        if order is not None:
            slope, levels, scale = order
            group_of_row = torch.arange(B, device=age.device) // groups.size
            logit = salience_logit.index_select(0, table.flatten()).view(*table.shape, -1)[group_of_row]  # [B, P, G]
            salience = torch.sigmoid(logit + slope * groups.per_row(surprise, B).unsqueeze(-1))
            count = older_salient_count(age_p, self.valid, salience)
            self.order = (*nearest_levels(count, levels.shape[0], scale), levels.shape[0])  # level, bump, L

    def _by_group(self, x: torch.Tensor) -> torch.Tensor:
        """[B, h, D] -> [G, S h, D] (rows padded to whole groups)."""
        G, S = self.groups.table.shape[0], self.groups.size
        pad = G * S - x.shape[0]
        if pad:
            x = torch.cat([x, x.new_zeros(pad, *x.shape[1:])])
        return x.reshape(G, S * x.shape[1], x.shape[2])

    def _by_row(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        """[G, S h, D] -> [B, h, D]."""
        return x.reshape(-1, heads, x.shape[-1])[:self.rows]

    def attend(self, q_content: torch.Tensor, q_timing: torch.Tensor, q_order: torch.Tensor | None,
               null_score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As :meth:`RowEntries.attend` (the weights at the rows' entries detached)."""
        B, heads, Dt = q_timing.shape
        P = self.groups.width
        query = self._by_group(torch.cat([q_content, q_timing], dim=-1))
        scores = self._by_row(torch.bmm(query, self.keys.transpose(1, 2)), heads)         # [B, h, P]
        at_age = (q_timing.reshape(B * heads, Dt) @ self.age_embedding.T).view(B, heads, -1)
        age_id = self.age_id.unsqueeze(1).expand(B, heads, P)
        scores = scores + at_age.gather(2, age_id)
        if q_order is not None:
            scores = scores + order_scores(q_order, *self.order[:2])
        scores = scores.masked_fill(~self.valid.unsqueeze(1), -math.inf)
        weights = torch.softmax(torch.cat([scores, null_score], dim=-1), dim=-1)          # [B, h, P + 1]
        w = weights[..., :P]
        mixed = self._by_row(torch.bmm(self._by_group(w), self.keys), heads)              # [B, h, H + Dt]
        by_age = torch.zeros_like(at_age).scatter_add(2, age_id, w)
        timing = mixed[..., -Dt:] + by_age @ self.age_embedding
        parts = [mixed[..., :-Dt], timing] + ([order_read(w, *self.order)] if self.read_order else [])
        mixed = torch.cat(parts, dim=-1)
        return mixed, self.entry_weights(weights.detach()), weights[..., P:]

    def entry_weights(self, weights: torch.Tensor) -> torch.Tensor:
        """Weights [B, h, P + 1] at table positions -> [B, h, E + 1] at the rows' entries."""
        B, heads = weights.shape[:2]
        g = self.groups
        out = weights.new_zeros(B, self.entries + 1, heads)
        out[g.row, g.entry] = weights[g.row, :, g.position]
        out[:, -1] = weights[:, :, -1]
        return out.transpose(1, 2)
