"""The plugin keeps worldsim's contract: a tiny model saves, loads back exactly and rolls out.

python -m pytest examples/pixel-unet/tests
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from worldsim_pixel_unet.model import FORMAT_VERSION, PixelUNetConfig, PixelUNetWorldModel
from worldsim_pixel_unet.train import Windows, unroll_loss

import worldsim
from worldsim.data.collect import EpisodeData
from worldsim.models.checkpoint import CheckpointError
from worldsim.rollout import imagine


def tiny_model(seed: int = 0) -> PixelUNetWorldModel:
    torch.manual_seed(seed)
    model = PixelUNetWorldModel(
        PixelUNetConfig(
            env=worldsim.get_spec("breakout"), channels=(4, 8, 8), middle_blocks=1, action_embed_dim=4
        )
    )
    with torch.no_grad():  # the output layer starts at zero (copy); make the test see the network
        model.unet.out.weight.normal_(0, 0.01)
    return model.eval()


def start_frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(96, 80, 3), dtype=np.uint8)


def test_save_and_load_round_trip_exactly(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["kind"] == "pixel-unet" and config["format_version"] == FORMAT_VERSION
    loaded = PixelUNetWorldModel.from_pretrained(tmp_path)
    assert loaded.config == model.config
    saved = load_file(tmp_path / "model.safetensors")
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, saved[name]) and torch.equal(tensor, model.state_dict()[name])
    frame, actions = start_frame(), "fire right*3 left*2"
    assert np.array_equal(model.rollout(frame, actions), loaded.rollout(frame, actions))


def test_rollout_shapes_and_contract():
    model = tiny_model()
    video = model.rollout(start_frame(), "fire right*4 left")
    assert video.shape == (7, 96, 80, 3) and video.dtype == np.uint8
    assert np.array_equal(video[0], start_frame())  # frame 0 is the start frame as the model sees it
    assert not np.array_equal(video[1], video[0])
    # batched, from 1..K context frames, through worldsim's own rollout loop
    for k in (1, 2, 4):
        context = np.stack([start_frame(i) for i in range(k)])[None].repeat(3, axis=0)
        dream = imagine(model, context, np.zeros((3, 5), dtype=np.int64))
        assert dream.frames.shape == (3, 6, 96, 80, 3) and dream.rewards is None
        assert np.array_equal(dream.frames[0], dream.frames[2])
    with pytest.raises(ValueError, match="1 to 4 frames"):
        model.start(torch.zeros(1, 5, 96, 80, 3, dtype=torch.uint8))


def test_untrained_model_copies_its_input():
    model = PixelUNetWorldModel(PixelUNetConfig(env=worldsim.get_spec("breakout"), channels=(4, 8, 8)))
    video = model.rollout(start_frame(), "right*3")
    assert all(np.array_equal(frame, video[0]) for frame in video)


def test_config_is_validated_before_anything_is_built(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    for bad, message in [
        ({"channels": [4, 8]}, "channels"),
        ({"context_frames": 0}, "context_frames"),
        ({"format_version": 99}, "format_version"),
        ({"surprise": 1}, "unknown field"),
    ]:
        (tmp_path / "config.json").write_text(json.dumps({**data, **bad}))
        with pytest.raises(CheckpointError, match=message):
            PixelUNetWorldModel.from_pretrained(tmp_path)


def test_training_loss_runs_and_has_gradients():
    model = tiny_model().train()
    frames = np.random.default_rng(0).integers(0, 256, size=(40, 96, 80, 3), dtype=np.uint8)
    data = EpisodeData(
        frames=frames,
        actions=np.zeros(40, dtype=np.int64),
        states=None,
        rewards=None,
        terminals=None,
        episode_starts=np.array([0, 20]),
        episode_lengths=np.array([20, 20]),
        policies=np.array(["random"] * 2),
    )
    windows = Windows(data, np.array([0, 1]), context=4, horizon=3)
    context, actions, targets, before = windows.sample(2, torch.Generator().manual_seed(0), 0.5)
    assert context.shape == (2, 4, 3, 96, 80) and targets.shape == (2, 3, 3, 96, 80)
    loss = unroll_loss(model, context, actions, targets, before, weight=19.0)
    loss.backward()
    assert torch.isfinite(loss) and model.unet.inp.weight.grad.abs().sum() > 0


installed = any(e.name == "pixel-unet" for e in entry_points(group="worldsim.models"))


@pytest.mark.skipif(not installed, reason="pip install -e examples/pixel-unet registers the kind")
def test_worldsim_loads_the_kind_by_its_name(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    model = worldsim.load(tmp_path)
    assert isinstance(model, PixelUNetWorldModel)
    assert "pixel-unet" in worldsim.known_kinds()
    with pytest.raises(CheckpointError, match="Unknown model kind"):
        (tmp_path / "config.json").write_text(
            json.dumps({**json.loads((tmp_path / "config.json").read_text()), "kind": "no-such-kind"})
        )
        worldsim.load(tmp_path)
