"""rlmem installs as one distribution: envs/, agents/ and configs/ live under the rlmem name."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_subpackages_import_from_any_directory(tmp_path):
    code = ("import rlmem.envs, rlmem.agents, rlmem.configs, rlmem.train; "
            "from rlmem.overrides import group_options; print(group_options('core'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "gru" in out.stdout


def test_installing_does_not_claim_generic_top_level_names(tmp_path):
    out = subprocess.run([sys.executable, "-c", "import envs"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0  # only rlmem.envs exists once installed


def test_wheel_contains_configs_envs_and_agents(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("rlmem-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("rlmem/configs/config.yaml", "rlmem/configs/agent/ppo.yaml", "rlmem/configs/core/gru.yaml",
                     "rlmem/configs/env/t-maze.yaml", "rlmem/envs/t_maze.py", "rlmem/agents/ppo.py",
                     "rlmem/cores/gru.py", "rlmem/notation/compiler.py", "rlmem/configs/core/specs/gru_textbook.arrow",
                     "rlmem/configs/hydra/launcher/ray.yaml", "hydra_plugins/rlmem_launcher/ray_launcher.py",
                     "rlmem/evaluate.py", "rlmem/plot.py", "rlmem/logging/media.py"):
        assert required in names, required
    assert not any(n.startswith(("envs/", "agents/", "configs/")) for n in names)
