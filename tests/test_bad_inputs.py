"""Every bad input gets one line on stderr, ``error: ...`` naming the key, the value and what is
allowed, exit code 2, no traceback, and no run directory: it is found before Hydra starts a run."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import gymnasium
import pytest
import torch

from rlmem.validation import MAX_SWEEP_JOBS, ConfigError, check_command_line, sweep_jobs, validate_config

TESTS = Path(__file__).resolve().parent
HAS_BOX2D = importlib.util.find_spec("Box2D") is not None
GYM = ["env=gym"]
FOREIGN = "foreign_envs:"

# (id, command line, regex the error line must match): run through the CLI, one process each
BAD_INPUTS = [
    ("n_steps-abc", ["agent.n_steps=abc"], r"agent\.n_steps must be an integer >= 1, got 'abc'"),
    ("seed-abc", ["seed=abc"], r"seed must be an integer >= 0, got 'abc'"),
    ("seed-float", ["seed=1.5"], r"seed must be an integer >= 0, got 1\.5"),
    ("device-gpu", ["device=gpu"], r"device must be one of auto, cpu, cuda, cuda:N.*, got 'gpu'"),
    pytest.param("device-cuda", ["device=cuda"], r"device=cuda was asked for, but torch sees no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ("add-agent-key", ["+agent.foo=1"],
     r"unknown key 'agent\.foo' for agent ppo; valid keys of agent: .*batch_size.*n_steps"),
    ("gym-unknown-id", [*GYM, "env.id=NoSuchEnv-v0"],
     r"env\.id='NoSuchEnv-v0': cannot make Gymnasium env: Environment `NoSuchEnv` doesn't exist"),
    ("gym-no-package", [*GYM, "env.id=nosuchpkg:Foo-v0"],
     r"env\.id='nosuchpkg:Foo-v0': the package 'nosuchpkg' is not installed"),
    pytest.param("gym-missing-dependency", [*GYM, "env.id=LunarLander-v3"],
                 r"env\.id='LunarLander-v3' needs a package that is not installed: Box2D .*pip install",
                 marks=pytest.mark.skipif(HAS_BOX2D, reason="Box2D is installed")),
    ("gym-vectorization", [*GYM, "env.vectorization=threads"],
     r"env\.vectorization must be one of sync, async, got 'threads'"),
    ("gym-text-only", [*GYM, f"env.id={FOREIGN}ForeignTextOnly-v0"],
     r"env\.id='foreign_envs:ForeignTextOnly-v0' has an observation space rlmem cannot use: .*Text"),
    ("total_steps-negative", ["total_steps=-5"], r"total_steps must be an integer >= 1, got -5"),
    ("total_steps-zero", ["total_steps=0"], r"total_steps must be an integer >= 1, got 0"),
    ("batch-not-dividing", ["env=t-maze", "agent.batch_size=1536"],
     r"agent\.batch_size=1536 must divide the rollout .* 64 x 64 = 4096 .*near 1536: .*1024, 2048"),
    ("batch-too-large", ["env=t-maze", "agent.batch_size=8192"],
     r"agent\.batch_size=8192 is larger than the rollout .* = 4096 steps; use at most 4096"),
    ("seq_len-not-dividing", ["agent.seq_len=7"],
     r"agent\.n_steps=64 must be a multiple of agent\.seq_len=7.*: .*8, 16"),
    ("dqn-dueling", ["agent=dqn", "agent.dueling=maybe"], r"agent\.dueling must be true or false, got 'maybe'"),
    ("tape-addressing", ["core=tape", "core.addressing=foo"], r"core\.addressing must be one of slot, sinusoidal, got 'foo'"),
    ("counts-levels", ["core=counts", "core.levels=1"], r"core\.levels must be an integer >= 2, got 1"),
    ("gamma", ["agent.gamma=1.5"], r"agent\.gamma must be a number in \[0, 1\], got 1\.5"),
    ("learning_rate-negative", ["agent.learning_rate=-1"], r"agent\.learning_rate must be a finite number > 0, got -1"),
    ("learning_rate-abc", ["agent.learning_rate=abc"], r"agent\.learning_rate must be a finite number > 0, got 'abc'"),
    ("optimizer", ["agent.optimizer=sgd"], r"agent\.optimizer must be one of adam, rmsprop, got 'sgd'"),
    ("lr_schedule", ["agent.lr_schedule=cosine"], r"agent\.lr_schedule must be one of constant, linear, got 'cosine'"),
    ("hidden_size-zero", ["core.hidden_size=0"], r"core\.hidden_size must be an integer >= 1, got 0"),
    ("hidden_size-abc", ["core.hidden_size=abc"], r"core\.hidden_size must be an integer >= 1, got 'abc'"),
    ("tmm-slots", ["core=tmm", "core.slots=0"], r"core\.slots=0 is refused by core tmm: .*slots >= 1"),
    ("tmm-surprise", ["core=tmm", "core.surprise=foo"],
     r"core\.surprise='foo' is refused by core tmm: .*must be one of prediction, novelty"),
    ("ntm-controller", ["core=ntm", "core.controller=rnn"], r"core\.controller must be one of lstm, gru, mlp, got 'rnn'"),
    ("corridor", ["env=t-maze", "env.corridor=-1"], r"env\.corridor must be an integer >= 0, got -1"),
    ("n_envs", ["env=t-maze", "env.n_envs=0"], r"env\.n_envs must be an integer >= 1, got 0"),
    ("eval_episodes", ["eval_episodes=-1"], r"eval_episodes must be an integer >= 0, got -1"),
    ("checkpoint_every", ["checkpoint_every=-1"], r"checkpoint_every must be an integer >= 0, got -1"),
    ("stop_return", ["stop_return=high"], r"stop_return must be a number or null, got 'high'"),
    ("embed_size", ["policy.embed_size=-3"], r"policy\.embed_size must be an integer >= 0, got -3"),
    ("syntax", ["agent.n_steps=[1"], r"cannot parse override 'agent\.n_steps=\[1'"),
    ("sweep-one-bad-value", ["-m", "agent.gamma=0.9,2.0"],
     r"agent\.gamma must be a number in \[0, 1\], got 2\.0 \(in the sweep job agent\.gamma=2\.0\)"),
]

# More bad inputs, checked in this process (check_command_line is what the CLI runs first).
MORE_BAD_INPUTS = [
    ("n_steps-empty", ["agent.n_steps="], r"agent\.n_steps must be an integer >= 1, got ''"),
    ("n_epochs-bool", ["agent.n_epochs=true"], r"agent\.n_epochs must be an integer >= 1, got true"),
    ("learning_rate-inf", ["agent.learning_rate=inf"], r"agent\.learning_rate must be a finite number > 0, got inf"),
    ("gae_lambda-nan", ["agent.gae_lambda=nan"], r"agent\.gae_lambda must be a number in \[0, 1\], got nan"),
    ("clip_range", ["agent.clip_range=0"], r"agent\.clip_range must be a finite number > 0, got 0"),
    ("optimizer_eps", ["agent=dqn", "agent.optimizer_eps=0"], r"agent\.optimizer_eps must be a finite number > 0, got 0"),
    ("a2c-seq_len", ["agent=a2c", "agent.seq_len=0"], r"agent\.seq_len must be an integer >= 1 or null, got 0"),
    ("ppo-seq_len-null", ["agent.seq_len=null"], r"agent\.seq_len must be an integer >= 1, got null"),
    ("batch-not-chunks", ["agent.batch_size=100"], r"agent\.batch_size=100 must be a multiple of seq_len"),
    ("minibatch_seq_len", ["agent.minibatch_seq_len=24"],
     r"agent\.minibatch_seq_len=24 must be a multiple of agent\.seq_len=16 and divide agent\.n_steps=64"),
    ("a2c-batch-too-large", ["agent=a2c", "+agent.batch_size=2048"],
     r"agent\.batch_size=2048 is larger than the rollout .* 16 x 64 = 1024"),
    ("delete-agent-key", ["~agent.n_steps", "agent=a2c"], None),  # A2C has a default: accepted
    ("gym-close-match", [*GYM, "env.id=CartPol-v1"], r"env\.id='CartPol-v1'.*close matches: CartPole-v1"),
    ("gym-bad-kwargs", [*GYM, "+env.kwargs.foo=1"], r"env\.id='CartPole-v1'.*env\.kwargs=\{\"foo\": 1\}.*'foo'"),
    ("gym-add-key", [*GYM, "+env.foo=1"], r"unknown key 'env\.foo' for env gym; valid keys of env: id, kwargs"),
    ("gym-2d-box-action", [*GYM, f"env.id={FOREIGN}ForeignMatrixAction-v0"],
     r"env\.id='foreign_envs:ForeignMatrixAction-v0' has an action space rlmem cannot use: .*\(2, 2\)"),
    ("gym-unknown-id-in-package", [*GYM, f"env.id={FOREIGN}NoSuch-v0"], r"Environment `NoSuch` doesn't exist"),
    ("builtin-add-key", ["env=t-maze", "+env.length=3"],
     r"unknown key 'env\.length' for env t-maze; valid keys of env: corridor, n_envs, name"),
    ("core-add-key", ["core=gru", "+core.slots=3"], r"unknown key 'core\.slots' for core gru; valid keys of core: hidden_size"),
    ("tmm-heads", ["core=tmm", "core.heads=3"], r"core\.heads=3 is refused by core tmm: .*heads >= 1 dividing hidden_size"),
    ("ntm-shift", ["core=ntm", "core.memory_size=2"], r"core\.memory_size=2 is refused by core ntm: .*needs at least 3"),
    ("gated-bias", ["core=gated", "core.gate_bias=abc"], r"core\.gate_bias must be a number, got 'abc'"),
    ("memory-copy-bits", ["env=memory-copy", "env.bits=0"], r"env\.bits"),
    ("policy-add-key", ["+policy.foo=1"], r"unknown key 'policy\.foo' for the policy; valid keys of policy: embed_size"),
    ("prev_action", ["policy.prev_action=1"], r"policy\.prev_action must be true or false, got 1"),
    ("wandb-mode", ["logger=wandb", "logger.wandb.mode=foo"],
     r"logger\.wandb\.mode must be one of online, offline, disabled or null, got 'foo'"),
    ("wandb-add-key", ["logger=wandb", "+logger.wandb.foo=1"], r"unknown key 'logger\.wandb\.foo'.*project"),
    ("progress", ["progress=maybe"], r"progress must be true or false, got 'maybe'"),
    ("torch_threads", ["torch_threads=-1"], r"torch_threads must be an integer >= 0 or null, got -1"),
    ("device-index", ["device=cuda:x"], r"device must be one of .*got 'cuda:x'"),
    ("interpolation", ["seed=${nope}"], r"cannot resolve the config: .*nope"),
    ("no-equal", ["foo"], r"cannot parse override 'foo': missing EQUAL"),
    ("sweep-without-m", ["seed=0,1"], r"seed=0,1 is a sweep .*add -m"),
    ("sweep-bad-group", ["-m", "core=gru,foo"], r"unknown core 'foo'; valid choices: .*tmm"),
    ("unknown-key", ["agent.lr=0.1"], r"unknown key 'agent\.lr'; valid keys of agent: .*learning_rate"),
]


@pytest.fixture
def foreign_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def cli_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlmem.train", *args], cwd=cwd, env=env or cli_env(), text=True,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("name, args, pattern", BAD_INPUTS, ids=[
    p.values[0] if hasattr(p, "values") else p[0] for p in BAD_INPUTS])
def test_a_bad_input_gets_one_error_line_and_exit_code_2(name, args, pattern, tmp_path):
    start = time.perf_counter()
    out = run_cli(args, tmp_path)
    seconds = time.perf_counter() - start
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert lines and lines[-1].startswith("error: "), out.stderr[-3000:]
    assert re.search(pattern, lines[-1]), lines[-1]
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()
    assert not out.stdout.strip(), out.stdout[-2000:]
    print(f"{name}: {seconds:.2f} s")


@pytest.mark.parametrize("name, args, pattern", MORE_BAD_INPUTS, ids=[r[0] for r in MORE_BAD_INPUTS])
def test_more_bad_inputs_are_refused_before_anything_runs(name, args, pattern, foreign_on_path):
    if pattern is None:
        check_command_line(args)
        return
    with pytest.raises(ConfigError) as info:
        check_command_line(args)
    message = str(info.value)
    assert "\n" not in message and re.search(pattern, message), message


def test_hydra_full_error_shows_the_traceback(tmp_path):
    out = run_cli(["agent.gamma=1.5"], tmp_path, env={**cli_env(), "HYDRA_FULL_ERROR": "1"})
    assert out.returncode != 0 and "Traceback" in out.stderr and "ConfigError" in out.stderr
    assert not (tmp_path / "outputs").exists()


# ------------------------------------------------------------------ in-process: what is accepted
@pytest.mark.parametrize("args", [
    [],
    ["agent=a2c", "core=tmm", "env=memory-copy"],
    ["env=gym"],  # PPO's default batch_size exceeds the 8 copies' rollout: the whole rollout is one minibatch
    ["env=gym", "env.id=CartPole-v1", "env.vectorization=async", "+env.kwargs.sutton_barto_reward=true"],
    ["env=gym", "env.id=rlmem.envs:rlmem/TMaze-v0", "+env.kwargs.corridor=2"],
    ["env=gym", "env.id=minigrid:MiniGrid-Empty-5x5-v0"],  # Dict with a MissionSpace part: left out
    ["env=gym", f"env.id={FOREIGN}ForeignDictText-v0", "policy.prev_action=true"],
    ["env=gym", f"env.id={FOREIGN}ForeignTupleGraph-v0"],
    ["-m", "core=gru,tmm", "seed=0,1", "env=t-maze"],
    ["--multirun", "core=glob(g*)", "agent.gamma=0.9,0.99"],
    ["agent=ppo", "core=gru", "env=memory-copy", "policy.head_size=128", "agent.gamma=0", "agent.seq_len=11",
     "agent.n_steps=66", "agent.batch_size=264", "agent.n_epochs=10"],
    ["agent.learning_rate=1", "stop_return=1", "device=cpu", "torch_threads=null", "agent.clip_range_vf=0.2"],
    ["--cfg", "job", "agent.gamma=5"],  # prints the config, runs nothing: values are not checked
    ["--help"],
    ["hydra.run.dir=/tmp/x", "hydra/launcher=basic", "hydra.job.chdir=true"],
    ["resume=/some/run", "agent.gamma=5"],  # the config comes from the checkpoint
    ["--config-name", "other"],
], ids=lambda a: " ".join(a) or "defaults")
def test_good_command_lines_pass(args, foreign_on_path):
    check_command_line(args)


def test_names_are_still_checked_when_values_are_not():
    with pytest.raises(ConfigError, match="unknown key 'agent.gama'"):
        check_command_line(["resume=/some/run", "agent.gama=0.9"])
    with pytest.raises(ConfigError, match="unknown core 'foo'"):
        check_command_line(["--cfg", "job", "core=foo"])


def test_a_sweep_is_checked_job_by_job():
    # only core=gru (chunks of 16) refuses seq_len 7 with n_steps 64; tmm trains on single steps
    check_command_line(["-m", "core=tmm", "agent.seq_len=7"])
    with pytest.raises(ConfigError, match=r"agent.seq_len=7.*\(in the sweep job core=gru seed=0\)"):
        check_command_line(["-m", "core=tmm,gru", "seed=0,1", "agent.seq_len=7"])


def test_a_large_sweep_checks_every_value_once():
    swept = [("seed", [str(i) for i in range(30)]), ("core", ["gru", "lstm", "tmm"]), ("agent.gamma", ["0.9", "2"])]
    jobs = list(sweep_jobs(swept))
    assert 30 * 3 * 2 > MAX_SWEEP_JOBS and len(jobs) == 1 + 29 + 2 + 1
    assert ["seed=0", "core=gru", "agent.gamma=2"] in jobs and ["seed=29", "core=gru", "agent.gamma=0.9"] in jobs
    assert len(list(sweep_jobs(swept[1:]))) == 6


def test_the_python_api_raises_config_error(tmp_path):
    from rlmem.train import train

    with pytest.raises(ConfigError, match=r"agent\.gamma must be a number in \[0, 1\], got 1\.5"):
        train(["agent.gamma=1.5"], run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_validate_config_checks_a_composed_config():
    from rlmem.overrides import compose_config

    cfg = compose_config(["env=t-maze"])
    validate_config(cfg)
    cfg.agent.n_epochs = 0
    with pytest.raises(ConfigError, match=r"agent\.n_epochs must be an integer >= 1, got 0"):
        validate_config(cfg)
    cfg = compose_config(["env=t-maze", "agent.batch_size=8192"])
    validate_config(cfg)  # not asked for on a command line: the agent takes the whole rollout
    with pytest.raises(ConfigError, match="larger than the rollout"):
        validate_config(cfg, explicit=["agent.batch_size"])


# ---------------------------------------------------------------------------- the foreign envs
@pytest.mark.parametrize("env_id", ["ForeignDictText-v0", "ForeignTupleGraph-v0", "ForeignTextOnly-v0",
                                    "ForeignMatrixAction-v0"])
def test_foreign_envs_pass_gymnasiums_checker_and_are_deterministic(env_id, foreign_on_path):
    from gymnasium.utils.env_checker import check_env, data_equivalence

    import foreign_envs  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker warns about anything off
        check_env(gymnasium.make(env_id).unwrapped, skip_render_check=True)
    runs = []
    for _ in range(2):
        env = gymnasium.make(env_id)
        obs, _ = env.reset(seed=7)
        env.action_space.seed(7)
        trace = [obs]
        for _ in range(10):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            trace += [obs, reward, terminated]
            if terminated or truncated:
                trace.append(env.reset()[0])
        runs.append(trace)
    assert data_equivalence(runs[0], runs[1])
