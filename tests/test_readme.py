"""The README's Python examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index])
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_readme_names_the_test_command_that_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in README.read_text() and "make test" in ci


def _train_commands() -> list[tuple[list[str], str | None]]:
    """The README's ``python -m rlmem.train ...`` command lines (continuations joined), as argv,
    each with the ``error: ...`` line the README shows under it (None if it shows none)."""
    import shlex

    lines = README.read_text().replace("\\\n", " ").splitlines()
    commands = []
    for i, line in enumerate(lines):
        line = line.strip().removeprefix("$ ")
        for prefix in ("WANDB_MODE=offline ", "HYDRA_FULL_ERROR=1 "):
            line = line.removeprefix(prefix)
        if line.startswith("python -m rlmem.train"):
            args = shlex.split(line.split("#", 1)[0])[3:]
            shown = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if not any(a.startswith("resume=") for a in args):  # those need a run to resume
                commands.append((args, shown if shown.startswith("error: ") else None))
    return commands


@pytest.mark.parametrize("args, shown", _train_commands(), ids=lambda a: " ".join(a)[:60] if isinstance(a, list) else "")
def test_readme_training_commands_pass_validation_or_fail_as_shown(args, shown):
    """Every training command the README shows is valid as written, or, where the README shows
    the error it gets, is refused with exactly that line (errors found while training excepted)."""
    from rlmem.validation import ConfigError, check_command_line

    if shown is None or "non-finite" in shown:
        check_command_line(args)
        return
    if "Box2D" in shown:
        import importlib.util

        if importlib.util.find_spec("Box2D") is not None:
            pytest.skip("Box2D is installed here, so the README's example error cannot occur")
    with pytest.raises(ConfigError) as err:
        check_command_line(args)
    assert f"error: {err.value}" == shown
