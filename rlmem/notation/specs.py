"""Finding a spec: a built-in name (``gru``), a file (``./my_cell.arrow``), or the text itself."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: Built-in specs live in the config package: ``configs/core/specs/NAME.arrow``.
SPEC_PACKAGE, SPEC_FOLDER, SPEC_SUFFIX = "rlmem.configs", ("core", "specs"), ".arrow"


def _folder():
    folder = resources.files(SPEC_PACKAGE)
    for part in SPEC_FOLDER:
        folder = folder.joinpath(part)
    return folder


def builtin_specs() -> list[str]:
    """Names of the built-in specs (``core.spec=NAME``)."""
    folder = _folder()
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(SPEC_SUFFIX)] for p in folder.iterdir() if p.name.endswith(SPEC_SUFFIX))


def read_spec(spec: str) -> tuple[str, str]:
    """``(file name for messages, text)`` of ``spec``: spec text (it has a line break), a path (it has a
    slash, ends in ``.arrow`` or names an existing file), or a built-in name. Raises ValueError."""
    if "\n" in spec:
        return "<spec>", spec
    path = Path(spec).expanduser()
    if "/" in spec or "\\" in spec or spec.endswith(SPEC_SUFFIX) or path.is_file():
        if not path.is_file():
            raise ValueError(f"spec file {spec} does not exist (built-in specs: {', '.join(builtin_specs())})")
        return spec, path.read_text(encoding="utf-8")
    names = builtin_specs()
    if spec not in names:
        raise ValueError(f"spec {spec!r} is neither a file nor a built-in spec; built-in specs: {', '.join(names)}")
    return f"{spec}{SPEC_SUFFIX}", _folder().joinpath(spec + SPEC_SUFFIX).read_text(encoding="utf-8")
