"""Recurrent DQN with sequence replay (R2D2, Kapturowski et al. 2019), for any core.

A sampled sequence is re-run from its stored core state: the first ``burn_in`` rows only warm the
state up (no gradient, no loss), then every row's Q is trained towards an n-step double-Q target,
``G_t + gamma^k Q_target(s_{t+k}, argmax_a Q(s_{t+k}, a))``, where the window of ``k <= n_step``
rewards ends early at the end of an episode: a termination does not bootstrap, a truncation
bootstraps from the final-observation row the buffer keeps after it. Targets optionally use R2D2's
value rescaling ``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x``. Huber loss, a target network
(Polyak with ``tau``; ``tau = 1`` copies), epsilon-greedy exploration per env copy on a linear
schedule, prioritized sequences optional.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from gymnasium.vector import VectorEnv

from rlmem.policy import RecurrentQNetwork, tree_map

from .off_policy import OffPolicyAgent
from .on_policy import core_diagnostics

RESCALE_EPS = 1e-3


def rescale(x: torch.Tensor) -> torch.Tensor:
    """R2D2's value rescaling ``h``."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1.0) - 1.0) + RESCALE_EPS * x


def unrescale(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rescale`."""
    eps = RESCALE_EPS
    return torch.sign(x) * (((torch.sqrt(1.0 + 4.0 * eps * (x.abs() + 1.0 + eps)) - 1.0) / (2.0 * eps)) ** 2 - 1.0)


def n_step_targets(reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor, step: torch.Tensor,
                   bootstrap: torch.Tensor, gamma: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n-step targets of every row of sequences ``[L, N]`` (reward, terminated, truncated, step: the
    row is an env step, not a final-observation row) with ``bootstrap`` ``[L, N, D]``: the target
    network's value of each row (for its own greedy action under the online network).

    Row t sums rewards ``r_t .. r_{t+k-1}`` (``k <= n``, fewer when the episode ends inside the
    window) and adds ``gamma^k bootstrap[t + k]`` unless the episode terminated. Returns the
    targets ``[L, N, D]`` and ``valid`` ``[L, N]``: rows that are steps whose window (and bootstrap
    row) lies inside the sequence.
    """
    L = reward.shape[0]
    done = terminated | truncated
    g = torch.zeros_like(reward)
    alive = step.clone()                        # still inside the row's episode at offset j
    k = torch.zeros_like(reward, dtype=torch.long)
    ended_by_termination = torch.zeros_like(terminated)
    outside = torch.zeros_like(terminated)      # the window ran past the end of the sequence
    for j in range(n):
        if j >= L:
            outside |= alive
            break
        r, d, term = _shift(reward, j, 0.0), _shift(done, j, True), _shift(terminated, j, False)
        outside |= alive & (torch.arange(L, device=reward.device) + j >= L).unsqueeze(1)
        g = g + alive.float() * (gamma ** j) * r
        k = k + alive.long()
        ended_by_termination |= alive & term
        alive = alive & ~d
    rows = torch.arange(L, device=reward.device).unsqueeze(1) + k                      # bootstrap row t + k
    needs_bootstrap = step & ~ended_by_termination
    inside = rows < L
    valid = step & ~outside & (inside | ~needs_bootstrap)
    gathered = bootstrap.gather(0, rows.clamp(max=L - 1).unsqueeze(-1).expand_as(bootstrap))
    discount = (gamma ** k.float()) * needs_bootstrap.float()
    return g.unsqueeze(-1) + discount.unsqueeze(-1) * gathered, valid


def _shift(x: torch.Tensor, j: int, fill) -> torch.Tensor:
    """``x[t + j]`` for every row t (``fill`` past the end)."""
    if j == 0:
        return x
    pad = torch.full_like(x[:j], fill)
    return torch.cat([x[j:], pad], dim=0)


class DQN(OffPolicyAgent):
    """Recurrent DQN (R2D2-style) over any core; Stable-Baselines3's names where it has them.

    Args (beyond :class:`~rlmem.agents.off_policy.OffPolicyAgent`):
        gamma: discount.
        n_step: rewards per target before bootstrapping.
        double_q: pick the bootstrap action with the online network (else the target's max).
        target_update_interval: env steps between target network updates.
        tau: Polyak factor of those updates (1: copy).
        exploration_fraction, exploration_initial_eps, exploration_final_eps: epsilon goes linearly
            from the initial to the final value over this fraction of ``total_steps``.
        value_rescale: R2D2's invertible value rescaling of targets.
        aux_coef: weight of the core's ``aux_loss`` (tmm's prediction).
        optimizer_eps: Adam's epsilon, torch's default 1e-8 as in Stable-Baselines3's and CleanRL's DQN
            (the on-policy agents keep SB3's 1e-5). The Q-values of rewards scaled to returns of 1 give
            gradients of 1e-6 and below to a core's weights; an eps of 1e-5 would shrink their steps
            tenfold (DQN + gru on repeat-previous: 0.9 at 236,544 env steps with 1e-5, 100,352 with 1e-8).
    """

    network_class = RecurrentQNetwork
    network_options = ("dueling",)

    def __init__(self, env: VectorEnv, policy: RecurrentQNetwork, *, buffer_size: int = 100_000,
                 learning_starts: int = 5000, batch_size: int = 32, learning_rate: float = 1e-3,
                 gamma: float = 0.99, train_freq: int = 1, gradient_steps: int = 2,
                 target_update_interval: int = 1000, tau: float = 1.0, exploration_fraction: float = 0.1,
                 exploration_initial_eps: float = 1.0, exploration_final_eps: float = 0.01,
                 max_grad_norm: float | None = 10.0, seq_len: int = 40, overlap: int = 20, burn_in: int = 10,
                 n_step: int = 5, double_q: bool = True, value_rescale: bool = False, aux_coef: float = 1.0,
                 optimizer_eps: float = 1e-8, **kwargs):
        if not isinstance(policy, RecurrentQNetwork):
            raise TypeError(f"DQN trains a RecurrentQNetwork, got {type(policy).__name__}")
        super().__init__(env, policy, buffer_size=buffer_size, learning_starts=learning_starts,
                         batch_size=batch_size, learning_rate=learning_rate, train_freq=train_freq,
                         gradient_steps=gradient_steps, seq_len=seq_len, overlap=overlap, burn_in=burn_in,
                         max_grad_norm=max_grad_norm, optimizer_eps=optimizer_eps, **kwargs)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
        if n_step < 1 or target_update_interval < 1 or not 0.0 < tau <= 1.0:
            raise ValueError(f"need n_step >= 1, target_update_interval >= 1 and 0 < tau <= 1, got {n_step}, "
                             f"{target_update_interval}, {tau}")
        for name, eps in (("exploration_initial_eps", exploration_initial_eps),
                          ("exploration_final_eps", exploration_final_eps),
                          ("exploration_fraction", exploration_fraction)):
            if not 0.0 <= eps <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {eps}")
        self.gamma, self.n_step, self.double_q, self.value_rescale = gamma, n_step, double_q, value_rescale
        self.target_update_interval, self.tau, self.aux_coef = target_update_interval, tau, aux_coef
        self.exploration_fraction = exploration_fraction
        self.eps_initial, self.eps_final = exploration_initial_eps, exploration_final_eps
        self.target = copy.deepcopy(self.policy).requires_grad_(False)
        self._last_target_update = 0

    # ------------------------------------------------------------------ acting
    @property
    def epsilon(self) -> float:
        span = self.exploration_fraction * max(self.total_steps, 1)
        frac = min(1.0, self.num_timesteps / span) if span > 0 else 1.0
        return self.eps_initial + frac * (self.eps_final - self.eps_initial)

    def explore(self, out) -> torch.Tensor:
        head = self.policy.q_head
        choice = head.greedy(out.q)[0]                                              # [B, D]
        B = choice.shape[0]
        random = torch.rand(B, generator=self.generator).to(self.device) < self.epsilon
        choice = torch.where(random.unsqueeze(-1), head.random((B,), self.generator, self.device), choice)
        return head.to_action(choice)

    # ------------------------------------------------------------------ learning
    def _run(self, net: RecurrentQNetwork, batch: dict[str, Any], grad: bool):
        """Q ``[L', N, A]`` over the rows after the burn-in, from the stored state; extras."""
        prev = (batch.get("prev_action"), batch.get("prev_reward"))
        if self.per_row_state:  # every row from its own stored state, all rows in one step
            L, N = batch["reward"].shape
            # sequence-major rows: each sequence's L consecutive steps stay together, so a core that
            # reads runs of steps together (tmm's grouped readout) can
            flat = lambda v: v.transpose(0, 1).reshape(1, N * L, *v.shape[2:])  # noqa: E731
            state = {k: v.transpose(0, 1).reshape(N * L, *v.shape[2:]) for k, v in batch["state"].items()}
            with torch.set_grad_enabled(grad):
                out = net(tree_map(flat, batch["obs"]), state, flat(batch["starts"]),
                          *(None if p is None else tree_map(flat, p) for p in prev), need_state=False)
            unflat = lambda v: v.reshape(N, L, *v.shape[2:]).transpose(0, 1)  # noqa: E731
            q = unflat(out.q)
            extras = {k: unflat(v) if v.dim() >= 2 and v.shape[:2] == (1, N * L) else v
                      for k, v in out.extras.items()}
            return q, extras
        b = self.burn_in
        part = lambda tree, s: None if tree is None else tree_map(lambda v: v[s], tree)  # noqa: E731
        state = batch["state"] if self.stored_state else net.initial_state(batch["reward"].shape[1], self.device)
        if b:
            with torch.no_grad():
                state = net(part(batch["obs"], slice(0, b)), state, batch["starts"][:b],
                            *(part(p, slice(0, b)) for p in prev)).state
        with torch.set_grad_enabled(grad):
            out = net(part(batch["obs"], slice(b, None)), state, batch["starts"][b:],
                      *(part(p, slice(b, None)) for p in prev), need_state=False)
        return out.q, out.extras

    def train_step(self) -> dict[str, torch.Tensor]:
        self.policy.train()
        batch, slots, weights = self.sample(self.batch_size)
        b = self.burn_in
        q, extras = self._run(self.policy, batch, grad=True)                   # [L', N, A]
        with torch.no_grad():
            q_next = self._run(self.target, batch, grad=False)[0]
            head = self.policy.q_head
            chooser = q.detach() if self.double_q else q_next
            bootstrap = head.value_of(q_next, head.greedy(chooser))              # [L', N, D]
            if self.value_rescale:
                bootstrap = unrescale(bootstrap)
            rows = slice(b, None)
            step = ~batch["final"][rows]
            target, valid = n_step_targets(batch["reward"][rows], batch["terminated"][rows],
                                           batch["truncated"][rows], step, bootstrap, self.gamma, self.n_step)
            if self.value_rescale:
                target = rescale(target)
        taken = head.value_of(q, head.to_choice(batch["action"][rows]))           # [L', N, D]
        td = taken - target
        mask = valid.unsqueeze(-1).float()
        per_row = F.smooth_l1_loss(taken, target, reduction="none") * mask * weights.view(1, -1, 1)
        loss = per_row.sum() / mask.sum().clamp(min=1.0) / td.shape[-1]
        aux = extras.get("aux_loss")
        if aux is not None:
            loss = loss + self.aux_coef * aux
        info: dict[str, torch.Tensor] = {"td_loss": loss.detach(), "q_mean": (taken.detach() * mask).sum() /
                                         mask.sum().clamp(min=1.0) / td.shape[-1]}
        if aux is not None:
            info["aux_loss"] = aux.detach()
        self.gradient_step(loss, info)
        self.buffer.update_priorities(slots, td.detach().abs().mean(-1), valid)
        self._update_target()
        info.update(core_diagnostics(extras))
        return info

    def _update_target(self) -> None:
        if self.num_timesteps - self._last_target_update < self.target_update_interval:
            return
        self._last_target_update = self.num_timesteps
        with torch.no_grad():
            if self.tau >= 1.0:
                self.target.load_state_dict(self.policy.state_dict())
            else:
                for t, p in zip(self.target.parameters(), self.policy.parameters()):
                    t.lerp_(p, self.tau)

    def round_metrics(self) -> dict[str, float]:
        out = super().round_metrics()
        out["epsilon"] = self.epsilon
        if self.buffer.tree is not None and self.buffer.filled:
            out["priority_mean"] = float(self.buffer.tree.total) / self.buffer.filled
        return out

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["target"] = self.target.state_dict()
        state["last_target_update"] = self._last_target_update
        state["total_steps"] = self.total_steps
        return state

    def load_state_dict(self, state: dict[str, Any], restore_carry: bool = True) -> None:
        super().load_state_dict(state, restore_carry)
        self.target.load_state_dict(state["target"])
        self._last_target_update = int(state["last_target_update"])
        self.total_steps = int(state.get("total_steps", 0))

