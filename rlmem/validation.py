"""Every bad input gets one line: the command line and the composed config are checked before a
run directory, an environment or a network is built.

:class:`ConfigError` is what the training entry turns into ``error: <message>`` and exit code 2
(no traceback unless ``HYDRA_FULL_ERROR=1``).

What is checked, and where the rules come from:

- top-level keys (``seed``, ``total_steps``, ``device`` ...): the small table :data:`TOP_LEVEL`;
- ``agent.*``: the agent class's constructor (``rlmem.agents.AGENTS[name]``, its ``__init__`` and,
  through ``**kwargs``, its bases' up the MRO) gives the keys and their types; :data:`AGENT_RULES`
  adds ranges and string choices by key name, so a new agent is checked as soon as it registers;
- ``core.*``: the registered core class's ``__init__`` gives keys and types; the core is then built
  once on the CPU (``input_size=4``) and a ``ValueError`` it raises is reported with the key at fault;
- ``env.*``: a built-in env's parameters come from its class (``rlmem.envs.env_params``) and one
  copy is built; ``env=gym`` makes ONE copy of the Gymnasium id and checks that rlmem can encode
  its observation space and act in its action space;
- ``policy.*`` and ``logger.wandb.*``: from ``RecurrentActorCritic`` and ``WandbLogger``;
- combinations of the on-policy agents: ``n_steps``, ``seq_len``, ``batch_size``,
  ``minibatch_seq_len`` against the rollout of ``n_steps x env.n_envs``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import itertools
import json
import math
import re
import typing
import warnings
from dataclasses import dataclass, replace
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from .overrides import (GROUPS, check_overrides, composer, is_hydra_key, launcher_problem, override_values,
                        parse_override, split_command_line)


class ConfigError(ValueError):
    """A bad config value, combination, space, id or file, with a message naming the key, the value
    and what is allowed."""

    def __init__(self, message: str):
        text = str(message)
        # a spec error of rlmem.notation ends with its source line and a caret: those lines stay
        super().__init__(text.strip() if _QUOTED_SOURCE.search(text) else _one_line(text))


#: A message that ends in a quoted source line with a caret under it.
_QUOTED_SOURCE = re.compile(r"\n    .*\n    \s*\^+\s*$")


#: A sweep with at most this many jobs has every job checked; a larger one has every value of each
#: swept key checked, combined with the first value of the other swept keys.
MAX_SWEEP_JOBS = 64

#: Flags after which Hydra prints something and runs nothing: only names and syntax are checked.
INFO_FLAGS = frozenset({"--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--info", "-i",
                        "--shell-completion", "-sc"})
#: Flags that select another config: left to Hydra (``run()`` still validates what it composes).
CONFIG_FLAGS = frozenset({"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
                          "--experimental-rerun"})


# ---------------------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """What one key takes: its types (``int``, ``float``, ``bool``, ``str``, ``none``, ``list``,
    ``dict``; None: anything), a range and string choices."""

    kinds: frozenset[str] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    finite: bool = False
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        kinds = self.kinds or frozenset()
        nullable = "none" in kinds
        if self.choices is not None:
            text = "one of " + ", ".join(self.choices)
        elif kinds & {"int", "float"}:
            text = "an integer" if "float" not in kinds else ("a finite number" if self.finite else "a number")
            if self.low is not None and self.high is not None:
                text += f" in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}]"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {_num(self.low)}"
            elif self.high is not None:
                text += f" <= {_num(self.high)}"
        elif kinds == {"bool"} or kinds == {"bool", "none"}:
            text = "true or false"
        else:
            names = {"str": "a string", "list": "a list", "dict": "a config section"}
            parts = [names[k] for k in sorted(kinds - {"none"}) if k in names]
            text = " or ".join(parts) or "a value"
        return text + (" or null" if nullable else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


INT, FLOAT, BOOL, STR = frozenset({"int"}), frozenset({"float"}), frozenset({"bool"}), frozenset({"str"})
NONE = frozenset({"none"})

#: Top-level keys of configs/config.yaml (``resume`` is checked where it is used).
TOP_LEVEL: dict[str, Rule] = {
    "seed": Rule(INT, low=0),
    "total_steps": Rule(INT, low=1),
    "torch_threads": Rule(INT | NONE, low=0),
    "keep_freed_memory": Rule(BOOL),
    "progress": Rule(BOOL),
    "eval_episodes": Rule(INT, low=0),
    "eval_deterministic": Rule(BOOL),
    "checkpoint": Rule(BOOL),
    "checkpoint_every": Rule(INT, low=0),
    "checkpoint_keep": Rule(INT, low=0),
    "checkpoint_every_minutes": Rule(FLOAT, low=0.0),
    "stop_return": Rule(FLOAT | NONE),
}
#: Keys that ``rlmem.train.run`` reads unconditionally.
REQUIRED_TOP_LEVEL = ("seed", "total_steps", "device", "torch_threads", "progress", "eval_episodes",
                      "eval_deterministic", "checkpoint", "checkpoint_every", "stop_return", *GROUPS, "policy")

_POSITIVE_INT = Rule(low=1)
_UNIT = Rule(low=0.0, high=1.0)
_POSITIVE = Rule(low=0.0, low_open=True, finite=True)
_NON_NEGATIVE = Rule(low=0.0, finite=True)

#: Ranges and choices of agent keys by name (types come from the agent's constructor). The values
#: follow the checks in agents/on_policy.py and agents/ppo.py.
AGENT_RULES: dict[str, Rule] = {
    "n_steps": _POSITIVE_INT, "batch_size": _POSITIVE_INT, "n_epochs": _POSITIVE_INT, "seq_len": _POSITIVE_INT,
    "minibatch_seq_len": _POSITIVE_INT,
    "learning_rate": _POSITIVE, "gamma": _UNIT, "gae_lambda": _UNIT,
    "clip_range": _POSITIVE, "clip_range_vf": _POSITIVE, "target_kl": _POSITIVE,
    "max_grad_norm": _NON_NEGATIVE, "vf_coef": _NON_NEGATIVE, "aux_coef": _NON_NEGATIVE,
    "ent_coef": Rule(finite=True),
    "buffer_size": _POSITIVE_INT, "learning_starts": Rule(low=0), "train_freq": _POSITIVE_INT,
    "gradient_steps": _POSITIVE_INT, "target_update_interval": _POSITIVE_INT, "n_step": _POSITIVE_INT,
    "overlap": Rule(low=0), "burn_in": Rule(low=0), "tau": Rule(low=0.0, high=1.0, low_open=True),
    "exploration_fraction": _UNIT, "exploration_initial_eps": _UNIT, "exploration_final_eps": _UNIT,
    "priority_alpha": _UNIT, "priority_beta": _UNIT, "priority_eta": _UNIT,
    "optimizer": Rule(choices=("adam", "rmsprop")),           # base.make_optimizer
    "optimizer_eps": _POSITIVE,
    "lr_schedule": Rule(choices=("constant", "linear")),      # OnPolicyAgent.__init__
}
#: Agent constructor arguments that come from elsewhere than the ``agent`` section.
AGENT_NOT_KEYS = frozenset({"self", "env", "policy", "seed", "device"})

#: Ranges of core options shared by several cores (the rest is found by building the core).
CORE_RULES: dict[str, Rule] = {"hidden_size": _POSITIVE_INT, "num_layers": _POSITIVE_INT}

#: ``policy.*``: ranges (keys and types come from RecurrentActorCritic).
POLICY_RULES: dict[str, Rule] = {"embed_size": Rule(low=0), "head_size": Rule(low=0)}
POLICY_NOT_KEYS = frozenset({"self", "observation_space", "action_space", "core", "core_options"})

#: ``env=gym``: choices (keys and types come from rlmem.envs.make_gym_vector_env).
GYM_RULES: dict[str, Rule] = {"vectorization": Rule(choices=("sync", "async")), "n_envs": _POSITIVE_INT,
                              "id": Rule(STR)}
WANDB_RULES: dict[str, Rule] = {"mode": Rule(choices=("online", "offline", "disabled"))}

# A core whose int options exceed this is not built to check it (it would take seconds and GBs).
_MAX_PROBE_SIZE = 16384


# ------------------------------------------------------------------------------ command line
def check_command_line(args: list[str]) -> None:
    """Raise :class:`ConfigError` if ``args`` (``key=value`` overrides, Hydra flags) are bad.

    Names, keys and syntax are always checked. Unless the command only prints (``--help``,
    ``--cfg job`` ...), selects another config (``--config-name`` ...) or resumes (``resume=...``:
    the config comes from the checkpoint), the config is composed and :func:`validate_config`
    checks it; for a sweep (``-m``) every job is checked, or, above :data:`MAX_SWEEP_JOBS` jobs,
    every value of each swept key with the first value of the other swept keys.
    """
    args = [str(a) for a in args]
    words, flags = split_command_line(args)
    flag_names = {f.split("=", 1)[0] for f in flags if f.startswith("-")}
    if flag_names & CONFIG_FLAGS:
        return
    multirun = bool(flag_names & {"-m", "--multirun"})
    plain: list[str] = []
    swept: list[tuple[str, list[str]]] = []  # (key element, values)
    resume = False
    explicit: set[str] = set()
    for text in words:
        if is_hydra_key(text):
            multirun |= text.replace(" ", "") in ("hydra.mode=MULTIRUN", "hydra.mode=multirun")
            problem = launcher_problem(text)
            if problem:
                raise ConfigError(problem)
            continue
        try:
            ov = parse_override(text)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        explicit.add(ov.key_or_group)
        if ov.key_or_group == "resume" and not ov.is_delete():
            resume |= ov.is_sweep_override() or ov.value() not in (None, "", "null", "None")
        if not ov.is_sweep_override():
            plain.append(text)
            continue
        try:
            values = override_values(ov)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        except Exception:  # noqa: BLE001  interval(...): only some sweepers take it; left to them
            continue
        swept.append((ov.get_key_element(), values))
    if resume or flag_names & INFO_FLAGS:
        _check_names(args)
        return
    if swept and not multirun:
        _check_names(args)
        key, values = swept[0]
        raise ConfigError(f"{key}={','.join(values)} is a sweep (one run per value): add -m (--multirun) to "
                          f"sweep it; for a list value write {key}=[{','.join(values)}], for a string quote "
                          f"it: {key}='{','.join(values)}'")
    jobs = list(sweep_jobs(swept))
    with composer() as compose_one:
        for job in jobs:
            try:
                cfg = compose_one([*plain, *job])
            except Exception as err:  # noqa: BLE001  hydra's composition errors
                _check_names(args)  # a wrong name or key: say which, with the valid ones
                raise ConfigError(f"cannot compose the config for {' '.join([*plain, *job])}: {err}") from err
            try:
                validate_config(cfg, explicit)
            except ConfigError as err:
                if len(jobs) > 1:
                    raise ConfigError(f"{err} (in the sweep job {' '.join(job)})") from err
                raise


def _check_names(args: list[str]) -> None:
    problem = check_overrides(args)
    if problem:
        raise ConfigError(problem)


def sweep_jobs(swept: list[tuple[str, list[str]]]) -> Iterable[list[str]]:
    """The jobs of a sweep to check, as override lists: all of them up to :data:`MAX_SWEEP_JOBS`,
    else each value of each swept key with the first value of the others."""
    if not swept:
        yield []
        return
    keys = [k for k, _ in swept]
    if math.prod(len(v) for _, v in swept) <= MAX_SWEEP_JOBS:
        for combo in itertools.product(*(v for _, v in swept)):
            yield [f"{k}={v}" for k, v in zip(keys, combo)]
        return
    first = [v[0] for _, v in swept]
    yield [f"{k}={v}" for k, v in zip(keys, first)]
    for i, (_, values) in enumerate(swept):
        for value in values[1:]:
            combo = [*first[:i], value, *first[i + 1:]]
            yield [f"{k}={v}" for k, v in zip(keys, combo)]


# ---------------------------------------------------------------------------------- the config
_VALID: set[tuple[str, bool]] = set()  # (config, batch_size checked strictly) found valid in this process


def validate_config(cfg: DictConfig | dict, explicit: Iterable[str] | None = None) -> None:
    """Raise :class:`ConfigError` naming the first bad key of a composed training config.

    ``explicit``: the keys the command line sets (``agent.batch_size`` ...). A batch size that is
    larger than the rollout or does not divide it is refused when it was asked for explicitly; the
    agent's default batch size may not fit a rollout made smaller on the command line (``env=gym``
    has 8 copies), and then the agent takes the whole rollout, or a smaller last minibatch, as it
    always has.
    """
    if isinstance(cfg, DictConfig):
        try:
            data = OmegaConf.to_container(cfg, resolve=True)
        except Exception as err:  # noqa: BLE001  interpolation errors
            raise ConfigError(f"cannot resolve the config: {err}") from err
    else:
        data = dict(cfg)
    strict = "agent.batch_size" in set(explicit or ())
    memo = json.dumps(data, sort_keys=True, default=repr)
    if (memo, True) in _VALID or (memo, strict) in _VALID:
        return
    _validate(data, strict)
    _VALID.add((memo, strict))


def _validate(data: dict[str, Any], strict_batch: bool = True) -> None:
    for key in REQUIRED_TOP_LEVEL:
        if key not in data:
            raise ConfigError(f"missing key {key!r} at the top level of the config")
    for key, rule in TOP_LEVEL.items():
        if key in data:
            check_value(key, data[key], rule)
    check_device(data["device"])
    for section in (*GROUPS, "policy"):
        if not isinstance(data[section], dict):
            raise ConfigError(f"{section} must be a config section, got {_show(data[section])}")
    agent_cls, agent = _check_agent(data["agent"])
    core_cls, core = _check_core(data["core"])
    env = _check_env(data["env"])
    _check_policy(data["policy"])
    _check_logger(data["logger"])
    _check_rollout(agent_cls, agent, core_cls, env, strict_batch)
    _check_replay(agent_cls, agent, core_cls)
    q_values = getattr(agent_cls, "network_class", None).__name__ == "RecurrentQNetwork"
    if env["name"] == "gym":
        probe_gym_env(env["id"], env.get("kwargs") or {}, prev_action=bool(data["policy"].get("prev_action")),
                      q_values=q_values)
    elif q_values:
        from rlmem.envs import BUILTIN_ENVS
        from rlmem.policy import QHead, UnsupportedSpaceError

        space = make_builtin_action_space(BUILTIN_ENVS, env)
        try:
            QHead(8, space)
        except UnsupportedSpaceError as err:
            raise ConfigError(f"env={env['name']}: {err}") from None


# ------------------------------------------------------------------------------------- values
def _show(value: Any) -> str:
    """A value as it is written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=repr)
    return str(value)


def _is_kind(value: Any, kinds: frozenset[str]) -> bool:
    if isinstance(value, bool):
        return "bool" in kinds
    if value is None:
        return "none" in kinds
    if isinstance(value, int):
        return bool(kinds & {"int", "float"})
    if isinstance(value, float):
        return "float" in kinds
    if isinstance(value, str):
        return "str" in kinds
    if isinstance(value, (list, tuple)):
        return "list" in kinds
    if isinstance(value, dict):
        return "dict" in kinds
    return False


def check_value(key: str, value: Any, rule: Rule) -> None:
    """Raise :class:`ConfigError` ``<key> must be <what the rule allows>, got <value>``."""
    bad = ConfigError(f"{key} must be {rule.describe()}, got {_show(value)}")
    if rule.kinds is not None and not _is_kind(value, rule.kinds):
        raise bad
    if value is None:
        return
    if rule.choices is not None:
        if not isinstance(value, str) or value not in rule.choices:
            raise bad
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and (math.isnan(value) or (rule.finite and math.isinf(value))):
            raise bad
        if rule.low is not None and (value < rule.low or (rule.low_open and value == rule.low)):
            raise bad
        if rule.high is not None and value > rule.high:
            raise bad


def check_device(value: Any) -> None:
    """``device``: auto, cpu, cuda, cuda:N (a device torch sees), or mps where torch has it."""
    import torch

    has_mps = getattr(getattr(torch.backends, "mps", None), "is_built", lambda: False)()
    allowed = "auto, cpu, cuda, cuda:N" + (" or mps" if has_mps else "")
    if not isinstance(value, str):
        raise ConfigError(f"device must be one of {allowed}, got {_show(value)}")
    if value in ("auto", "cpu"):
        return
    cuda = re.fullmatch(r"cuda(?::(\d+))?", value)
    if cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"device={value} was asked for, but torch sees no CUDA device; use device=cpu or "
                              f"device=auto")
        count = torch.cuda.device_count()
        if cuda.group(1) is not None and int(cuda.group(1)) >= count:
            raise ConfigError(f"device={value}: torch sees {count} CUDA device(s); valid: cuda, "
                              f"{', '.join(f'cuda:{i}' for i in range(count))}")
        return
    if has_mps and re.fullmatch(r"mps(?::0)?", value):
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device={value} was asked for, but torch sees no MPS device; use device=cpu or "
                              f"device=auto")
        return
    raise ConfigError(f"device must be one of {allowed}, got {value!r}")


# ------------------------------------------------------------------------- rules from signatures
_SIMPLE_NAMES = {"int": "int", "float": "float", "bool": "bool", "str": "str", "None": "none",
                 "NoneType": "none"}


def annotation_kinds(annotation: Any) -> frozenset[str] | None:
    """The kinds of values an annotation allows (``"int | None"`` -> {int, none}); None when it
    names anything else (then any value passes)."""
    if annotation is inspect.Parameter.empty or annotation is Any or annotation == "Any":
        return None
    if isinstance(annotation, str):
        text = annotation.strip()
        optional = re.fullmatch(r"(?:typing\.)?Optional\[(.*)\]", text)
        if optional:
            inner = annotation_kinds(optional.group(1))
            return None if inner is None else inner | NONE
        union = re.fullmatch(r"(?:typing\.)?Union\[(.*)\]", text)
        parts = _split_top(union.group(1), ",") if union else _split_top(text, "|")
        kinds: set[str] = set()
        for part in parts:
            part = part.strip()
            head = part.split("[", 1)[0].split(".")[-1]
            if head in _SIMPLE_NAMES:
                kinds.add(_SIMPLE_NAMES[head])
            elif head in ("list", "List", "tuple", "Tuple", "Sequence"):
                kinds.add("list")
            elif head in ("dict", "Dict", "Mapping"):
                kinds.add("dict")
            else:
                return None
        return frozenset(kinds)
    origin = typing.get_origin(annotation)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        kinds = set()
        for arg in typing.get_args(annotation):
            sub = annotation_kinds(arg)
            if sub is None:
                return None
            kinds |= sub
        return frozenset(kinds)
    base = origin or annotation
    if base is type(None) or base is None:
        return NONE
    for typ, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if base is typ:
            return frozenset({name})
    if base in (list, tuple):
        return frozenset({"list"})
    if base is dict:
        return frozenset({"dict"})
    return None


def _split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def param_rule(param: inspect.Parameter, extra: Rule | None = None) -> Rule:
    """The rule of one constructor argument: types from its annotation (or, unannotated, from its
    default), ranges and choices from ``extra``."""
    kinds = annotation_kinds(param.annotation)
    default = param.default
    if kinds is None and param.annotation is inspect.Parameter.empty and default is not inspect.Parameter.empty:
        for typ, name in ((bool, BOOL), (int, INT), (float, FLOAT), (str, STR)):
            if isinstance(default, typ):
                kinds = name
                break
    if default is None and kinds is not None:
        kinds = kinds | NONE
    rule = extra or Rule()
    if rule.choices is not None and kinds is not None:
        kinds = kinds | STR
    return replace(rule, kinds=kinds if kinds is not None else rule.kinds)


def constructor_params(cls: type, skip: Iterable[str] = ()) -> dict[str, inspect.Parameter]:
    """Named arguments of ``cls(...)``, following ``**kwargs`` up the MRO (the first class that
    names an argument decides its annotation and default)."""
    skip = set(skip)
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        forwards = False
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                forwards = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in skip and p.name not in params:
                params[p.name] = p
        if not forwards:
            break
    return params


def _check_section(section: str, what: str, values: dict[str, Any], params: dict[str, inspect.Parameter],
                   rules: dict[str, Rule], extra_keys: Iterable[str] = ("name",)) -> None:
    """Unknown keys, missing keys and the value of every key of one section."""
    extra_keys = set(extra_keys)
    valid = sorted({*params, *extra_keys})
    for key in values:
        if key not in params and key not in extra_keys:
            raise ConfigError(f"unknown key '{section}.{key}' for {what}; valid keys of {section}: "
                              f"{', '.join(valid)}")
    for key, p in params.items():
        if key not in values:
            if p.default is inspect.Parameter.empty:
                raise ConfigError(f"{section}.{key} is missing ({what} needs it)")
            continue
        check_value(f"{section}.{key}", values[key], param_rule(p, rules.get(key)))


# ------------------------------------------------------------------------------------ sections
def _check_agent(agent: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    from rlmem.agents import AGENTS

    name = agent.get("name")
    if name not in AGENTS:
        raise ConfigError(f"agent.name must be one of {', '.join(sorted(AGENTS))}, got {_show(name)}")
    cls = AGENTS[name]
    params = constructor_params(cls, AGENT_NOT_KEYS)
    network = inspect.signature(cls.network_class.__init__).parameters
    params.update({k: network[k] for k in cls.network_options})
    _check_section("agent", f"agent {name}", agent, params, AGENT_RULES)
    return cls, agent


def _check_core(core: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    from rlmem.cores import CORES

    name = core.get("name")
    if name not in CORES:
        raise ConfigError(f"core.name must be one of {', '.join(sorted(CORES))}, got {_show(name)}")
    cls = CORES[name]
    params = {k: p for k, p in inspect.signature(cls.__init__).parameters.items()
              if k not in ("self", "input_size") and p.kind is p.POSITIONAL_OR_KEYWORD}
    _check_section("core", f"core {name}", core, params, CORE_RULES)
    options = {k: v for k, v in core.items() if k != "name"}
    probe_core(name, options, {k: p.default for k, p in params.items()})
    return cls, core


_CORE_PROBES: dict[str, str | None] = {}


def probe_core(name: str, options: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Build the core once on the CPU (``input_size=4``); its ``ValueError``/``TypeError`` becomes a
    :class:`ConfigError` naming the option at fault (the one whose default makes the error go)."""
    if any(isinstance(v, int) and not isinstance(v, bool) and v > _MAX_PROBE_SIZE for v in options.values()):
        return
    memo = json.dumps([name, options], sort_keys=True, default=repr)
    if memo not in _CORE_PROBES:
        _CORE_PROBES[memo] = _build_core_error(name, options)
    message = _CORE_PROBES[memo]
    if message is None:
        return
    changed = [k for k, v in options.items() if k in defaults and defaults[k] != v]
    culprit = next((k for k in changed if _build_core_error(name, {**options, k: defaults[k]}) is None), None)
    if culprit is not None:
        if message.startswith(f"{culprit} "):
            raise ConfigError(f"core.{message}")
        raise ConfigError(f"core.{culprit}={_show(options[culprit])} is refused by core {name}: {message}")
    shown = " ".join(f"core.{k}={_show(options[k])}" for k in changed) or "the default options"
    raise ConfigError(f"core {name} refuses {shown}: {message}")


def _build_core_error(name: str, options: dict[str, Any]) -> str | None:
    from rlmem.cores import make_core

    try:
        make_core(name, 4, **options)
    except (ValueError, TypeError) as err:
        return str(err)
    except Exception:  # noqa: BLE001  anything else is the build's to report
        return None
    return None


def _check_env(env: dict[str, Any]) -> dict[str, Any]:
    from rlmem.envs import BUILTIN_ENVS, env_params

    name = env.get("name")
    if name == "gym":
        from rlmem.envs import make_gym_vector_env

        params = {k: p for k, p in inspect.signature(make_gym_vector_env).parameters.items()
                  if k not in ("env_id", "num_envs", "seed")}
        params["id"] = inspect.Parameter("id", inspect.Parameter.KEYWORD_ONLY, annotation="str")
        params["n_envs"] = inspect.Parameter("n_envs", inspect.Parameter.KEYWORD_ONLY, annotation="int")
        _check_section("env", "env gym", env, params, GYM_RULES)
        return env
    if name not in BUILTIN_ENVS:
        raise ConfigError(f"env.name must be one of gym, {', '.join(BUILTIN_ENVS)}, got {_show(name)}")
    cls = BUILTIN_ENVS[name]
    signature = inspect.signature(cls.__init__).parameters
    params = {k: signature[k] for k in env_params(name)}
    params["n_envs"] = inspect.Parameter("n_envs", inspect.Parameter.KEYWORD_ONLY, annotation="int")
    _check_section("env", f"env {name}", env, params, {"n_envs": _POSITIVE_INT})
    task = {k: v for k, v in env.items() if k not in ("name", "n_envs")}
    _probe_builtin_env(name, task)
    return env


def _probe_builtin_env(name: str, params: dict[str, Any]) -> None:
    from rlmem.envs import make_batched

    try:
        make_batched(name, 1, **params).close()
    except (ValueError, TypeError) as err:
        message = str(err)
        key = next((k for k in params if message.startswith(f"{k} ")), None)
        if key is not None:
            raise ConfigError(f"env.{message}") from err
        shown = " ".join(f"env.{k}={_show(v)}" for k, v in params.items())
        raise ConfigError(f"env {name} refuses {shown}: {message}") from err


def _check_policy(policy: dict[str, Any]) -> None:
    from rlmem.policy import RecurrentActorCritic

    params = {k: p for k, p in inspect.signature(RecurrentActorCritic.__init__).parameters.items()
              if k not in POLICY_NOT_KEYS}
    _check_section("policy", "the policy", policy, params, POLICY_RULES, extra_keys=())


def _check_logger(logger: dict[str, Any]) -> None:
    for key in ("csv", "tensorboard"):
        if key in logger:
            check_value(f"logger.{key}", logger[key], Rule(BOOL))
    if "media_every" in logger:
        check_value("logger.media_every", logger["media_every"], Rule(INT, low=0))
    wandb = logger.get("wandb")
    if wandb is None:
        return
    from .logging.wandb_logger import WandbLogger

    params = {k: p for k, p in inspect.signature(WandbLogger.__init__).parameters.items()
              if k not in ("self", "config", "run_dir", "name", "run_id", "resume")}  # set by rlmem.train
    if not isinstance(wandb, dict):
        raise ConfigError(f"logger.wandb must be null or a section with keys {', '.join(params)}, "
                          f"got {_show(wandb)}")
    _check_section("logger.wandb", "wandb logging", wandb, params, WANDB_RULES, extra_keys=())


# ------------------------------------------------------------------------------- combinations
def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


def _near(values: list[int], target: int, k: int = 2) -> list[int]:
    below = [v for v in values if v < target][-k:]
    above = [v for v in values if v > target][:k]
    return below + above


def make_builtin_action_space(builtin: dict[str, type], env: dict[str, Any]):
    """The action space of one copy of a built-in env section (built cheaply, with its parameters)."""
    from rlmem.envs import make_batched

    params = {k: v for k, v in env.items() if k not in ("name", "n_envs")}
    return make_batched(env["name"], 1, **params).single_action_space


def agent_values(agent_cls: type, agent: dict[str, Any]):
    """``get(key)``: the agent section's value of ``key``, else the constructor's default (None if none)."""
    params = constructor_params(agent_cls, AGENT_NOT_KEYS)

    def get(key: str) -> Any:
        if key in agent:
            return agent[key]
        p = params.get(key)
        return None if p is None or p.default is inspect.Parameter.empty else p.default

    return get


def _check_replay(agent_cls: type, agent: dict[str, Any], core_cls: type) -> None:
    """seq_len, overlap, burn_in and buffer_size of an off-policy agent's sequence replay."""
    from rlmem.agents import OffPolicyAgent

    if not issubclass(agent_cls, OffPolicyAgent):
        return
    get = agent_values(agent_cls, agent)
    seq_len, overlap, burn_in, size = get("seq_len"), get("overlap"), get("burn_in"), get("buffer_size")
    if seq_len < 2:
        raise ConfigError(f"agent.seq_len={seq_len}: stored sequences need at least 2 rows")
    if overlap >= seq_len:
        raise ConfigError(f"agent.overlap={overlap} must be smaller than agent.seq_len={seq_len} (consecutive "
                          f"sequences of one env share overlap rows)")
    if burn_in >= seq_len and not getattr(core_cls, "bptt_free", False):
        raise ConfigError(f"agent.burn_in={burn_in} must be smaller than agent.seq_len={seq_len}: the rows after "
                          f"the burn-in carry the loss")
    if size < seq_len:
        raise ConfigError(f"agent.buffer_size={size} must hold at least one sequence of agent.seq_len={seq_len} rows")


def _check_rollout(agent_cls: type, agent: dict[str, Any], core_cls: type, env: dict[str, Any],
                   strict_batch: bool = True) -> None:
    """n_steps, seq_len, batch_size and minibatch_seq_len of an on-policy agent against its rollout
    (``strict_batch``: also refuse a batch size larger than the rollout or not dividing it)."""
    from rlmem.agents import OnPolicyAgent

    if not issubclass(agent_cls, OnPolicyAgent):
        return
    get = agent_values(agent_cls, agent)
    n_steps, n_envs = get("n_steps"), env["n_envs"]
    seq_len, batch, group = get("seq_len"), get("batch_size"), get("minibatch_seq_len")
    rollout = n_steps * n_envs
    bptt_free = bool(getattr(core_cls, "bptt_free", False))
    chunk = 1 if bptt_free else (seq_len or n_steps)  # A2C: seq_len null = the whole rollout
    chunk_name = f"the chunk length (core {core_cls.registered_name} trains on single steps)" if bptt_free \
        else f"agent.seq_len={chunk}" if seq_len else f"the chunk length ({chunk}, agent.seq_len=null: n_steps)"
    if n_steps % chunk:
        raise ConfigError(f"agent.n_steps={n_steps} must be a multiple of agent.seq_len={chunk}: rollouts are cut "
                          f"into chunks of seq_len steps; seq_len values that divide {n_steps}: "
                          f"{', '.join(map(str, _near(_divisors(n_steps), chunk, 3)))}")
    batch = rollout if batch is None else batch  # A2C: batch_size null = the whole rollout
    if batch % chunk:
        valid = [chunk * d for d in _divisors(rollout // chunk)]
        raise ConfigError(f"agent.batch_size={batch} must be a multiple of seq_len ({chunk_name}): minibatches "
                          f"hold whole chunks; valid batch sizes near {batch}: "
                          f"{', '.join(map(str, _near(valid, batch)))}")
    group = group or chunk
    if group % chunk or n_steps % group or batch % group:
        raise ConfigError(f"agent.minibatch_seq_len={group} must be a multiple of {chunk_name} and divide "
                          f"agent.n_steps={n_steps} and agent.batch_size={batch}; valid values: "
                          f"{', '.join(str(g) for g in _divisors(math.gcd(n_steps, batch)) if g % chunk == 0)}")
    if not strict_batch:
        return
    valid = [group * d for d in _divisors(rollout // group)]
    where = f"the rollout of agent.n_steps x env.n_envs = {n_steps} x {n_envs} = {rollout} steps"
    if batch > rollout:
        raise ConfigError(f"agent.batch_size={batch} is larger than {where}; use at most {rollout}, e.g. "
                          f"{', '.join(map(str, valid[::-1][:3]))}, or raise agent.n_steps or env.n_envs")
    if rollout % batch:
        raise ConfigError(f"agent.batch_size={batch} must divide {where} (every minibatch the same size); "
                          f"valid batch sizes near {batch}: {', '.join(map(str, _near(valid, batch)))}")


# ------------------------------------------------------------------------------- Gymnasium ids
_GYM_PROBES: dict[str, str | None] = {}


def probe_gym_env(env_id: Any, kwargs: dict[str, Any], prev_action: bool = False, q_values: bool = False) -> None:
    """Make ONE copy of a Gymnasium id and check that rlmem can encode its observations and act in
    its action space (``q_values``: with a Q head, as DQN does); any problem becomes a one-line
    :class:`ConfigError`."""
    memo = json.dumps([env_id, kwargs, prev_action, q_values], sort_keys=True, default=repr)
    if memo not in _GYM_PROBES:
        try:
            _probe_gym_env(env_id, kwargs, prev_action, q_values)
            _GYM_PROBES[memo] = None
        except ConfigError as err:
            _GYM_PROBES[memo] = str(err)
            raise
    elif _GYM_PROBES[memo] is not None:
        raise ConfigError(_GYM_PROBES[memo])


def _probe_gym_env(env_id: str, kwargs: dict[str, Any], prev_action: bool, q_values: bool) -> None:
    import gymnasium

    from rlmem.policy import ActionHead, QHead, UnsupportedSpaceError, make_encoder

    shown = f"env.id={env_id!r}"
    module, sep, name = env_id.partition(":") if ":" in env_id else ("", "", env_id)
    if module:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            missing = err.name or ""
            if missing == module or module.startswith(missing + "."):
                raise ConfigError(f"{shown}: the package {missing!r} is not installed (the part before ':' is a "
                                  f"module to import that registers the id); install it, or drop the "
                                  f"'{module}:' prefix") from err
            raise ConfigError(f"{shown}: importing {module!r} failed, it needs {missing!r}, which is not "
                              f"installed ({err})") from err
        except Exception as err:  # noqa: BLE001
            raise ConfigError(f"{shown}: importing {module!r} failed: {type(err).__name__}: {err}") from err
    try:
        gymnasium.spec(name)
    except gymnasium.error.Error as err:
        close = difflib.get_close_matches(name, list(gymnasium.registry), n=3, cutoff=0.6)
        hint = (f"; close matches: {', '.join(close)}" if close else
                "; an id that a package registers needs the package first: "
                f"env.id=<package>:{name}" if not module else "")
        raise ConfigError(f"{shown}: cannot make Gymnasium env: {str(err).rstrip('.')}{hint}") from err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            env = gymnasium.make(name, **kwargs)
        except gymnasium.error.DependencyNotInstalled as err:
            raise ConfigError(f"{shown} needs a package that is not installed: {err}") from err
        except ImportError as err:
            raise ConfigError(f"{shown} needs a package that is not installed: {err}") from err
        except TypeError as err:
            raise ConfigError(f"{shown}: cannot make Gymnasium env with env.kwargs={_show(kwargs)}: {err}") \
                from err
        except Exception as err:  # noqa: BLE001  the env's own error, on one line
            raise ConfigError(f"{shown}: cannot make Gymnasium env: {type(err).__name__}: {err}") from err
        try:
            obs_space, action_space = env.observation_space, env.action_space
            try:
                make_encoder(obs_space)
            except UnsupportedSpaceError as err:
                raise ConfigError(f"{shown} has an observation space rlmem cannot use: {err}") from err
            try:
                QHead(8, action_space) if q_values else ActionHead(8, action_space)
                if prev_action:
                    make_encoder(action_space)
            except UnsupportedSpaceError as err:
                raise ConfigError(f"{shown} has an action space rlmem cannot use: {err}") from err
        finally:
            try:
                env.close()
            except Exception:  # noqa: BLE001
                pass


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", "; ", str(text).strip())
