"""The app's handlers, called directly as Gradio would call them."""

import gradio as gr
import pytest

from worldsim import demo


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
    monkeypatch.setenv("WORLDSIM_HUB_MODELS", "hf://a/b, not-a-hub-id ,hf://c/d@v2")
    assert demo.picker_models() == [*demo.shipped_models(), "hf://a/b", "hf://c/d@v2"]


def test_start_from_simulator_gives_the_reset_frame_and_its_start():
    import numpy as np

    from worldsim.images import load_image
    from worldsim.simulator import simulator_frames

    path, start = demo.start_from_simulator("cartpole", 7)
    assert start == "seed 7"
    assert np.array_equal(load_image(path), simulator_frames("cartpole", 7)[0])
    with pytest.raises(gr.Error, match="whole number"):
        demo.start_from_simulator("cartpole", -1)
