"""Checks command-line overrides before Hydra runs, so that a wrong name or key is refused with
the valid choices instead of a bare 'not in struct'."""

from __future__ import annotations

from importlib import resources

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

CONFIG_MODULE = "rlmem.configs"
GROUPS = ("agent", "core", "env", "logger")


def group_options(group: str) -> list[str]:
    """Names of the configs in one group (``agent``, ``core``, ``env``, ``logger``)."""
    folder = resources.files(CONFIG_MODULE).joinpath(group)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def compose_config(overrides: list[str]) -> DictConfig:
    """The composed training config for ``overrides`` (no sweeps), outside a Hydra run."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def check_overrides(args: list[str]) -> str | None:
    """None if ``args`` are valid overrides, else a message that names the problem and the choices.

    Hydra's own flags (``-m``, ``--cfg`` ...) and ``hydra.*`` keys are left to Hydra.
    """
    # Flags and their values (``--cfg job``, ``-m``) and ``hydra.*`` keys are Hydra's to check.
    plain = [a for a in args if not a.startswith("-") and "=" in a and not a.lstrip("+~").startswith("hydra.")]
    try:
        parsed = OverridesParser.create().parse_overrides(plain)
    except Exception as err:  # noqa: BLE001  hydra raises several types for syntax errors
        return f"cannot parse overrides: {err}"
    first: list[str] = []
    for ov in parsed:
        key = ov.key_or_group
        values = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.get_value_element_as_str()]
        if key in GROUPS and not ov.is_add():
            valid = group_options(key)
            bad = [v for v in values if v not in valid]
            if bad:
                return f"unknown {key} {', '.join(map(repr, bad))}; valid choices: {', '.join(valid)}"
        prefix = "++" if ov.is_force_add() else "+" if ov.is_add() else "~" if ov.is_delete() else ""
        first.append(f"{prefix}{key}={values[0]}" if not ov.is_delete() else f"~{key}")
    group_choices = [o for o in first if o.split("=")[0] in GROUPS]
    cfg = compose_config(group_choices)
    for ov, text in zip(parsed, first):
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
