"""The world-model contract, kept by a model that is not worldsim's (tests/dummy_model.py): every
consumer drives it through the contract alone, and it registers as a plugin package would, through
real entry points (a dist-info folder on sys.path, read by importlib.metadata)."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import worldsim
from tests.conftest import ASSETS
from tests.dummy_model import SlideWorldModel
from worldsim.envs.builtin import get_spec
from worldsim.media.images import load_image
from worldsim.models.checkpoint import CheckpointError
from worldsim.rollout import imagine


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed 'package' declaring the kind `slide` and the checkpoint `dummy-box`."""
    info = tmp_path / "site" / "worldsim_slide-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: worldsim-slide\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[worldsim.models]\nslide = tests.dummy_model:SlideWorldModel\n\n"
        "[worldsim.checkpoints]\ndummy-box = tests.dummy_model:checkpoint_folder\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return "dummy-box"


@pytest.fixture
def start_frame_cartpole():
    return load_image(ASSETS / "cartpole" / "reset_seed7.png")


def test_an_installed_kind_and_checkpoint_are_found_and_loaded(plugin):
    assert worldsim.known_kinds()["slide"] == "tests.dummy_model:SlideWorldModel"
    model = worldsim.load(plugin)
    assert isinstance(model, SlideWorldModel) and model.spec == get_spec("cartpole")
    listed = {m["name"]: m for m in _models_json(plugin)}
    assert listed["dummy-box"] == {
        "name": "dummy-box",
        "kind": "slide",
        "env": "CartPole-v1",
        "source": "plugin",
        "example_actions": get_spec("cartpole").example_actions,
    }


def _models_json(plugin):
    from worldsim.models.catalog import model_entries

    return [entry.describe() for entry in model_entries()]


def test_an_unknown_kind_is_one_clear_line_and_nothing_is_unpickled(tmp_path):
    folder = tmp_path / "mystery"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"kind": "nonexistent", "format_version": 1}))
    (folder / "model.safetensors").write_bytes(b"not even read")
    with pytest.raises(CheckpointError) as error:
        worldsim.load(folder)
    message = str(error.value)
    assert "'nonexistent'" in message and "latent" in message and "Install the package" in message
    assert "\n" not in message


def test_rollout_service_drives_any_kind(plugin, start_frame_cartpole):
    model = worldsim.load(plugin)
    video = model.rollout(start_frame_cartpole, "right*3 left")
    first = worldsim.preprocess(start_frame_cartpole, model.spec)
    assert np.array_equal(video[3], np.roll(first, 3, axis=1))  # three pixels right
    assert np.array_equal(video[4], np.roll(first, 2, axis=1))
    dream = imagine(model, first[None, None], np.ones((1, 12), np.int64))
    assert dream.rewards.shape == (1, 12) and dream.episode_lengths().tolist() == [10]


def test_dream_env_on_a_plugin_model(plugin, start_frame_cartpole):
    env = gym.make("worldsim/Dream-v0", model=plugin)
    assert env.action_space == gym.make("CartPole-v1").action_space
    frame, _info = env.reset(options={"frames": [start_frame_cartpole]})
    assert frame.dtype == np.uint8 and frame.shape == (64, 160, 3)
    steps = 0
    terminated = False
    while not terminated:
        frame, reward, terminated, truncated, _ = env.step(1)
        steps += 1
        assert reward == 1.0 and not truncated
    assert steps == 10


def test_play_session_shows_game_over_and_score(plugin, start_frame_cartpole):
    from worldsim.app.play import PlaySession

    session = PlaySession.start(worldsim.load(plugin), start_frame_cartpole)
    for _ in range(10):
        assert not session.game_over
        session.step("right")
    assert session.game_over and session.score == 10.0
    session.undo()
    assert not session.game_over and session.score == 9.0


def test_app_handlers_roll_out_compare_and_hide_samples(plugin, monkeypatch, start_frame_cartpole, tmp_path):
    from PIL import Image

    from worldsim.app import handlers
    from worldsim.models.catalog import model_entries, select

    monkeypatch.setattr(handlers, "catalog", handlers.Catalog(select(model_entries(), [plugin, "cartpole"])))
    path = tmp_path / "start.png"
    Image.fromarray(start_frame_cartpole).save(path)
    video, summary, plot, _rollout = handlers.rollout_video(plugin, str(path), "right*5", "seed 7")
    assert video.endswith(".mp4") and plot is not None and "seed 7" in summary
    assert handlers.sample_controls(plugin)["visible"] is False
    compared, text = handlers.compare_models(plugin, "cartpole", str(path), "right*4", "seed 7")
    assert compared.endswith(".mp4") and "dummy-box" in text


def test_evaluation_scores_any_kind_against_the_simulator(plugin, tmp_path):
    from worldsim.evaluation.evaluate import evaluate_model

    metrics = evaluate_model(plugin, episodes=2, horizon=5, out=tmp_path)
    per_step = next(iter(metrics["per_step"].values()))
    assert len(per_step["psnr"]) == 6 and "psnr_redraw" not in per_step  # no redraw capability


def test_a_kind_without_a_capability_says_so(plugin):
    model = worldsim.load(plugin)
    assert not model.capabilities.sampling and not model.capabilities.encoder
    with pytest.raises(NotImplementedError, match="no image encoder"):
        model.reconstruct(torch.zeros(1, 64, 160, 3, dtype=torch.uint8))


@pytest.mark.slow  # a fresh process, offline, as a user loads from the Hub
def test_a_plugin_kind_saves_and_loads_through_the_hub_cache(plugin, tmp_path, start_frame_cartpole):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.test_hub import checkpoint_files, populate_cache

    folder = worldsim.load(plugin).save_pretrained(tmp_path / "saved")
    cache = tmp_path / "hub"
    populate_cache(cache, "someone/slide", checkpoint_files(folder, names=("config.json",)))
    code = "import worldsim; m = worldsim.load('hf://someone/slide'); print(m.kind, m.spec.gym_id)"
    site = str(tmp_path / "site")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([site, str(ROOT)])
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["slide", "CartPole-v1"]
