import numpy as np
import pytest

from worldsim.envs.builtin import get_spec
from worldsim.envs.simulator import SimulatorStart, simulator_frames
from worldsim.media.panels import difference, per_step_psnr, side_by_side


def test_side_by_side_stacks_across_the_short_side_with_labels():
    wide = np.zeros((3, 64, 160, 3), np.uint8)
    video = side_by_side([wide, wide + 255, wide], ["model", "simulator", "|difference|"])
    assert video.shape[0] == 3 and video.shape[2] == 640  # upscaled 4x, one above the other
    assert video.shape[1] > 3 * 256
    square = np.zeros((2, 64, 64, 3), np.uint8)
    assert (
        side_by_side([square, square], ["a", "b"]).shape[1]
        < side_by_side([square, square], ["a", "b"]).shape[2]
    )
    # The label strip holds dark text pixels above each panel.
    assert (video[0, :28, :200] < 128).any()


def test_difference_and_psnr():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = a.copy()
    b[1, 0, 0] = 255
    assert difference(a, a).shape == (2, 8, 8, 3)
    assert (difference(a, b)[1, 0, 0] != difference(a, b)[1, 1, 1]).any()
    scores = per_step_psnr(a, b)
    assert scores[0] == 100.0 and scores[1] == pytest.approx(10 * np.log10(64 * 3 / 3), abs=0.01)


def test_simulator_start_round_trips_and_replays_the_prefix():
    start = SimulatorStart.parse("seed 3 after right left right")
    assert str(start) == "seed 3 after right left right"
    assert SimulatorStart.parse(str(start)) == start
    frames = start.frames(get_spec("cartpole"), [1, 1])
    assert frames.shape[0] == 3
    assert np.array_equal(frames[0], simulator_frames(get_spec("cartpole"), 3, "right left right")[-1])
    assert SimulatorStart.parse("  ") is None
    with pytest.raises(ValueError, match="seed 7"):
        SimulatorStart.parse("7")


def test_a_known_simulator_start_gives_the_model_the_frames_before_it():
    """One uploaded Pong frame cannot say which way the ball flies, nor where the keys pressed
    before it were taking the paddle; when it is the simulator's frame after known actions, the
    app hands the model the simulator's frames before it too, and the actions played."""
    from worldsim.app.handlers import start_context, use_catalog
    from worldsim.models.catalog import model_entries
    from worldsim.rollout import cached_model

    use_catalog(model_entries())
    model = cached_model("pong")
    start = SimulatorStart(3, "noop*20")
    played = simulator_frames(model.spec, 3, [0] * 20)
    context, past = start_context(model, [played[-1]], start)
    assert len(context) == model.context_frames == 2
    assert np.array_equal(context, model.prepare_context(list(played[-2:])))
    assert [int(a) for a in past] == [0] * 20
    # An upload that is not the simulator's frame keeps its one frame and no actions; so does no
    # known start.
    context, past = start_context(model, [played[5]], start)
    assert len(context) == 1 and past is None
    assert len(start_context(model, [played[-1]], None)[0]) == 1
