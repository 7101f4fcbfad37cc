"""The app's handlers, called directly as Gradio would call them."""

import re

import gradio as gr
import numpy as np
import pytest

from worldsim.app import handlers as demo
from worldsim.envs.builtin import get_spec
from worldsim.models.examples import ASSETS_DIR


@pytest.mark.parametrize("name", ["../../etc", "/etc", "checkpoints/cartpole", "hf://../../x", ""])
def test_model_names_resolve_only_to_shipped_models_or_hub_ids(name):
    with pytest.raises(gr.Error):
        demo.get_model(name)


def test_uncached_hub_model_offline_is_a_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(gr.Error, match="not in the local Hugging Face cache"):
        demo.load_from_hub("someone/missing-model")


def test_picker_lists_hub_models_from_the_environment(monkeypatch):
    from worldsim.models.checkpoint import shipped_checkpoints

    monkeypatch.setenv("WORLDSIM_HUB_MODELS", "hf://a/b, not-a-hub-id ,hf://c/d@v2")
    names = demo.Catalog().names()
    assert names[: len(shipped_checkpoints())] == list(shipped_checkpoints())  # shipped first
    assert names[-2:] == ["hf://a/b", "hf://c/d@v2"] and "not-a-hub-id" not in names  # Hub ids last


def test_start_from_simulator_gives_the_reset_frame_and_its_start():
    import numpy as np

    from worldsim.envs.simulator import simulator_frames
    from worldsim.media.images import load_image

    path, start = demo.start_from_simulator("cartpole", 7)
    assert start == "seed 7"
    assert np.array_equal(load_image(path), simulator_frames(get_spec("cartpole"), 7)[0])
    with pytest.raises(gr.Error, match="whole number"):
        demo.start_from_simulator("cartpole", -1)


START = str(ASSETS_DIR / "cartpole" / "reset_seed7.png")


def test_action_buttons_append_and_merge_runs():
    buttons = demo.action_buttons("cartpole")
    assert [b.get("value") for b in buttons if b.get("visible")] == ["left", "right"]
    text = ""
    for token in ["right"] * 5 + ["left"]:
        text = demo.append_action("cartpole", text, token)
    assert text == "right*5 left"
    assert demo.describe_actions("cartpole", text) == "right x5, left: 6 steps, 0.12 s of play."
    assert "Unknown action 'jump'" in demo.describe_actions("cartpole", "left jump")
    # Markdown shows the message as typed ('left*0 ... left*5' was italics between the stars)
    assert "left\\*0" in demo.describe_actions("cartpole", "left*0")


def test_a_bad_upload_is_explained_once_though_every_listener_reads_it(tmp_path, monkeypatch):
    import gradio as gr
    from gradio.data_classes import FileData

    from worldsim.app import handlers

    with gr.Blocks():
        box = handlers.start_frame_input(label="Start frame")
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    upload = FileData(path=str(fake), orig_name="fake.png")
    with pytest.raises(gr.Error, match="fake.png is not a readable image. Accepted: PNG"):
        box.preprocess(upload)
    assert box.preprocess(upload) is None  # the upload's other listeners, at the same moment
    monkeypatch.setattr(handlers, "EXPLAIN_ONCE_SECONDS", -1.0)  # seconds later: a rollout's click
    with pytest.raises(gr.Error, match="not a readable image"):
        box.preprocess(upload)


@pytest.mark.slow  # four 20-step rollouts
def test_samples_differ_repeat_with_their_seed_and_come_with_an_uncertainty_panel():
    _, summary, _, first = demo.rollout_video("cartpole-state", START, "right*20", "", samples=4, seed=1)
    _, _, _, again = demo.rollout_video("cartpole-state", START, "right*20", "", samples=4, seed=1)
    _, _, _, other = demo.rollout_video("cartpole-state", START, "right*20", "", samples=4, seed=2)
    assert "4 samples with seed 1" in summary
    assert (first.video == again.video).all()
    assert (first.video != other.video).any()
    assert first.video.shape[1] > 2 * 256 and first.video.shape[2] > 2 * 640  # a 2-column grid


def test_the_second_model_to_compare_is_one_of_the_same_environment():
    offered = demo.compare_choices("cartpole", "cartpole")
    assert "cartpole-state" in offered["choices"] and offered["value"] != "cartpole"  # another, by default
    assert {demo.get_model(name).spec.gym_id for name in offered["choices"]} == {"CartPole-v1"}
    assert demo.compare_choices("pendulum", "cartpole-state")["choices"] == ["pendulum"]  # the only one


def test_compare_two_models_side_by_side_with_the_simulator():
    path, summary = demo.compare_models("cartpole", "cartpole-state", START, "right*5", "seed 7")
    assert path.endswith(".mp4")
    assert re.search(
        r"Mean PSNR against the simulator: cartpole \d+\.\d dB, cartpole-state \d+\.\d dB", summary
    )


def test_model_card_and_what_the_model_sees():
    assert "Evaluation" in demo.model_card("cartpole") or "PSNR" in demo.model_card("cartpole")
    seen, text = demo.model_input("cartpole", START, None)
    assert seen.shape[0] >= 256  # enlarged
    assert text.startswith("1 frame at 160x64") and "Looks like the training frames" in text


def test_an_unfamiliar_upload_is_flagged(tmp_path):
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    _, text = demo.model_input("cartpole", str(tmp_path / "noise.png"), None)
    assert "Unlike the training frames" in text


def test_a_deterministic_model_says_its_samples_are_identical():
    _, summary, _, rollout = demo.rollout_video("cartpole", START, "right*5", "", samples=2, seed=0)
    assert "deterministic" in summary
    assert (rollout.session.samples, rollout.session.seed) == (2, 0)
