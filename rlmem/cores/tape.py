"""``tape``: every step's input kept at its position in the episode, read by attention over content
and position."""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import Extras, StepCore
from .registry import register_core
from .state import State


def positions(p: torch.Tensor, size: int, max_period: float) -> torch.Tensor:
    """Sinusoidal encoding ``[..., size]`` of step indices ``p`` ``[...]`` (float): ``sin`` and
    ``cos`` of ``p * w_i``, the ``w_i`` geometric from 1 down to ``1 / max_period``."""
    half = size // 2
    freq = torch.exp(-math.log(max_period) * torch.arange(half, dtype=p.dtype, device=p.device) / max(half - 1, 1))
    angle = p.unsqueeze(-1) * freq
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


#: The per-slot position scores are stored divided by this: Adam moves a parameter by about the learning
#: rate per update, and a score must travel several units to single out one slot of a hundred.
SLOT_SCORE_SCALE = 10.0


@register_core("tape")
class TapeCore(StepCore):
    """A tape of the last ``slots`` inputs of the episode, each kept with the step it was seen at.

    Each step writes ``x_t`` into slot ``t mod slots`` (``t`` counted from the episode's start; once
    the tape is full the oldest entry makes room), then every head reads the tape by attention.
    An entry's score adds a content term, ``q_h(x_t) . x_i`` (a learned linear query: "the last
    time this token was seen"), and a position term:

    - ``addressing="slot"`` (default): one learned score per head, current slot and entry slot.
      "The entry seen k steps ago" and "the entry seen at step C - t" (reciting a sequence
      backwards, POPGym's Autoencode) are then one learned score per step each; with ``slots`` at
      least the episode length, slots are the episode's step indices. The scores are learned
      quickly (see ``SLOT_SCORE_SCALE``) but do not generalize to steps a tape never reached.
    - ``addressing="sinusoidal"``: the query, a linear map of ``[x_t | pos(t)]``, meets keys
      ``[x_i | pos(p_i)]``, ``pos`` a sinusoidal encoding of step indices. Shifting or
      reflecting such a code is linear, so one map covers every step, but it learns far more
      slowly: trained with labels to recite AutoencodeEasy's cards, 81% right after 500 updates
      at best (``position_size=64, max_period=1000``) where slot addressing is right after 200.

    Heads read the entries' inputs: ``y_t = [x_t | pos(t) | read_1 .. read_heads]``. The tape keeps
    the encoded observation (``stores_inputs``), not a learned embedding, and nothing in it depends
    on parameters, so every step trains from its stored tape (``bptt_free``).

    Args:
        input_size: feature size F.
        slots: entries the tape holds (at least the episode length to keep a whole episode).
        heads: attention heads.
        position_size: width of the sinusoidal step encoding (even), in the output and for
            ``addressing="sinusoidal"``.
        max_period: slowest period of that encoding, in steps.
        addressing: ``slot`` or ``sinusoidal`` (the position term, above).
        learn_init: the tape starts full of learned entries (seen before step 0) instead of empty.

    State: ``tokens`` [B, slots, F], ``pos`` [B, slots] (step index of each entry), ``valid``
    [B, slots] (bool), ``t`` [B] (the next step's index). Extras: ``attention_peak``, the largest
    attention weight per row averaged over heads, ``tape_used``, the share of valid entries, and
    ``tape_attention`` [B, heads, slots], each head's attention over the slots (for pictures).
    """

    stores_inputs = True
    bptt_free = True
    state_from_inputs = True

    def __init__(self, input_size: int, slots: int = 128, heads: int = 4, position_size: int = 32,
                 max_period: float = 10_000.0, addressing: str = "slot", learn_init: bool = False):
        for name, value, low in (("slots", slots, 1), ("heads", heads, 1), ("position_size", position_size, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if position_size % 2:
            raise ValueError(f"position_size must be even, got {position_size}")
        if not max_period > 1:
            raise ValueError(f"max_period must be > 1, got {max_period}")
        if addressing not in ("slot", "sinusoidal"):
            raise ValueError(f"addressing must be one of slot, sinusoidal, got {addressing!r}")
        super().__init__(input_size, input_size * (1 + heads) + position_size)
        self.slots, self.heads, self.position_size, self.max_period = slots, heads, position_size, float(max_period)
        self.addressing = addressing
        if addressing == "sinusoidal":
            self.key_size = input_size + position_size
            self.query = nn.Linear(self.key_size, heads * self.key_size)
        else:
            # the content query reads the input alone; positions score per (current slot, entry slot)
            self.key_size = input_size
            self.query = nn.Linear(input_size, heads * input_size)
            self.slot_scores = nn.Embedding(slots, heads * slots)
            nn.init.zeros_(self.slot_scores.weight)
        self.learn_init = bool(learn_init)
        if self.learn_init:
            self.init_tokens = nn.Parameter(torch.zeros(slots, input_size))

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        F = self.input_size
        if self.learn_init:
            tokens = self.init_tokens.to(device).unsqueeze(0).expand(batch_size, -1, -1)
            pos = torch.arange(-self.slots, 0, dtype=torch.float32, device=device).expand(batch_size, -1)
            valid = torch.ones(batch_size, self.slots, dtype=torch.bool, device=device)
        else:
            tokens = torch.zeros(batch_size, self.slots, F, device=device)
            pos = torch.zeros(batch_size, self.slots, device=device)
            valid = torch.zeros(batch_size, self.slots, dtype=torch.bool, device=device)
        return {"tokens": tokens, "pos": pos, "valid": valid, "t": torch.zeros(batch_size, device=device)}

    def next_state(self, x: torch.Tensor, state: State) -> State:
        t = state["t"]
        here = torch.nn.functional.one_hot(t.long() % self.slots, self.slots).bool()      # [B, N]
        return {"tokens": torch.where(here.unsqueeze(-1), x.unsqueeze(1), state["tokens"]),
                "pos": torch.where(here, t.unsqueeze(1), state["pos"]), "valid": state["valid"] | here, "t": t + 1}

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State, Extras]:
        B, H, K = x.shape[0], self.heads, self.key_size
        t = state["t"]
        state = self.next_state(x, state)
        tokens, pos, valid = state["tokens"], state["pos"], state["valid"]
        now = positions(t, self.position_size, self.max_period)                           # [B, D]
        if self.addressing == "sinusoidal":
            keys = torch.cat([tokens, positions(pos, self.position_size, self.max_period)], dim=-1)  # [B, N, K]
            q = self.query(torch.cat([x, now], dim=-1)).view(B, H, K)
            scores = torch.bmm(q, keys.transpose(1, 2)).div_(math.sqrt(K))
        else:
            q = self.query(x).view(B, H, K)
            slot_now = t.long() % self.slots
            scores = torch.bmm(q, tokens.transpose(1, 2)).div_(math.sqrt(K))
            scores = scores + SLOT_SCORE_SCALE * self.slot_scores(slot_now).view(B, H, self.slots)
        scores = scores.masked_fill(~valid.unsqueeze(1), -math.inf)
        weights = torch.softmax(scores, dim=-1)                                           # [B, H, N]
        read = torch.bmm(weights, tokens)                                                 # [B, H, F]
        y = torch.cat([x, now, read.flatten(1)], dim=-1)
        extras = {"attention_peak": weights.detach().amax(-1).mean(-1), "tape_used": valid.float().mean(-1),
                  "tape_attention": weights.detach()}                                 # [B, H, N], for pictures
        return y, state, extras
