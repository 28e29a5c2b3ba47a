"""Checks command-line overrides before Hydra runs, so that a wrong name or key is refused with
the valid choices instead of a bare 'not in struct'."""

from __future__ import annotations

import importlib.util
import re
import warnings
from contextlib import contextmanager
from importlib import resources
from typing import Callable, Iterator

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from omegaconf import DictConfig, OmegaConf

CONFIG_MODULE = "rlmem.configs"
GROUPS = ("agent", "core", "env", "logger")

#: Hydra's command-line flags that take a value (``--cfg job``, ``-cn other``).
VALUE_FLAGS = frozenset({"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                         "--config-dir", "-cd", "--experimental-rerun"})
#: ``--info`` takes an optional value from this list.
INFO_CHOICES = frozenset({"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"})

#: ``hydra/launcher=NAME`` launchers that need packages: NAME -> (their distributions, modules, rlmem extra).
LAUNCHER_EXTRAS = {
    "ray": ("hydra-ray-launcher and ray", ("hydra_plugins.hydra_ray_launcher", "ray"), "ray"),
    "ray_aws": ("hydra-ray-launcher and ray", ("hydra_plugins.hydra_ray_launcher", "ray"), "ray"),
    "submitit_slurm": ("hydra-submitit-launcher", ("hydra_plugins.hydra_submitit_launcher", "submitit"), "slurm"),
    "submitit_local": ("hydra-submitit-launcher", ("hydra_plugins.hydra_submitit_launcher", "submitit"), "slurm"),
    "joblib": ("hydra-joblib-launcher", ("hydra_plugins.hydra_joblib_launcher", "joblib"), None),
}

# configs/hydra/launcher/{joblib,ray,submitit_slurm,submitit_local}.yaml take the place of the launchers' own
# configs of those names; Hydra still merges each into that config's schema, and says that matching a
# schema by name is deprecated.
warnings.filterwarnings("ignore", category=UserWarning,
                        message=r"\s*'hydra/launcher/(joblib|ray|submitit_slurm|submitit_local)' is validated against "
                                r"ConfigStore schema")


def group_options(group: str) -> list[str]:
    """Names of the configs in one group (``agent``, ``core``, ``env``, ``logger``)."""
    folder = resources.files(CONFIG_MODULE).joinpath(group)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def compose_config(overrides: list[str]) -> DictConfig:
    """The composed training config for ``overrides`` (no sweeps), outside a Hydra run."""
    with composer() as compose_one:
        return compose_one(overrides)


@contextmanager
def composer() -> Iterator[Callable[[list[str]], DictConfig]]:
    """A function that composes the training config for a list of overrides; Hydra is set up once
    for all the calls made inside the ``with`` block (a sweep composes one config per job)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            yield lambda overrides: compose(config_name="config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def split_command_line(args: list[str]) -> tuple[list[str], list[str]]:
    """``(overrides, flags)`` of a command line: Hydra's flags with their values (``--cfg job``) go
    to ``flags``, every other word is an override (``key=value``, ``+key=value``, ``~key``)."""
    overrides: list[str] = []
    flags: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and not arg.startswith("~"):
            flags.append(arg)
            name = arg.split("=", 1)[0]
            takes_value = name in VALUE_FLAGS or (name in ("--info", "-i") and i + 1 < len(args)
                                                  and args[i + 1] in INFO_CHOICES)
            if takes_value and "=" not in arg and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(arg)
        i += 1
    return overrides, flags


def is_hydra_key(text: str) -> bool:
    """``hydra.run.dir=...``, ``hydra/launcher=...``: Hydra's own settings, left to Hydra."""
    key = text.lstrip("+~").split("=", 1)[0].split("@", 1)[0]
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def launcher_problem(text: str) -> str | None:
    """None unless ``text`` (``hydra/launcher=NAME``) selects a launcher whose package is not
    installed; then what to install."""
    key, _, name = text.lstrip("+").partition("=")
    if key.replace(" ", "") != "hydra/launcher" or name.strip() not in LAUNCHER_EXTRAS:
        return None
    packages, modules, extra = LAUNCHER_EXTRAS[name.strip()]
    if all(_importable(m) for m in modules):
        return None
    how = f"pip install 'rlmem[{extra}]'" if extra else "pip install hydra-joblib-launcher (an rlmem dependency)"
    return f"{text}: the {name.strip()} launcher needs {packages}, not installed here: {how}"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", "; ", str(text).strip())


def parse_override(text: str) -> Override:
    """One override parsed by Hydra's grammar; ``ValueError`` with a one-line reason if it is not valid."""
    try:
        return OverridesParser.create().parse_overrides([text])[0]
    except Exception as err:  # noqa: BLE001  hydra raises several types for syntax errors
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith("Error parsing override")]
        see = [ln for ln in lines if ln.startswith("See ")]
        reason = "; ".join(ln for ln in lines if not ln.startswith("See ")) or type(err).__name__
        hint = f" ({see[0][0].lower()}{see[0][1:]})" if see else ""
        raise ValueError(f"cannot parse override {text!r}: {reason}{hint}") from None


def override_values(ov: Override) -> list[str]:
    """The values of one override as override strings: one for a plain value, one per job for a
    sweep (``a,b``, ``choice(...)``, ``range(...)``, ``glob(...)`` of a group)."""
    if not ov.is_sweep_override():
        return [ov.get_value_element_as_str()]
    if ov.value_type == ValueType.GLOB_CHOICE_SWEEP:
        if ov.key_or_group not in GROUPS:
            raise ValueError(f"{ov.input_line}: glob(...) sweeps only config groups ({', '.join(GROUPS)})")
        names = ov.value().filter(group_options(ov.key_or_group))
        if not names:
            raise ValueError(f"{ov.input_line} matches no {ov.key_or_group}; valid choices: "
                             f"{', '.join(group_options(ov.key_or_group))}")
        return names
    return list(ov.sweep_string_iterator())


def check_overrides(args: list[str]) -> str | None:
    """None if ``args`` are valid overrides, else a message that names the problem and the choices.

    Hydra's own flags (``-m``, ``--cfg`` ...) and ``hydra.*`` / ``hydra/...`` keys are left to Hydra.
    """
    overrides, _ = split_command_line(args)
    parsed: list[Override] = []
    for text in overrides:
        if is_hydra_key(text):
            continue
        try:
            parsed.append(parse_override(text))
        except ValueError as err:
            return str(err)
    first: list[str] = []
    for ov in parsed:
        key = ov.key_or_group
        try:
            values = override_values(ov)
        except ValueError as err:
            return str(err)
        except Exception:  # noqa: BLE001  e.g. interval(...), which only some sweepers take
            values = [ov.get_value_element_as_str()] if not ov.is_sweep_override() else []
        if key in GROUPS and not ov.is_add():
            valid = group_options(key)
            bad = [v for v in values if v not in valid]
            if bad:
                return f"unknown {key} {', '.join(map(repr, bad))}; valid choices: {', '.join(valid)}"
        prefix = "++" if ov.is_force_add() else "+" if ov.is_add() else "~" if ov.is_delete() else ""
        if ov.is_delete():
            first.append(f"~{key}")
        elif values:
            first.append(f"{prefix}{key}={values[0]}")
        else:
            first.append("")
    group_choices = [o for o in first if o.split("=")[0] in GROUPS]
    try:
        cfg = compose_config(group_choices)
    except Exception as err:  # noqa: BLE001
        return f"cannot compose the config for {' '.join(group_choices)}: {_one_line(err)}"
    for ov in parsed:
        key = ov.key_or_group
        if key in GROUPS or ov.is_add() or ov.is_force_add():
            continue
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if not isinstance(parent, DictConfig):
            return f"unknown key {key!r}: {parent_key!r} is not a config section"
        if leaf not in parent:
            where = f"of {parent_key}" if parent_key else "at the top level"
            return (f"unknown key {key!r}; valid keys {where}: {', '.join(sorted(map(str, parent.keys())))}"
                    f" (prefix with '+' to add a new key)")
    return None
