"""Sweeps through Hydra's launchers, as users run them: ``python -m rlmem.train -m hydra/launcher=...``.

Each launcher must write the basic launcher's per-job outputs, and a failed job must come back as
one ``error:`` line. The Ray sweep starts a local cluster, which must listen on the loopback address
only and be gone when the command returns.
"""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlmem import overrides
from rlmem.validation import ConfigError, check_command_line

FAST = ["env=t-maze", "env.corridor=2", "total_steps=2048", "eval_episodes=0", "progress=false", "env.n_envs=8",
        "agent.n_steps=32", "agent.batch_size=128", "core.hidden_size=16", "policy.embed_size=16"]

try:
    import ray  # noqa: F401
    import hydra_plugins.hydra_ray_launcher  # noqa: F401

    HAVE_RAY = True
except ImportError:
    HAVE_RAY = False


def run_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1",
            "RAY_USAGE_STATS_ENABLED": "0", **extra}


def cli(args: list[str], cwd: Path, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlmem.train", *args], cwd=cwd, env=run_env(**env), text=True,
                          capture_output=True, timeout=timeout)


def finished_jobs(sweep: Path) -> dict[str, dict]:
    """{job directory name: summary} of every job of a sweep directory that wrote a summary."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))}


def assert_basic_outputs(sweep: Path, expected: set[tuple[str, int]]) -> None:
    jobs = finished_jobs(sweep)
    assert {(s["core"], s["seed"]) for s in jobs.values()} == expected, jobs
    for name, summary in jobs.items():
        assert summary["status"] == "finished" and summary["env_steps"] >= 2048
        assert name.endswith(f"_ppo_{summary['core']}_t-maze_seed{summary['seed']}"), name
        run_dir = sweep / name
        assert Path(summary["run_dir"]).resolve() == run_dir.resolve()
        for output in ("progress.csv", "checkpoint.pt", ".hydra/config.yaml"):
            assert (run_dir / output).exists(), output


def final_lines(text: str) -> list[dict]:
    return [json.loads(ln.split("final: ", 1)[1]) for ln in text.splitlines() if "final: {" in ln]


def test_joblib_sweep_runs_the_jobs_in_parallel_and_writes_each_jobs_outputs(tmp_path):
    sweep = tmp_path / "sweep"
    out = cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "core=gru,tmm", "seed=3", *FAST,
               f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in out.stdout
    assert_basic_outputs(sweep, {("gru", 3), ("tmm", 3)})
    assert sorted(s["core"] for s in final_lines(out.stdout)) == ["gru", "tmm"]


def test_a_failed_job_is_one_error_line_after_the_other_jobs(tmp_path):
    # --config-dir leaves the command line to Hydra, so the bad value reaches the job itself
    (tmp_path / "extra").mkdir()
    sweep = tmp_path / "sweep"
    out = cli(["-m", "--config-dir", str(tmp_path / "extra"), "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
               "env.corridor=2,-1", *[a for a in FAST if not a.startswith("env.corridor")], "checkpoint=false",
               f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == ("error: env.corridor must be an integer >= 0, got -1 "
                                                  "(in the sweep job env.corridor=-1)"), out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert [s["status"] for s in finished_jobs(sweep).values()] == ["finished"]  # the good job ran to its end


def listening(procs) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every TCP socket in LISTEN and bound UDP socket of ``procs``."""
    import psutil

    found = []
    for proc in procs:
        try:
            conns = proc.net_connections(kind="inet") if hasattr(proc, "net_connections") else proc.connections("inet")
            name = proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        for c in conns:
            if c.laddr and (c.status == psutil.CONN_LISTEN or c.type == 2):  # SOCK_DGRAM: bound UDP
                found.append((name, c.laddr.ip, c.laddr.port))
    return found


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


@pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (pip install 'rlmem[ray]'; the dev extra has it)")
def test_ray_sweep_stays_on_loopback_writes_each_jobs_outputs_and_shuts_down(tmp_path):
    import psutil

    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=ray", "hydra.launcher.ray.init.num_cpus=2", "core=gru", "seed=0,1", *FAST,
            f"hydra.sweep.dir={sweep}"]
    with open(tmp_path / "out.txt", "w") as stdout, open(tmp_path / "err.txt", "w") as stderr:
        driver = subprocess.Popen([sys.executable, "-m", "rlmem.train", *args], cwd=tmp_path, env=run_env(),
                                  stdout=stdout, stderr=stderr, text=True)
        root = psutil.Process(driver.pid)
        seen: dict[int, psutil.Process] = {}
        sockets: set[tuple[str, str, int]] = set()
        deadline = time.monotonic() + 300
        while driver.poll() is None and time.monotonic() < deadline:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            seen.update((p.pid, p) for p in procs[1:])
            sockets.update(listening(procs))
            time.sleep(0.2)
        if driver.poll() is None:
            driver.kill()
        driver.wait()
    out, err = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    assert driver.returncode == 0, err[-3000:]
    assert_basic_outputs(sweep, {("gru", 0), ("gru", 1)})
    assert sorted(s["seed"] for s in final_lines(out)) == [0, 1], out[-3000:]

    names = {name for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, f"no Ray server was seen listening: {sorted(sockets)}"
    outside = sorted(s for s in sockets if not is_loopback(s[1]))
    assert not outside, f"listening beyond the loopback address: {outside}"
    assert not any(p == 8265 for _, _, p in sockets), "the dashboard is on"

    gone_by = time.monotonic() + 20  # Ray's own processes end with the driver
    left = [p for p in seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    while left and time.monotonic() < gone_by:
        time.sleep(0.25)
        left = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"left running: {[(p.pid, p.name()) for p in left]}"


def test_the_pre_check_lets_launcher_settings_through_and_names_a_missing_launcher(monkeypatch):
    check_command_line(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "core=gru,tmm", "seed=0,1",
                        "env=t-maze"])
    check_command_line(["-m", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=cpu",
                        "hydra.launcher.timeout_min=120", "core=gru", "seed=0,1", "env=t-maze"])
    monkeypatch.setattr(overrides, "_importable", lambda module: False)
    with pytest.raises(ConfigError, match=r"hydra/launcher=ray: the ray launcher needs hydra-ray-launcher and ray, "
                                          r"not installed here: pip install 'rlmem\[ray\]'"):
        check_command_line(["-m", "hydra/launcher=ray", "core=gru,tmm", "env=t-maze"])
    with pytest.raises(ConfigError, match=r"pip install 'rlmem\[slurm\]'"):
        check_command_line(["-m", "hydra/launcher=submitit_slurm", "core=gru,tmm", "env=t-maze"])


def test_a_job_error_travels_as_a_plain_exception():
    import pickle

    from rlmem.agents import NonFiniteError
    from rlmem.launchers import JobError, _ReportErrors

    def diverges(cfg):
        raise NonFiniteError("loss", 256, "update 1")

    before = os.environ.get("HYDRA_FULL_ERROR")
    with pytest.raises(JobError) as caught:
        _ReportErrors(diverges)(None)
    assert os.environ.get("HYDRA_FULL_ERROR") == before
    again = pickle.loads(pickle.dumps(caught.value))  # NonFiniteError itself does not unpickle
    assert again.code == 1 and str(again) == "non-finite loss at env step 256 (update 1); training stopped"


def fake_slurm(bin_dir: Path, record: Path) -> None:
    """``srun`` (so that submitit takes this for a SLURM node) and an ``sbatch`` that keeps the job
    script it is given and refuses to submit it."""
    bin_dir.mkdir()
    scripts = {"srun": "#!/bin/sh\nexit 0\n",
               "sbatch": f'#!/bin/sh\ncp "$1" "{record}"\necho "sbatch: error: not submitted (test)" >&2\nexit 1\n'}
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


CLUSTER_CONFIG = """\
# hydra/launcher=my_cluster: rlmem's submitit_slurm with this cluster's settings
defaults:
  - submitit_slurm
partition: cpu
account: my-lab
timeout_min: 180        # minutes per run
cpus_per_task: 1        # = torch_threads
mem_gb: 4
array_parallelism: 32   # runs of one sweep at once
setup:                  # before each run, on the node
  - source $HOME/rlmem/.venv/bin/activate
"""


def test_slurm_config_composes_and_renders_the_sbatch_script(tmp_path):
    out = cli(["hydra/launcher=submitit_slurm", "hydra.launcher.partition=cpu", "hydra.launcher.timeout_min=120",
               "env=t-maze", "--cfg", "hydra", "--package", "hydra.launcher"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    for line in ("_target_: hydra_plugins.rlmem_launcher.submitit_launcher.SlurmLauncher", "partition: cpu",
                 "timeout_min: 120", "cpus_per_task: 1", "mem_gb: 4"):
        assert line in out.stdout.splitlines(), out.stdout
    assert "deprecated" not in out.stderr, out.stderr

    # a cluster's own launcher config, as the README shows it, submitted to an sbatch that refuses
    conf = tmp_path / "conf" / "hydra" / "launcher"
    conf.mkdir(parents=True)
    (conf / "my_cluster.yaml").write_text(CLUSTER_CONFIG)
    record = tmp_path / "job.sh"
    fake_slurm(tmp_path / "bin", record)
    sweep = tmp_path / "sweep"
    out = cli(["-m", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "hydra/launcher=my_cluster", "core=gru,tmm",
               "seed=0", *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
              PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert out.returncode != 0 and "not submitted (test)" in out.stderr, out.stderr[-3000:]
    script = record.read_text()
    for line in ("#SBATCH --partition=cpu", "#SBATCH --account=my-lab", "#SBATCH --time=180",
                 "#SBATCH --cpus-per-task=1", "#SBATCH --mem=4GB", "#SBATCH --array=0-1%2",
                 "#SBATCH --ntasks-per-node=1", "source $HOME/rlmem/.venv/bin/activate"):
        assert line in script.splitlines(), script
    assert f"{sweep}/.submitit/%A_%a" in script and f"{sys.executable} -u -m submitit.core._submit" in script
