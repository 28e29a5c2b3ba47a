"""Any rlmem core inside Stable-Baselines3: :class:`CorePolicy` for sb3-contrib's ``RecurrentPPO``.

::

    from sb3_contrib import RecurrentPPO
    from rlmem.sb3 import CorePolicy
    model = RecurrentPPO(CorePolicy, "rlmem/TMaze-v0", n_steps=128,
                         policy_kwargs={"core": "ntm", "core_options": {"memory_size": 32}})

Importing this module imports :mod:`rlmem.envs`, so the ``rlmem/...`` Gymnasium ids work as
environment strings.

How the adapter fits sb3-contrib (2.9.2):

- **No nn.LSTM.** ``RecurrentPPO`` sizes its rollout buffer from ``policy.lstm_actor.num_layers``
  and ``.hidden_size`` and keeps every state as a pair ``(h, c)`` of float32 tensors
  ``[num_layers, n_envs, hidden_size]``. ``policy.lstm_actor`` (and ``lstm_critic``) is a
  :class:`PackedCore`: it holds the core and reports ``num_layers = 1`` and
  ``hidden_size = ceil((D + 1) / 2)``, ``D`` being the core's :func:`~rlmem.cores.state_size`.
- **Packing.** A core state (a dict of tensors of any shapes and dtypes) is flattened with
  :func:`~rlmem.cores.flatten_state` to ``[B, D]`` floats; one marker value ``1.0`` is put in front,
  the row is zero-padded to ``2 * hidden_size`` and split in halves: ``h`` the first, ``c`` the
  second. Unpacking inverts this exactly (:func:`~rlmem.cores.unflatten_state` casts entries back
  to their dtypes).
- **Zeros mean "no state".** sb3-contrib makes zero states where it has no state of ours: the
  ``_last_lstm_states`` it builds at set-up, ``predict(state=None)``, a freshly reset buffer. Their
  marker is 0, so those rows start from the core's own initial state (learned or structured, never
  zeros), whatever ``episode_starts`` says.
- **Optimizer.** Adam with ``eps=1e-8`` unless ``optimizer_kwargs`` is given (see :data:`ADAM_EPS`).
- **Sequences.** :meth:`CorePolicy._process_sequence` makes ONE core call over the whole
  (padded) sequence batch, ``x [T, n_seq, F]``, with ``starts [T, n_seq]``: the core resets a row
  to its initial state before consuming ``x[t]`` where ``starts[t]`` is set (selection, not
  sb3-contrib's multiplication by ``1 - episode_start``). sb3-contrib cuts training sequences at
  episode starts and pads them at the end with zeros (``episode_starts`` 0 there); padded steps
  come after the real ones, so they never change a real step's output, and the loss masks them.

Float32 limits: every state value travels as float32. Floats wider than float32 (float64) lose
precision; integer entries round-trip exactly only while ``|value| <= 2**24`` (16 777 216); bools
always round-trip. All built-in cores keep float32 and bool state, so their states round-trip
bit for bit.

Also: the core's ``aux_loss`` (tmm's prediction loss), which RecurrentPPO knows nothing of, is
added to the training loss with weight ``aux_coef``: :meth:`CorePolicy.evaluate_actions` attaches
its gradient to the returned values (the values themselves are unchanged).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    MlpExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

import rlmem.envs  # noqa: F401  (registers the rlmem/... Gymnasium ids)

from .cores import CORES, Core, State, flatten_state, make_core, state_size, unflatten_state

__all__ = ["ADAM_EPS", "CorePolicy", "PackedCore"]

#: Largest integer magnitude that float32 holds exactly (integer state entries beyond it are rounded).
FLOAT32_EXACT_INT = 2 ** 24

#: Adam's eps when ``optimizer_kwargs`` is not given (torch's default; SB3's ActorCriticPolicy sets
#: 1e-5). With a separate critic the actor's core learns from the policy loss alone, which reaches
#: it through the action head (orthogonal, gain 0.01): on t-maze (corridor 20) a GRU's gradients
#: there start at about 1e-6 and less, below 1e-5, where Adam's step ``lr * g / (sqrt(v) + eps)``
#: shrinks with the gradient (the first update moves them by 1% of ``lr`` or less); neither a GRU
#: nor sb3-contrib's own LSTM then learned the task in 300k steps, and with 1e-8 the GRU did (3 of
#: 3 seeds; the LSTM 1 of 3). rlmem's own policies share one core, which the value loss reaches.
ADAM_EPS = 1e-8


class PackedCore(nn.Module):
    """A core, with what ``RecurrentPPO`` reads off an ``nn.LSTM`` and the packing of its state.

    Attributes:
        core: the rlmem :class:`~rlmem.cores.Core`.
        input_size: the features' width (``core.input_size``).
        num_layers: 1.
        hidden_size: ``ceil((state_size + 1) / 2)``: ``h`` and ``c`` together hold the marker and
            the flattened state.

    :meth:`pack` / :meth:`unpack` map a state dict ``{k: [B, ...]}`` to ``(h, c)``, each
    ``[1, B, hidden_size]`` float32, and back. Exact for float32 and bool entries and for integer
    entries up to ``2**24`` in magnitude (float32's exact integer range; larger ones are rounded),
    float64 entries are rounded to float32.
    """

    num_layers = 1

    def __init__(self, core: Core):
        super().__init__()
        self.core = core
        self.input_size = core.input_size
        self.output_size = core.output_size
        with th.no_grad():
            template = core.initial_state(1)
        # Shapes and dtypes only (a batch of one), for unflatten_state.
        self._template = {k: th.zeros(v.shape, dtype=v.dtype) for k, v in template.items()}
        self.state_size = state_size(self._template) if self._template else 0
        self.hidden_size = math.ceil((self.state_size + 1) / 2)
        self._takes_need_state = "need_state" in inspect.signature(core.forward).parameters

    def pack(self, state: State) -> tuple[th.Tensor, th.Tensor]:
        """State ``{k: [B, ...]}`` -> ``(h, c)``, each ``[1, B, hidden_size]`` float32 (detached)."""
        if not self._template:
            raise ValueError("pack needs the batch size of an empty state: use pack_empty")
        flat = flatten_state({k: v.detach() for k, v in state.items()})
        return self._split(flat)

    def pack_empty(self, batch_size: int, device: th.device) -> tuple[th.Tensor, th.Tensor]:
        return self._split(th.zeros(batch_size, 0, device=device))

    def _split(self, flat: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        B, H = flat.shape[0], self.hidden_size
        marker = th.ones(B, 1, dtype=th.float32, device=flat.device)
        pad = th.zeros(B, 2 * H - 1 - flat.shape[1], dtype=th.float32, device=flat.device)
        row = th.cat([marker, flat, pad], dim=1)
        return row[:, :H].unsqueeze(0), row[:, H:].unsqueeze(0)

    def unpack(self, packed: tuple[th.Tensor, th.Tensor]) -> tuple[State, th.Tensor]:
        """``(h, c)`` -> (state ``{k: [B, ...]}``, ``has_state`` [B] bool). ``has_state`` is False
        on rows sb3-contrib filled with zeros: those must start from the initial state."""
        h, c = packed
        if h.dim() != 3 or h.shape[0] != 1 or h.shape[2] != self.hidden_size or c.shape != h.shape:
            raise ValueError(f"expected packed states (h, c) of shape [1, B, {self.hidden_size}], got "
                             f"{tuple(h.shape)} and {tuple(c.shape)}")
        row = th.cat([h[0], c[0]], dim=1)
        has_state = row[:, 0] > 0.5
        if not self._template:
            return {}, has_state
        flat = row[:, 1:1 + self.state_size]
        return unflatten_state(flat, self._template), has_state

    def forward(self, x: th.Tensor, packed: tuple[th.Tensor, th.Tensor], starts: th.Tensor,
                need_state: bool = True) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor] | None, dict]:
        """``x`` [T, B, F], packed ``(h, c)``, ``starts`` [T, B] bool -> (``y`` [T, B, out],
        packed final state or None, extras). Rows without a state start at step 0."""
        state, has_state = self.unpack(packed)
        starts = th.cat([starts[:1] | ~has_state.unsqueeze(0), starts[1:]], dim=0)
        if self._takes_need_state:
            y, new_state, extras = self.core(x, state, starts, need_state=need_state)
        else:
            y, new_state, extras = self.core(x, state, starts)
        if not need_state or new_state is None:
            return y, None, extras
        new = self.pack(new_state) if self._template else self.pack_empty(x.shape[1], x.device)
        return y, new, extras


class _AuxLossGradient(th.autograd.Function):
    """Returns ``carrier`` unchanged; its backward also sends ``coef`` to ``aux`` (a scalar loss),
    as if ``coef * aux`` were added to the loss the carrier enters (once)."""

    @staticmethod
    def forward(ctx, carrier: th.Tensor, aux: th.Tensor, coef: float) -> th.Tensor:
        ctx.coef, ctx.aux_meta = coef, (aux.shape, aux.dtype, aux.device)
        return carrier.clone()

    @staticmethod
    def backward(ctx, grad: th.Tensor):
        shape, dtype, device = ctx.aux_meta
        return grad, th.full(shape, ctx.coef, dtype=dtype, device=device), None


def _default_extractor(space: spaces.Space) -> type[BaseFeaturesExtractor]:
    if isinstance(space, spaces.Dict):
        return CombinedExtractor
    if is_image_space(space):
        return NatureCNN
    return FlattenExtractor


class CorePolicy(RecurrentActorCriticPolicy):
    """sb3-contrib's recurrent actor-critic with an rlmem core in place of the LSTM.

    Use with ``sb3_contrib.RecurrentPPO``; everything but the LSTM is SB3's: features extractor,
    ``net_arch`` MLPs, action distributions (gSDE too), optimizer.

    Args (besides :class:`~stable_baselines3.common.policies.ActorCriticPolicy`'s):
        core: name of a registered core (``rlmem.cores.CORES``: built-in, or a user's own core
            registered with :func:`rlmem.cores.register_core`; it must be registered again, by
            importing its module, before a saved model is loaded).
        core_options: keyword options of that core (e.g. ``{"hidden_size": 64}``), see
            :func:`rlmem.cores.core_options`. The core's input size is the features' width.
        shared_lstm: the critic reads the actor's core output (detached, as in sb3-contrib).
        enable_critic_lstm: the critic has a core of its own (the default, as in sb3-contrib).
            With neither flag, the critic is a Linear over the features.
        aux_coef: weight of the core's ``aux_loss`` (tmm's prediction) in the training loss.
        features_extractor_class: None picks SB3's: CombinedExtractor for Dict observations,
            NatureCNN for images, FlattenExtractor otherwise.
        optimizer_kwargs: None gives Adam ``eps=1e-8`` (:data:`ADAM_EPS`), not SB3's 1e-5, with
            which a GRU actor did not learn t-maze (corridor 20); given, used as is.

    ``lstm_hidden_size``, ``n_lstm_layers`` and ``lstm_kwargs`` do not apply (set the core's own
    sizes with ``core_options``) and are refused if given.

    State: see :class:`PackedCore` (float32 packing of the core's state into sb3-contrib's ``(h, c)``).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        core: str = "gru",
        core_options: dict[str, Any] | None = None,
        shared_lstm: bool = False,
        enable_critic_lstm: bool = True,
        aux_coef: float = 1.0,
        lstm_hidden_size: int | None = None,
        n_lstm_layers: int | None = None,
        lstm_kwargs: dict[str, Any] | None = None,
    ):
        if not isinstance(core, str):
            raise ValueError(f"core must be the name of a registered core, got {core!r}; "
                             f"valid cores: {', '.join(sorted(CORES))}")
        if core not in CORES:
            raise ValueError(f"unknown core {core!r}; valid cores: {', '.join(sorted(CORES))}")
        given = [k for k, v in (("lstm_hidden_size", lstm_hidden_size), ("n_lstm_layers", n_lstm_layers),
                                ("lstm_kwargs", lstm_kwargs)) if v is not None]
        if given:
            raise ValueError(f"CorePolicy builds no LSTM: {', '.join(given)} do not apply; set the core's "
                             f"sizes with core_options (options of {core!r}: see rlmem.cores.core_options)")
        if shared_lstm and enable_critic_lstm:
            raise ValueError("choose shared_lstm=True (and enable_critic_lstm=False) or a separate critic "
                             "core (enable_critic_lstm=True), not both")
        if shared_lstm and not share_features_extractor:
            raise ValueError("shared_lstm=True needs share_features_extractor=True")
        # Read by _build_mlp_extractor, which ActorCriticPolicy.__init__ calls.
        self.core_name = core
        self.core_options = dict(core_options or {})
        self.shared_lstm = shared_lstm
        self.enable_critic_lstm = enable_critic_lstm
        self.aux_coef = float(aux_coef)
        self.lstm_kwargs: dict[str, Any] = {}
        if features_extractor_class is None:
            features_extractor_class = _default_extractor(observation_space)
        if optimizer_kwargs is None and optimizer_class == th.optim.Adam:
            # Not SB3's eps=1e-5: see ADAM_EPS.
            optimizer_kwargs = {"eps": ADAM_EPS}
        # Skip RecurrentActorCriticPolicy.__init__ (it builds nn.LSTMs); its attributes are set here.
        ActorCriticPolicy.__init__(
            self, observation_space, action_space, lr_schedule, net_arch, activation_fn, ortho_init,
            use_sde, log_std_init, full_std, use_expln, squash_output, features_extractor_class,
            features_extractor_kwargs, share_features_extractor, normalize_images, optimizer_class,
            optimizer_kwargs,
        )
        # For sb3-contrib's predict(): zeros of this shape (no state: the core's initial state).
        self.lstm_hidden_state_shape = (1, 1, self.lstm_actor.hidden_size)

    def _build_mlp_extractor(self) -> None:
        """Build the cores (the features' width is known now) and then the MLPs over their output."""
        self.lstm_actor = PackedCore(make_core(self.core_name, self.features_dim, **self.core_options))
        self.lstm_critic = None
        self.critic = None
        self.lstm_output_dim = self.lstm_actor.output_size
        if self.enable_critic_lstm:
            self.lstm_critic = PackedCore(make_core(self.core_name, self.features_dim, **self.core_options))
        elif not self.shared_lstm:
            self.critic = nn.Linear(self.features_dim, self.lstm_output_dim)
        self.mlp_extractor = MlpExtractor(self.lstm_output_dim, net_arch=self.net_arch,
                                          activation_fn=self.activation_fn, device=self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(core=self.core_name, core_options=self.core_options, shared_lstm=self.shared_lstm,
                    enable_critic_lstm=self.enable_critic_lstm, aux_coef=self.aux_coef,
                    share_features_extractor=self.share_features_extractor)
        return data

    # ------------------------------------------------------------------ sequences
    def _process_sequence(self, features: th.Tensor, lstm_states: tuple[th.Tensor, th.Tensor],
                          episode_starts: th.Tensor, lstm: PackedCore, need_state: bool = True
                          ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor] | None]:
        """One core call over a batch of sequences laid out as sb3-contrib lays them out.

        ``features`` [n_seq * T, F] (sequence-major: sequence 0's T steps first; T = 1 in
        rollouts, the padded length in training), ``lstm_states`` the packed states at the
        sequences' first steps ([1, n_seq, H] each), ``episode_starts`` [n_seq * T] (float or
        bool) -> (outputs [n_seq * T, out], packed final states, or None if not ``need_state``).
        """
        latent, states, extras = self._run_core(features, lstm_states, episode_starts, lstm, need_state)
        return latent, states

    def _run_core(self, features, lstm_states, episode_starts, lstm: PackedCore, need_state: bool):
        n_seq = lstm_states[0].shape[1]
        x = features.reshape(n_seq, -1, lstm.input_size).transpose(0, 1)  # [T, n_seq, F]
        starts = episode_starts.reshape(n_seq, -1).transpose(0, 1)
        starts = starts if starts.dtype == th.bool else starts > 0.5
        y, states, extras = lstm(x, lstm_states, starts, need_state=need_state)
        return y.transpose(0, 1).reshape(-1, y.shape[-1]), states, extras

    # ------------------------------------------------------------------ training
    def evaluate_actions(self, obs: th.Tensor, actions: th.Tensor, lstm_states: RNNStates,
                         episode_starts: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """As sb3-contrib's, running each core once over the stored sequences (no final state
        computed) and adding the cores' ``aux_loss`` (weight ``aux_coef``) through the values."""
        features = self.extract_features(obs)
        pi_features, vf_features = (features, features) if self.share_features_extractor else features
        latent_pi, _, extras = self._run_core(pi_features, lstm_states.pi, episode_starts, self.lstm_actor, False)
        aux = [extras["aux_loss"]] if "aux_loss" in extras else []
        if self.lstm_critic is not None:
            latent_vf, _, extras_vf = self._run_core(vf_features, lstm_states.vf, episode_starts,
                                                     self.lstm_critic, False)
            aux += [extras_vf["aux_loss"]] if "aux_loss" in extras_vf else []
        elif self.shared_lstm:
            latent_vf = latent_pi.detach()
        else:
            latent_vf = self.critic(vf_features)
        latent_pi = self.mlp_extractor.forward_actor(latent_pi)
        latent_vf = self.mlp_extractor.forward_critic(latent_vf)
        distribution = self._get_action_dist_from_latent(latent_pi)
        log_prob = distribution.log_prob(actions)
        values = self.value_net(latent_vf)
        if aux and self.aux_coef != 0.0 and th.is_grad_enabled():
            values = _AuxLossGradient.apply(values, th.stack(aux).sum(), self.aux_coef)
        return values, log_prob, distribution.entropy()

    def predict_values(self, obs: th.Tensor, lstm_states: tuple[th.Tensor, th.Tensor],
                       episode_starts: th.Tensor) -> th.Tensor:
        features = super(ActorCriticPolicy, self).extract_features(obs, self.vf_features_extractor)
        if self.lstm_critic is not None:
            latent_vf, _ = self._process_sequence(features, lstm_states, episode_starts, self.lstm_critic,
                                                  need_state=False)
        elif self.shared_lstm:
            latent_vf, _ = self._process_sequence(features, lstm_states, episode_starts, self.lstm_actor,
                                                  need_state=False)
            latent_vf = latent_vf.detach()
        else:
            latent_vf = self.critic(features)
        return self.value_net(self.mlp_extractor.forward_critic(latent_vf))

    # ------------------------------------------------------------------ acting
    def initial_lstm_states(self, n_envs: int) -> RNNStates:
        """Packed initial states of both cores for ``n_envs`` fresh episodes (what a zero state
        also stands for)."""
        def packed(lstm: PackedCore | None) -> tuple[th.Tensor, th.Tensor] | None:
            if lstm is None:
                return None
            if not lstm._template:
                return lstm.pack_empty(n_envs, self.device)
            with th.no_grad():
                return lstm.pack(lstm.core.initial_state(n_envs, self.device))
        pi = packed(self.lstm_actor)
        vf = packed(self.lstm_critic) or pi
        return RNNStates(pi, vf)

    def predict(self, observation: np.ndarray | dict[str, np.ndarray], state: tuple[np.ndarray, ...] | None = None,
                episode_start: np.ndarray | None = None, deterministic: bool = False
                ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """As sb3-contrib's; with ``state=None`` every row starts a fresh episode from the core's
        initial state (sb3-contrib would start from zeros)."""
        if state is None:
            observation_tensor, _ = self.obs_to_tensor(observation)
            first = next(iter(observation_tensor.values())) if isinstance(observation_tensor, dict) else observation_tensor
            episode_start = np.ones(first.shape[0], dtype=bool)
        return super().predict(observation, state, episode_start, deterministic)
