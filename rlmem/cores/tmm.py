"""``tmm``: the token memory machine, a surprise-driven slot memory trained without BPTT.

Memory of ``N`` slots. Slot ``i`` holds the consolidation state ``s_i`` in force when it was
written, the input token ``x_i`` seen then, its ``age`` (steps since writing) and the ``surprise``
the token caused. Each step ``t``:

1. **surprise** of ``x_t``: the cosine distance ``1 - cos(prediction_{t-1}, x_t)`` of the prediction
   made at ``t-1`` (``surprise="prediction"``), or the distance from ``x_t`` to the nearest stored
   token (``surprise="novelty"``, no parameters); both tokens extended by a constant feature, so
   that a blank (zero) token can be predicted (:func:`token_distance`). An episode's first token
   gets the maximum, 2.
2. **write**: ``replace_least_surprising`` writes into an empty slot if there is one, else over
   the least surprising slot (the oldest among ties, surprises within a factor ``1 + tie`` of the
   least) unless ``x_t`` is less surprising than every stored token, so a full memory holds the N
   most surprising tokens seen and cycles through equally surprising ones; ``threshold`` writes
   only when the surprise exceeds ``threshold``, into an empty slot or over the oldest one. A
   written slot gets ``(last_state, x_t, age 0, surprise)``.
3. the ages of the other stored slots advance by one.
4. **consolidation**: one ``GRUCell`` re-reads every slot in parallel, ``r_i = f(s_i, x_i)``, and
   the current token, ``c_t = f(last_state, x_t)`` (the newest slot's ``r`` when it was written).
5. **timing**: each entry (the slots and the current token) has a timing vector ``u_i``, linear
   in ``r_i``, that its age transforms (:mod:`rlmem.cores.tmm_timing`: ``+ sinusoid(age)``,
   ``+ learned(bucket(age))`` or ``rotation^age``); and an *order* signal, the count of salient
   older entries, so that a query can ask for "the second surprise". Salience is
   ``sigmoid(w . r_j + a * surprise_j + b)``, started as a soft threshold on the stored surprise.
6. **readout**: multi-head attention over the valid entries (and a learned null slot), queried by
   ``c_t``; a head scores content, timing vector and order, and reads values and timing vectors.
   ``y_t = tanh(W [c_t, read])``. The prediction of ``x_{t+1}`` is linear in the output of a
   second readout over the same entries with its own query and output maps
   (``prediction_readout="own"``; ``"shared"``: linear in ``y_t``).
7. ``last_state = c_t``, detached.

Everything stored is detached, so a step's gradient needs no earlier step: agents train on chunks
of length 1 (``bptt_free``), and the loss of step ``t`` still reaches the cell and the readout
through every slot in memory, however long ago it was written.

The auxiliary loss (``extras["aux_loss"]``, times ``prediction_weight``) trains the prediction
within one step: the readout of step ``t-1`` is redone, with gradients, from what the state holds
(the slots, their ages, and ``last_state``, step t-1's current token and query) and its
prediction is scored against the detached ``x_t`` (:func:`token_distance`). It is computed only
while autograd is on, on a share (``prediction_fraction``) of the batch rows; acting does no
redone readout.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Extras, InitialState, StepCore
from .registry import register_core
from .state import State
from .tmm_layout import EntryGroups, GroupedEntries, RowEntries, group_entries, order_basis, sorted_unique
from .tmm_memo import INTEGER_OF_SIZE, ConsolidationMemo
from .tmm_timing import TIMINGS, make_timing

SURPRISE_MODES = ("prediction", "novelty")
WRITE_MODES = ("replace_least_surprising", "threshold")
PREDICTION_READOUTS = ("own", "shared")
MAX_SURPRISE = 2.0  # the largest cosine distance; given to a first token, which nothing predicts
_EQUAL = 1e-5       # surprises closer than this are equal whatever the tie tolerance
SALIENT_SURPRISE, SALIENCE_SLOPE = 0.15, 20.0  # initial salience: sigmoid(20 (surprise - 0.15))


def token_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 - cos([a, 1], [b, 1])`` over the last dimension, in ``[0, 2)``: the cosine distance of
    the tokens extended by a constant feature. Plain cosine puts a zero vector at distance 1 from
    everything, itself included, so a zero token (a blank observation) could never be predicted
    and would look surprising at every step; extended, it is at distance 0 from a zero prediction."""
    dot = (a * b).sum(-1) + 1.0
    return 1.0 - dot * torch.rsqrt((a.pow(2).sum(-1) + 1.0) * (b.pow(2).sum(-1) + 1.0))


def novelty(x: torch.Tensor, slot_x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """:func:`token_distance` from ``x`` [B, F] to the nearest valid stored token ``slot_x`` [B, N, F]
    (``valid`` [B, N] bool) -> [B]; :data:`MAX_SURPRISE` where no slot is valid."""
    dist = token_distance(x.unsqueeze(1), slot_x).masked_fill(~valid, MAX_SURPRISE)
    return dist.min(dim=-1).values.clamp(0.0, MAX_SURPRISE)


def tied_with(surprise: torch.Tensor, least: torch.Tensor, tie: float) -> torch.Tensor:
    """Whether ``surprise`` counts as equal to ``least`` (no larger than ``(1 + tie) least``)."""
    return surprise <= least * (1.0 + tie) + _EQUAL


def least_surprising_slot(valid: torch.Tensor, surprise: torch.Tensor, age: torch.Tensor, tie: float = 0.0
                          ) -> torch.Tensor:
    """Slot to replace [B] (long): the first empty slot, else the least surprising one, the oldest
    among ties (see :func:`tied_with`). ``valid`` [B, N] bool, ``surprise`` and ``age`` [B, N] float."""
    score = torch.where(valid, surprise, torch.full_like(surprise, math.inf))
    tied = tied_with(score, score.min(dim=-1, keepdim=True).values, tie)
    tied = torch.where(valid.all(dim=-1, keepdim=True), tied, ~valid)  # empty slots first
    return torch.where(tied, age + 1.0, torch.zeros_like(age)).argmax(dim=-1)  # argmax: first of equals


def oldest_slot(valid: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
    """Slot to replace [B] (long): the first empty slot, else the oldest one."""
    return torch.where(valid, age, torch.full_like(age, math.inf)).argmax(dim=-1)


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a table [U, D] and a long ``index`` of any shape -> [*index.shape, D]; as
    ``index_select``, whose backward (an index add) is several times faster than that of indexing."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, table.shape[-1])


def row_bits(rows: torch.Tensor) -> torch.Tensor:
    """The bits of ``rows`` [n, D] (floating) as integers [n, D'], without a copy where the layout
    allows: two float32 values per int64 word when D is even, an integer of the element's width
    otherwise. Equal rows (bit for bit) have equal integer rows, and only they."""
    size = rows.element_size()
    wide = size == 8 or (size == 4 and rows.shape[-1] % 2 == 0)
    dtype = torch.int64 if wide else INTEGER_OF_SIZE[size]
    per_word = dtype.itemsize // size
    if not rows.is_contiguous() or rows.storage_offset() % per_word:
        rows = rows.clone(memory_format=torch.contiguous_format)
    return rows.view(dtype)


def same_rows(table: torch.Tensor, index: torch.Tensor, rows: torch.Tensor, chunk: int = 4096) -> bool:
    """Whether ``table[index]`` equals ``rows`` [n, D] (integers): compared a chunk of rows at a
    time, so the gathered rows are still in cache when compared (several times faster than one
    gather of all of them)."""
    return all(torch.equal(table.index_select(0, index[i:i + chunk]), rows[i:i + chunk])
               for i in range(0, index.shape[0], chunk))


def token_bits(rows: torch.Tensor) -> torch.Tensor:
    """The bits of ``rows`` [n, F] (floating) as 32-bit integers [n, F * size / 4] (integers of the
    element's width for narrower floats), without a copy where the layout allows."""
    if not rows.is_contiguous():
        rows = rows.clone(memory_format=torch.contiguous_format)
    return rows.view(INTEGER_OF_SIZE[min(rows.element_size(), 4)])


def first_rows(inverse: torch.Tensor, groups: int) -> torch.Tensor:
    """The first row [groups] (long) of every group of rows ``inverse`` [n] (long, in
    ``0 .. groups - 1``, no group empty)."""
    n = inverse.shape[0]
    first = torch.full((groups,), n, dtype=torch.long, device=inverse.device)
    return first.scatter_reduce_(0, inverse, torch.arange(n, device=inverse.device), "amin")


def first_occurrence_order(inverse: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Groups of rows ``inverse`` [n] (long, in ``0 .. groups - 1``, no group empty) renumbered in
    the order of their first rows -> (``first`` [groups], increasing; the new ``inverse`` [n])."""
    first, order = first_rows(inverse, groups).sort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(groups, device=inverse.device)
    return first, rank[inverse]


def distinct_rows(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Group rows by a key per row: ``keys`` [n] -> (``first`` [u], the first row of each group, in
    the order of the groups' keys; ``inverse`` [n], each row's group), ``keys[first][inverse] ==
    keys``. The order depends on the keys, not on how the rows were ordered."""
    unique, inverse = sorted_unique(keys)
    return first_rows(inverse, unique.shape[0]), inverse


def entry_rows(slot_s: torch.Tensor, slot_x: torch.Tensor, last: torch.Tensor, x: torch.Tensor,
               positions: torch.Tensor, current: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The (s, x) of entries at ``positions`` [k] (long) of the [B, E] entries of every row: the
    slots ``slot_s`` [B * N, H], ``slot_x`` [B * N, F] and, with ``current`` (then E = N + 1), the
    current tokens ``last`` [B, H], ``x`` [B, F] -> ([k, H], [k, F])."""
    B = last.shape[0]
    N = slot_s.shape[0] // B
    row, col = positions // (N + current), positions % (N + current)
    slot_row = row * N + col.clamp(max=N - 1)
    s, xs = gather_rows(slot_s, slot_row), gather_rows(slot_x, slot_row)
    if current:  # entries that are a current token read last_state and x instead
        at = (col == N).nonzero().squeeze(1)
        s = s.index_put((at,), gather_rows(last, row[at]))
        xs = xs.index_put((at,), gather_rows(x, row[at]))
    return s, xs


@register_core("tmm")
class TokenMemoryMachine(StepCore):
    """Token memory machine (see the module docstring).

    State (batch first): ``slot_state`` [B, N, H], ``slot_x`` [B, N, F], ``age`` [B, N],
    ``surprise`` [B, N], ``valid`` [B, N] bool, ``last_state`` [B, H] (learned initial value) and
    ``prediction`` [B, F] (of the next input).

    Extras per step (detached; :meth:`diagnostics`), about the memory after the step's write:

    - for pictures: ``slot_age`` [T, B, N] (0 for empty slots), ``attention`` [T, B, N] (the weight,
      mean over heads, that the policy's readout put on each slot; the slot written this step
      holds the current token and gets its weight; the null entry's weight is left out) and
      ``written_slot`` [T, B] (long: the slot written, -1 when nothing was);
    - per-step scalars [T, B]: ``surprise`` (of the step's token, 0..2), ``write_rate`` (1 when the
      step wrote a slot, else 0), ``slots_used`` (fraction of the N slots that hold a token),
      ``slot_age_mean`` and ``slot_age_max`` (ages of the slots that hold a token, in steps; 0 when
      none does), ``attention_current`` (weight, mean over heads, on the current token, the newest
      entry, whether it was written or not) and ``attention_entropy`` (entropy of each head's
      weighting over the entries and the null entry in nats, mean over heads: 0 when a head reads
      one entry, log(k + 1) when it spreads evenly over k valid entries and the null one);
    - while autograd is on, the scalar ``aux_loss``.

    Args:
        input_size: feature size F of the tokens.
        hidden_size: H, the consolidation state and output size.
        slots: N, the number of memory slots.
        surprise: ``prediction`` (error of the learned next-token prediction) or ``novelty``
            (distance to the nearest stored token, no parameters).
        write: ``replace_least_surprising`` (keep the N most surprising tokens) or ``threshold``.
        threshold: surprise above which ``write="threshold"`` stores a token (cosine distance, 0..2).
        tie: relative tolerance of ``replace_least_surprising``: surprises no larger than
            ``(1 + tie)`` times the least count as equal; the oldest of the tied slots is replaced,
            and a token tied with it is written. With a tolerance, a stream of about equally
            unpredictable tokens (random tokens) fills the memory first in, first out, instead of
            keeping whichever happened to be predicted slightly worse.
        timing: age signal of the slots: ``sinusoidal``, ``learned`` or ``rotation``.
        prediction_weight: weight of the next-token prediction loss in ``aux_loss``.
        prediction_fraction: share of a training batch's rows that the prediction loss is
            computed on (every ``1 / fraction``-th row).
        prediction_readout: ``own``: the prediction reads the entries with its own query and
            output maps (keys, values, timing and order shared), so the policy's gradient, which
            moves ``y``, does not move the prediction that decides what is stored; ``shared``: the
            prediction is linear in the policy's ``y`` (one readout per step).
        heads: attention heads of the readout (``hidden_size`` must be a multiple).
        timing_size: width of each slot's timing vector (even).
        order_gates: learned salience gates whose counts of older slots give each slot its order
            signal; 0 turns the order signal off.
        order_levels: how many levels the order basis puts a count on. None: one per possible count
            (0..N+1), so keys and queries grow by ``order_gates * (N + 2)`` per head and the basis
            with N squared per row; K: K evenly spaced levels from 0 to N + 1, with Gaussian
            bumps as wide as their spacing (cost linear in N; for many slots).
        max_age: ages stop growing here (they are floats).
        order_read: the readouts also read the order basis of the entries they attend to (a head
            that reads the current token then gets the counts of salient older entries, e.g. how
            many cards of a colour have been dealt); off: the order signal only scores.
        group_rows: a training minibatch whose rows come in runs of consecutive steps of one
            environment (PPO's ``agent.minibatch_seq_len``) is read in groups of this many rows,
            one table of distinct entries per group (:class:`~rlmem.cores.tmm_layout.GroupedEntries`);
            rows that share few entries are read row by row. 0: always row by row.
    """

    bptt_free = True
    stores_inputs = True

    def __init__(self, input_size: int, hidden_size: int = 128, slots: int = 8, surprise: str = "prediction",
                 write: str = "replace_least_surprising", threshold: float = 0.5, tie: float = 1.0,
                 timing: str = "sinusoidal", prediction_weight: float = 1.0, prediction_fraction: float = 0.25,
                 prediction_readout: str = "own", heads: int = 4, timing_size: int = 32, order_gates: int = 2,
                 order_levels: int | None = None, max_age: float = 1e6, group_rows: int = 16,
                 order_read: bool = False):
        super().__init__(input_size, hidden_size)
        _check_choice("surprise", surprise, SURPRISE_MODES)
        _check_choice("write", write, WRITE_MODES)
        _check_choice("timing", timing, tuple(TIMINGS))
        _check_choice("prediction_readout", prediction_readout, PREDICTION_READOUTS)
        if order_levels is not None and order_levels < 2:
            raise ValueError(f"tmm needs order_levels >= 2 (or null: one level per count), got {order_levels}")
        if (slots < 1 or heads < 1 or hidden_size % heads or order_gates < 0 or prediction_weight < 0
                or not 0.0 < prediction_fraction <= 1.0 or tie < 0
                or timing_size < 2 or timing_size % 2 or group_rows < 0):
            raise ValueError(f"tmm needs slots >= 1, heads >= 1 dividing hidden_size, an even timing_size >= 2, "
                             f"order_gates >= 0, prediction_weight >= 0, 0 < prediction_fraction <= 1, tie >= 0 "
                             f"and group_rows >= 0; "
                             f"got slots={slots}, heads={heads}, hidden_size={hidden_size}, "
                             f"timing_size={timing_size}, order_gates={order_gates}, "
                             f"prediction_weight={prediction_weight}, prediction_fraction={prediction_fraction}, "
                             f"tie={tie}, group_rows={group_rows}")
        H, Dt, G = hidden_size, int(timing_size), int(order_gates)
        self.hidden_size, self.slots, self.heads = H, int(slots), int(heads)
        self.surprise_mode, self.write_mode, self.timing_kind = surprise, write, timing
        self.threshold, self.prediction_weight, self.tie = float(threshold), float(prediction_weight), float(tie)
        self.prediction_fraction, self.prediction_readout = float(prediction_fraction), prediction_readout
        self.max_age, self.timing_size, self.order_gates = float(max_age), Dt, G
        self.group_rows, self.order_read = int(group_rows), bool(order_read) and G > 0
        # count basis per gate: levels over the counts 0..N+1 (N slots + the current token)
        levels = self.slots + 2 if order_levels is None else int(order_levels)
        self.order_size = G * levels

        self.cell = nn.GRUCell(input_size, H)                        # consolidation f(s, x)
        self.slot_extra = nn.Linear(H, Dt + G)                       # r -> [timing vector | salience logits]
        if G:  # salience starts as a soft threshold on the stored surprise; slope and content term are learned
            self.salience_slope = nn.Parameter(torch.full((G,), SALIENCE_SLOPE))
            with torch.no_grad():
                self.slot_extra.bias[Dt:].fill_(-SALIENCE_SLOPE * SALIENT_SURPRISE)
        self.timing = make_timing(timing, Dt)
        # per head: [content query | timing query | order query]
        query_size = H + self.heads * (Dt + self.order_size)
        read_size = 2 * H + self.heads * (Dt + (self.order_size if self.order_read else 0))
        self.query = nn.Linear(H, query_size)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)
        self.null_key_value = nn.Parameter(torch.zeros(2 * H))      # always readable: "nothing stored fits"
        self.out = nn.Linear(read_size, H)                           # [query | read | read timing (| order)] -> y
        if prediction_readout == "own":  # the prediction's own query and output over the same entries
            self.prediction_query = nn.Linear(H, query_size)
            self.prediction_out = nn.Linear(read_size, H)
        self.predict = nn.Linear(H, input_size)
        self.init = InitialState({"last_state": (H,)}, learn=True)
        if G:
            if order_levels is None:
                grid, self.order_scale = torch.arange(levels, dtype=torch.float32), None
            else:
                grid = torch.linspace(0.0, float(self.slots + 1), levels)
                self.order_scale = (levels - 1) / float(self.slots + 1)  # 1 / the levels' spacing
            self.register_buffer("order_levels", grid, persistent=False)
        # Fixed random odd multipliers of the tokens' 32-bit words (float64 has two per feature), with
        # which an entry's (s, x) bits are fingerprinted to find repeated entries.
        hashing = torch.Generator().manual_seed(0x7A11)
        multipliers = torch.randint(-2 ** 30, 2 ** 30, (2 * input_size,), generator=hashing, dtype=torch.int32)
        self.register_buffer("hash_multipliers", multipliers * 2 + 1, persistent=False)
        self.memo = ConsolidationMemo()  # acting reuses the consolidations of unchanged slots

    # ------------------------------------------------------------------ state
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        last = self.init(batch_size, device)["last_state"]
        B, N, H, Fx = batch_size, self.slots, self.hidden_size, self.input_size
        zero = torch.zeros((), device=last.device)
        return {
            "slot_state": zero.expand(B, N, H), "slot_x": zero.expand(B, N, Fx),
            "age": zero.expand(B, N), "surprise": zero.expand(B, N),
            "valid": torch.zeros((), dtype=torch.bool, device=last.device).expand(B, N),
            "last_state": last, "prediction": zero.expand(B, Fx),
        }

    # ------------------------------------------------------------------ write
    def measure_surprise(self, x: torch.Tensor, state: State) -> torch.Tensor:
        """Surprise [B] of the detached token ``x`` [B, F] given the state (no gradient)."""
        valid = state["valid"]
        if self.surprise_mode == "novelty":
            return novelty(x, state["slot_x"], valid)
        dist = token_distance(state["prediction"], x).clamp(0.0, MAX_SURPRISE)
        return torch.where(valid.any(dim=-1), dist, torch.full_like(dist, MAX_SURPRISE))

    def choose_slot(self, state: State, surprise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows that write [B] bool, slot each row writes to [B] long) for token surprise [B]."""
        valid, age = state["valid"], state["age"]
        if self.write_mode == "threshold":
            return surprise > self.threshold, oldest_slot(valid, age)
        stored = state["surprise"]
        slot = least_surprising_slot(valid, stored, age, self.tie)
        # A full memory keeps its N most surprising tokens: a token less surprising than every
        # stored one is not written (ties go to the newer token).
        writes = ~valid.all(dim=-1) | tied_with(stored.gather(1, slot.unsqueeze(1)).squeeze(1), surprise, self.tie)
        return writes, slot

    # ------------------------------------------------------------------ consolidation
    def consolidate(self, slot_state: torch.Tensor, slot_x: torch.Tensor, last: torch.Tensor, x: torch.Tensor,
                    fresh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The entries of every row, as tables of distinct ones and an index into them.

        Entries are the stored slots (``slot_state`` [B, N, H], ``slot_x`` [B, N, F]) and the
        current token (``last`` [B, H], ``x`` [B, F]), consolidated, ``r = f(s, x)``, with their
        ``slot_extra(r)``. Returns the distinct ones, ``r`` [U, H] and ``slot_extra(r)`` [U, Dt + G],
        and ``index`` [B, N + 1] (long; the N slots, then the current token): row b's entries are
        ``r[index[b]]``.

        ``f`` runs once per distinct (s, x): a slot stays in memory for many steps, so the rows of a
        training minibatch (and parallel environments) repeat it, and a slot is the current token
        of the step that wrote it. A current token shares the computation of its stored copies only
        when no gradient may reach its inputs through them: ``x`` needs no gradient and the row is
        not ``fresh`` [B] (bool: nothing stored yet, so ``last`` may be the learned initial state,
        whose stored copies are detached).

        Sharing is exact: entries are grouped by :meth:`fingerprint` (equal for equal entries), and
        every entry of a group is then compared, bit for bit, with the group's first one; where a
        key collided, the entries that differ from their group's first one are split off and
        grouped by their bits alone (:meth:`split_collisions`), so ``f`` runs once per distinct
        entry whatever the keys, and the results are those of running it on every entry apart.
        """
        B, N, H = slot_state.shape
        merge = not x.requires_grad
        slot_s, slot_t = slot_state.reshape(B * N, H), slot_x.reshape(B * N, -1)
        with torch.no_grad():
            keys = self.fingerprint(slot_s, slot_t).view(B, N) * 2
            if merge:  # odd keys: fresh current tokens never share a slot's computation
                keys = torch.cat([keys, (self.fingerprint(last, x) * 2 + fresh.long()).unsqueeze(1)], dim=1)
            keys = keys.flatten()
            first, inverse = distinct_rows(keys)   # over the [B, N (+ 1)] entries
        s, xs = entry_rows(slot_s, slot_t, last, x, first, merge)
        with torch.no_grad():
            split = self.split_collisions(s, xs, slot_s, slot_t, last, x, keys, inverse, merge)
        if split is not None:
            first, inverse = split
            s, xs = entry_rows(slot_s, slot_t, last, x, first, merge)
        r = self.cell(xs, s)
        if merge:
            return r, self.slot_extra(r), inverse.view(B, N + 1)
        current_index = torch.arange(r.shape[0], r.shape[0] + B, device=x.device)
        r = torch.cat([r, self.cell(x, last)])
        return r, self.slot_extra(r), torch.cat([inverse.view(B, N), current_index.unsqueeze(1)], dim=1)

    def fingerprint(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """An int64 key [n] per row of ``s`` [n, H] and ``x`` [n, F], equal for rows that are equal bit
        for bit, computed from the bits with integer arithmetic (wrapping sums, exact in any order,
        so a row's key does not depend on the shape of the batch it comes in, as float projections
        do): the sum of the words of ``s`` (:func:`row_bits`), plus the 32-bit words of ``x`` times
        fixed random odd multipliers (64-bit products, their high half folded onto the low),
        summed. Tokens are often one-hot, so their words are weighted by position; states are
        dense, and a plain sum, a fraction of the cost of a weighted one, tells them apart.
        Distinct rows may still share a key: :meth:`consolidate` compares the rows it merges."""
        s_bits, x_bits = row_bits(s), token_bits(x)
        m = self.hash_multipliers[:x_bits.shape[1]].long()
        # A product's low bits depend only on the factors' low bits, and a float's low bits are often
        # zero (1.0 is 0x3F800000): the high half of each 64-bit product is folded down onto them.
        h = x_bits.long() * m
        return s_bits.sum(-1, dtype=torch.int64) + (h ^ (h >> 32)).sum(-1)

    @staticmethod
    def split_collisions(s: torch.Tensor, xs: torch.Tensor, slot_s: torch.Tensor, slot_t: torch.Tensor,
                         last: torch.Tensor, x: torch.Tensor, keys: torch.Tensor, inverse: torch.Tensor,
                         merge: bool) -> tuple[torch.Tensor, torch.Tensor] | None:
        """None if every entry equals the first entry of its group (``s`` [U, H], ``xs`` [U, F]), bit
        for bit; else a grouping (``first``, ``inverse``, as :func:`distinct_rows`, but in the order of
        the groups' first entries) in which the entries that differ from their group's first one
        are grouped among themselves by their bits and ``keys`` (a fresh current token stays apart
        from an equal slot). Rare: only where distinct entries' keys collided."""
        if s.shape[0] == inverse.shape[0]:  # nothing merged
            return None
        B = last.shape[0]
        N = slot_s.shape[0] // B
        groups = inverse.view(B, N + merge)
        rep_s, rep_x = row_bits(s), row_bits(xs)
        checks = [(groups[:, :N].reshape(-1), row_bits(slot_s), row_bits(slot_t))]
        if merge:
            checks.append((groups[:, N], row_bits(last), row_bits(x)))
        if all(same_rows(rep_s, g, sb) and same_rows(rep_x, g, xb) for g, sb, xb in checks):
            return None
        differs = torch.cat([((rep_s.index_select(0, g) != sb).any(-1) | (rep_x.index_select(0, g) != xb).any(-1))
                             .view(B, -1) for g, sb, xb in checks], dim=1).flatten()
        apart = differs.nonzero().squeeze(1)
        s_apart, x_apart = entry_rows(slot_s, slot_t, last, x, apart, merge)
        table = torch.cat([row_bits(s_apart).long(), row_bits(x_apart).long(), keys[apart].unsqueeze(1)], dim=1)
        _, sub = torch.unique(table, dim=0, return_inverse=True)
        inverse = inverse.clone()
        inverse[apart] = s.shape[0] + sub
        return first_occurrence_order(inverse, s.shape[0] + int(sub.max()) + 1)

    # ------------------------------------------------------------------ one step
    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State, Extras]:
        return self._step(x, state, need_state=True)

    def last_step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, None, Extras]:
        """A step whose new state is not needed (training on stored states): no prediction of the
        next token, no new slots."""
        return self._step(x, state, need_state=False)

    def _step(self, x: torch.Tensor, state: State, need_state: bool) -> tuple[torch.Tensor, State | None, Extras]:
        B, N = x.shape[0], self.slots
        x_token = x.detach()
        valid, age, last = state["valid"], state["age"], state["last_state"]
        with torch.no_grad():
            surprise = self.measure_surprise(x_token, state)
            writes, slot = self.choose_slot(state, surprise)
            written = F.one_hot(slot, N).bool() & writes.unsqueeze(-1)   # [B, N]
            new_age = torch.where(written, torch.zeros_like(age), (age + valid.float()).clamp(max=self.max_age))
        new_valid = valid | written

        # Entries the readouts attend over: the N stored slots and the current token (index N).
        # After the write the current token stands in for the slot it overwrote.
        # The stored slots consolidated again, and c_t = f(last_state, x_t).
        acting = need_state and not torch.is_grad_enabled()
        recalled = self.memo.recall(self.cell, state["slot_state"], state["slot_x"]) if acting else None
        entry_surprise = torch.cat([state["surprise"], surprise.unsqueeze(1)], dim=1)   # [B, N + 1]
        age_now = torch.cat([new_age, torch.zeros_like(age[:, :1])], dim=1)
        valid_now = torch.cat([new_valid & ~written, torch.ones_like(valid[:, :1])], dim=1)
        if recalled is not None:
            current = self.cell(x, last)
            slots_r = self.recompute_changed(state, *recalled)
            entries = torch.cat([slots_r, current.unsqueeze(1)], dim=1)
            layout = RowEntries(self.entry_keys(entries, self.slot_extra(entries), entry_surprise, age_now, valid_now),
                                valid_now, self.read_width)
        else:
            r, r_extra, index = self.consolidate(state["slot_state"], state["slot_x"], last, x, ~valid.any(dim=-1))
            layout = self.entry_layout(r, r_extra, index, entry_surprise, age_now, valid_now,
                                       0 if acting else self.group_rows)
            current = gather_rows(r, index[:, N])  # [B, H]; apart: a slice of entries would add a [B, E, H] gradient
            if acting:
                slots_r = gather_rows(r, index[:, :N])
        y, attention = self.readout(layout, current)
        extras: Extras = {}
        if torch.is_grad_enabled() and self.prediction_weight > 0:
            extras["aux_loss"] = self.prediction_weight * self.prediction_loss(r, r_extra, index[:, :N], x_token, state)
        extras.update(self.diagnostics(surprise, writes, slot, written, new_age, new_valid, attention))
        if not need_state:
            return y, None, extras
        with torch.no_grad():  # the state keeps the prediction detached
            if self.prediction_readout == "shared":
                prediction = self.predict(y)
            else:
                prediction = self.predict(self.readout(layout, current, for_prediction=True)[0])
        new_state = {
            "slot_state": torch.where(written.unsqueeze(-1), last.detach().unsqueeze(1), state["slot_state"]),
            "slot_x": torch.where(written.unsqueeze(-1), x_token.unsqueeze(1), state["slot_x"]),
            "age": new_age,
            "surprise": torch.where(written, surprise.unsqueeze(-1), state["surprise"]),
            "valid": new_valid,
            "last_state": current.detach(),
            "prediction": prediction,
        }
        if acting:  # a written slot holds (last_state, x_t), whose consolidation is c_t
            self.memo.remember(new_state["slot_state"], new_state["slot_x"],
                               torch.where(written.unsqueeze(-1), current.unsqueeze(1), slots_r))
        return y, new_state, extras

    def diagnostics(self, surprise: torch.Tensor, writes: torch.Tensor, slot: torch.Tensor, written: torch.Tensor,
                    age: torch.Tensor, valid: torch.Tensor, attention: torch.Tensor) -> Extras:
        """A step's extras (see the class docstring), detached, from the token's ``surprise`` [B], the
        rows that wrote ``writes`` [B] (bool), into ``slot`` [B] (long), ``written`` [B, N] (bool),
        and the memory after the write: ``age`` [B, N], ``valid`` [B, N] (bool), and the readout's
        ``attention`` [B, heads, N + 2] (the slots, the current token, the null entry)."""
        N = self.slots
        with torch.no_grad():  # a few small reductions: acting pays for them at every step
            attention, used = attention.detach(), valid.to(age.dtype)
            mean = attention.mean(dim=1)                                     # [B, N + 2], over heads
            count, stored_age = used.sum(dim=-1), age * used
            return {
                "slot_age": age,
                "attention": torch.where(written, mean[:, N:N + 1], mean[:, :N]),
                "written_slot": torch.where(writes, slot, -1),
                "surprise": surprise,
                "write_rate": writes.to(age.dtype),
                "slots_used": count * (1.0 / N),
                "slot_age_mean": stored_age.sum(dim=-1) / count.clamp(min=1.0),
                "slot_age_max": stored_age.amax(dim=-1),
                "attention_current": mean[:, N],
                "attention_entropy": torch.special.entr(attention).sum(dim=(1, 2)).mul_(1.0 / attention.shape[1]),
            }

    def recompute_changed(self, state: State, r: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
        """The consolidated slots [B, N, H] of ``state``, from remembered ones ``r`` [B, N, H] of
        which only the valid slots marked ``changed`` [B, N] are computed again (empty slots are
        never read, whatever their ``r``)."""
        B, N, H = r.shape
        rows = (changed & state["valid"]).flatten().nonzero().squeeze(1)
        if rows.numel() == 0:
            return r
        r = r.clone()
        r.view(B * N, H)[rows] = self.cell(gather_rows(state["slot_x"].reshape(B * N, -1), rows),
                                           gather_rows(state["slot_state"].reshape(B * N, H), rows))
        return r

    def prediction_loss(self, r: torch.Tensor, r_extra: torch.Tensor, slot_index: torch.Tensor, x: torch.Tensor,
                        state: State) -> torch.Tensor:
        """Mean :func:`token_distance` between the prediction step t-1 made and the token ``x`` [B, F] it
        predicted, over the rows whose step t-1 belongs to the episode.

        Step t-1's readout is redone with gradients from what the state holds: its entries were
        the slots stored now, except the one it wrote (age 0), and its current token ``c_{t-1}``,
        which is ``last_state`` (also the query). The consolidated slots of the state are
        ``r[slot_index]``, ``r_extra[slot_index]`` (:meth:`consolidate`; ``slot_index`` [B, N]).
        Done on every ``1 / prediction_fraction``-th row only: a minibatch's rows are spread over
        environments and time (shuffled singly, or in runs of consecutive steps, every run then
        still contributing), and the prediction needs far fewer of them than the policy does.
        """
        stride = max(1, round(1.0 / self.prediction_fraction))
        rows = slice(None, None, stride)
        valid, age, last = state["valid"][rows], state["age"][rows], state["last_state"][rows].detach()
        slot_index, n = slot_index[rows], last.shape[0]
        # The current entry has age 0, so its surprise (not kept) never enters another entry's order.
        surprise = torch.cat([state["surprise"][rows], torch.zeros_like(age[:, :1])], dim=1)
        ages = torch.cat([age, torch.zeros_like(age[:, :1])], dim=1)
        mask = torch.cat([valid & (age > 0), torch.ones_like(valid[:, :1])], dim=1)
        last_extra = self.slot_extra(last)
        # step t-1's current token c_{t-1} = last_state is one more entry of each row, after the slots
        index = torch.cat([slot_index, torch.arange(r.shape[0], r.shape[0] + n, device=r.device).unsqueeze(1)], dim=1)
        groups = self.entry_groups(index, mask, self.group_rows // stride)
        if groups is not None:
            layout = self.grouped_entries(groups, torch.cat([r, last]), torch.cat([r_extra, last_extra]), surprise,
                                          ages, mask)
        else:
            entries = torch.cat([gather_rows(r, slot_index), last.unsqueeze(1)], dim=1)
            extra = torch.cat([gather_rows(r_extra, slot_index), last_extra.unsqueeze(1)], dim=1)
            layout = RowEntries(self.entry_keys(entries, extra, surprise, ages, mask), mask, self.read_width)
        y, _ = self.readout(layout, last, for_prediction=self.prediction_readout == "own")
        prediction = self.predict(y)
        had_memory = valid.any(dim=-1).float()  # rows where step t-1 belongs to this episode
        err = token_distance(prediction, x[rows])
        return (err * had_memory).sum() / had_memory.sum().clamp(min=1.0)

    # ------------------------------------------------------------------ readout
    def entry_keys(self, entries: torch.Tensor, extra: torch.Tensor, surprise: torch.Tensor, age: torch.Tensor,
                   valid: torch.Tensor) -> torch.Tensor:
        """What every readout scores and reads, the same for any query: ``[r_i | tau_i | phi_i]``
        [B, E, H + Dt (+ G (N + 2))], each entry's consolidation, its timing vector under its age
        and its order basis (the count of older salient entries; absent without order gates).

        ``entries`` [B, E, H] (consolidations ``r``), ``extra`` [B, E, Dt + G] (their timing vectors
        and salience logits), ``surprise`` [B, E] (of the entries' tokens), ``age`` [B, E],
        ``valid`` [B, E] bool.
        """
        u, salience = extra.split([self.timing_size, self.order_gates], dim=-1)
        tau = self.timing(u, age)
        if not self.order_gates:
            return torch.cat([entries, tau], dim=-1)
        older = (age.unsqueeze(-2) > age.unsqueeze(-1)) & valid.unsqueeze(-2)   # [B, i, j]: j older than i
        salience = torch.sigmoid(salience + self.salience_slope * surprise.unsqueeze(-1))   # [B, E, G]
        count = older.to(salience.dtype) @ salience                             # [B, E, G]
        return torch.cat([entries, tau, order_basis(count, self.order_levels, self.order_scale)], dim=-1)

    def entry_layout(self, r: torch.Tensor, r_extra: torch.Tensor, index: torch.Tensor, surprise: torch.Tensor,
                     age: torch.Tensor, valid: torch.Tensor, group_rows: int) -> RowEntries | GroupedEntries:
        """The entries ``index`` [B, E] (long) of the tables ``r`` [U, H] and ``r_extra``
        [U, Dt + G] (:meth:`consolidate`), with their ``surprise``, ``age`` [B, E] and ``valid``
        [B, E] (bool), laid out for :meth:`readout`: in groups (:meth:`entry_groups`) where that
        applies, else gathered row by row."""
        groups = self.entry_groups(index, valid, group_rows)
        if groups is not None:
            return self.grouped_entries(groups, r, r_extra, surprise, age, valid)
        keys = self.entry_keys(gather_rows(r, index), gather_rows(r_extra, index), surprise, age, valid)
        return RowEntries(keys, valid, self.read_width)

    def entry_groups(self, index: torch.Tensor, valid: torch.Tensor, group_rows: int) -> EntryGroups | None:
        """The entries ``index`` [B, E] (``valid`` [B, E]) in groups of ``group_rows`` rows
        (:func:`~rlmem.cores.tmm_layout.group_entries`), or None where reading them so does not pay
        or apply: rows that share few entries (a group would hold more than twice a row's
        entries), too few rows, or a timing signal that is not additive (``rotation``)."""
        if group_rows < 2 or index.shape[0] < 2 * group_rows or not self.timing.additive:
            return None
        return group_entries(index, valid, group_rows, max_width=2 * index.shape[1])

    def grouped_entries(self, groups: EntryGroups, r: torch.Tensor, r_extra: torch.Tensor, surprise: torch.Tensor,
                        age: torch.Tensor, valid: torch.Tensor) -> GroupedEntries:
        """The layout of :meth:`entry_layout` for ``groups`` (:meth:`entry_groups`)."""
        u, salience = r_extra.split([self.timing_size, self.order_gates], dim=-1)
        order = (self.salience_slope, self.order_levels, self.order_scale) if self.order_gates else None
        return GroupedEntries(groups, r, u, salience if self.order_gates else None, age, surprise, valid,
                              self.timing.age_term, order, self.order_read)

    @property
    def read_width(self) -> int:
        """How many of an entry's key features a readout reads: ``[r | tau (| order basis)]``."""
        return self.hidden_size + self.timing_size + (self.order_size if self.order_read else 0)

    def readout(self, entries: RowEntries | GroupedEntries, query: torch.Tensor, for_prediction: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention over E = N + 1 entries (the slots, then the current token).

        ``entries`` (:meth:`entry_layout`), ``query`` [B, H] -> (``y`` [B, H], the attention
        weights [B, heads, E + 1] of every head over the entries and, last, the null entry). With
        ``for_prediction`` the query and output maps are the prediction's own
        (``prediction_readout="own"``); keys, values, timing and order are shared.

        A head scores entry ``i`` by content (``q . k_i``), timing (``q_t . tau_i``, ``tau_i`` the
        entry's timing vector under its age) and order (``q_o . phi_i``, the count of older salient
        entries on a basis), and reads values and timing vectors. Keys and values are linear in
        ``r_i``, so the query is mapped into ``r`` space instead (``q W_k``) and the weighted sum of
        the ``r_i`` is mapped to a value: no per-entry key or value tensor is built, and scoring and
        reading are one batched matrix product each over all heads (:func:`entry_attention`).
        """
        B = query.shape[0]
        H, Dt, heads = self.hidden_size, self.timing_size, self.heads
        d = H // heads
        query_map, out_map = ((self.prediction_query, self.prediction_out) if for_prediction
                              else (self.query, self.out))
        qc, qt, qo = query_map(query).split([H, heads * Dt, heads * self.order_size], dim=-1)
        qc = qc.view(B, heads, d)
        # per head, q W_k: [heads, B, d] @ [heads, d, H] (bmm directly: einsum's parsing costs as much at small B)
        q_r = torch.bmm(qc.transpose(0, 1), self.key.weight.view(heads, d, H)).transpose(0, 1)   # [B, heads, H]
        # One score per entry: content + timing + order.
        q_order = qo.view(B, heads, self.order_size) if self.order_gates else None
        null_k, null_v = self.null_key_value.view(2, heads, d)
        # The key bias adds qc . b_k to every entry's score; the null score takes it off instead.
        null_score = (qc * (null_k - self.key.bias.view(heads, d))).sum(-1, keepdim=True) / math.sqrt(d)
        # mixed: sum_i w_i [r_i | tau_i] per head
        mixed, weights, w_null = entries.attend(q_r / math.sqrt(d), qt.view(B, heads, Dt) / math.sqrt(Dt), q_order,
                                                null_score)
        mixed, read_timing = mixed[..., :H], mixed[..., H:].flatten(-2)   # the timing (and order) read
        read = (torch.bmm(mixed.transpose(0, 1), self.value.weight.view(heads, d, H).transpose(1, 2)).transpose(0, 1)
                + (1.0 - w_null) * self.value.bias.view(heads, d) + w_null * null_v)
        y = torch.tanh(out_map(torch.cat([query, read.flatten(-2), read_timing], dim=-1)))
        return y, weights


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"tmm option {name} must be one of {', '.join(choices)}; got {value!r}")
