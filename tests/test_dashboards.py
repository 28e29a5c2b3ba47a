"""Dashboards: grouped metric names, the config, episode pictures and the evaluation reach
W&B (offline, read back from its files), TensorBoard and PNGs, without changing training."""

from __future__ import annotations

import pytest
import torch

from rlmem.checkpoint import load_checkpoint
from rlmem.logging.metric_names import dashboard_name
from rlmem.train import train

from wandb_offline import read_offline_run

TINY = ["total_steps=1024", "env.n_envs=8", "agent.n_steps=16", "agent.batch_size=64", "eval_episodes=4",
        "core.hidden_size=8", "policy.embed_size=8", "progress=false", "env=t-maze", "env.corridor=2"]


def test_metric_names_are_grouped_as_cleanrl_names_them():
    assert dashboard_name("return_mean") == "charts/episodic_return"
    assert dashboard_name("fps") == "charts/SPS"
    assert dashboard_name("clip_fraction") == "losses/clipfrac"
    assert dashboard_name("td_loss") == "losses/td_loss"
    assert dashboard_name("my_loss") == "losses/my_loss"
    assert dashboard_name("core/gate") == "core/gate"
    assert dashboard_name("buffer_fill") == "charts/buffer_fill"


def test_wandb_offline_run_holds_grouped_metrics_pictures_config_and_evaluation(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    train([*TINY, "core=ntm", "core.memory_size=6", "core.memory_width=4", "logger=wandb",
           "logger.media_every=512"], run_dir=tmp_path)
    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    run = read_offline_run(folder)
    assert run.finished
    steps = [row["_step"] for row in run.history if "charts/episodic_return" in row]
    assert steps == sorted(steps) and steps[-1] == 1024 and len(steps) == 1024 // 128
    names = set().union(*run.history)
    for name in ("losses/policy_loss", "losses/value_loss", "losses/clipfrac", "charts/SPS",
                 "core/read_entropy", "core/write_peak", "charts/learning_rate"):
        assert name in names, name
    assert not {n for n in names if not n.startswith(("charts/", "losses/", "core/", "eval/", "media/", "_"))}
    image_rows = [row for row in run.history if "media/core/ntm_weights" in row]
    captions = [row["media/core/ntm_weights"].get("caption") for row in image_rows]
    # recorded every 512 env steps and at the end, sent once drawn (at that step or a later one)
    assert captions == ["episode recorded at 512 env steps", "episode recorded at 1024 env steps"]
    assert 512 <= image_rows[0]["_step"] < image_rows[1]["_step"] and image_rows[1]["_step"] >= 1024
    assert image_rows[0]["media/core/ntm_weights"]["_type"] == "image-file"
    pngs = list((run.files / "media" / "images").rglob("*.png"))
    assert len(pngs) >= 2 and all(p.stat().st_size > 1000 for p in pngs)
    assert run.summary["eval/episodes"] == 4.0 and "eval/return_mean" in run.summary
    assert run.summary["status"] == "finished"
    assert run.config["core"]["name"] == "ntm" and run.config["logger"]["media_every"] == 512


def test_tensorboard_gets_grouped_scalars_images_and_the_config(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train([*TINY, "core=gru", "logger=tensorboard", "logger.media_every=512"], run_dir=tmp_path)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"charts/episodic_return", "losses/policy_loss", "eval/return_mean"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("charts/SPS")] == list(range(128, 1025, 128))
    assert "media/core/state" in tags["images"] and "media/episode/inputs" in tags["images"]
    assert [e.step for e in events.Images("media/core/state")] == [512, 1024]
    assert any(t.startswith("config") for t in tags["tensors"])  # add_text stores a tensor summary
    media = sorted(p.name for p in (tmp_path / "media").glob("*.png"))
    assert "core_state_512.png" in media and "core_state_1024.png" in media


@pytest.mark.parametrize("core", ["gru", "tmm"])
def test_pictures_do_not_change_training(tmp_path, core):
    """Taking pictures runs the policy on its own environment and random streams: the trained
    parameters are bitwise those of a run without pictures."""
    args = [*TINY, f"core={core}", "eval_episodes=0"]
    if core == "tmm":
        args += ["core.slots=4", "policy.embed_size=0"]
    plain = train(args, run_dir=tmp_path / "plain")
    pictured = train([*args, "logger.media_every=256"], run_dir=tmp_path / "pictured")
    assert len(list((tmp_path / "pictured" / "media").glob("*.png"))) >= 4
    a = load_checkpoint(plain["checkpoint"])["agent"]["state"]["policy"]
    b = load_checkpoint(pictured["checkpoint"])["agent"]["state"]["policy"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_failing_picture_warns_and_training_goes_on(tmp_path, monkeypatch, capsys):
    import rlmem.episode_record as recording

    def broken(*args, **kwargs):
        raise RuntimeError("no pictures today")

    monkeypatch.setattr(recording, "record_episode", broken)
    summary = train([*TINY, "logger.media_every=256"], run_dir=tmp_path)
    assert summary["status"] == "finished"
    err = capsys.readouterr().err
    assert err.count("episode pictures are off after an error: no pictures today") == 1



def test_pictures_drawn_in_the_drawing_process_equal_those_drawn_here(tmp_path):
    from PIL import Image
    import numpy as np

    from rlmem.envs import make_vector_env
    from rlmem.logging import Logger
    from rlmem.logging.media import EpisodeMedia
    from rlmem.policy import RecurrentActorCritic

    env = make_vector_env("t-maze", 1, seed=0, corridor=3)
    policy = RecurrentActorCritic(env.single_observation_space, env.single_action_space, "gated", {"hidden_size": 8})
    got = {}

    class Keep(Logger):
        def log_images(self, images, step, taken=None):
            got.setdefault(self.name, []).append((step, taken, dict(images)))

    for background in (False, True):
        media = EpisodeMedia(lambda: make_vector_env("t-maze", 1, seed=3, corridor=3), tmp_path / str(background),
                             every=100, seed=3, background=background)
        keep = Keep()
        keep.name = background
        media.capture(policy, 100)
        media.publish(keep, 150, wait=True)
        media.close()
    (step_a, taken_a, here), (step_b, taken_b, there) = got[False][0], got[True][0]
    assert (step_a, taken_a) == (step_b, taken_b) == (150, 100)
    assert here.keys() == there.keys() == {"media/episode/inputs", "media/core/state", "media/core/scalars"}
    for name in here:
        assert here[name].name == there[name].name and here[name].name.endswith("_100.png")
        a, b = (np.asarray(Image.open(p)) for p in (here[name], there[name]))
        assert a.shape == b.shape and a.shape[0] > 100
