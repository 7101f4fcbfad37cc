"""Live play: one step per key, undo, restart, and branching from an earlier frame."""

import numpy as np
import pytest

from worldsim import load
from worldsim.app.play import PlaySession


@pytest.fixture
def session(start_frame):
    return PlaySession.start(load("cartpole"), start_frame, model_name="cartpole")


def test_each_step_adds_one_imagined_frame(session):
    first = session.frame.copy()
    for action in ["right"] * 8:
        frame = session.step(action)
    assert session.steps == 8 and session.position == 8
    assert frame.shape == first.shape == (64, 160, 3)
    assert np.abs(frame.astype(int) - first).max() > 0  # pushing right for 8 steps moves the cart
    assert session.actions_text() == "right*8"
    assert session.video_frames().shape == (9, 64, 160, 3)


def test_play_matches_a_rollout_of_the_same_actions(session, start_frame):
    for action in ["left", "left", "right", "left"]:
        session.step(action)
    rolled = session.model.rollout(start_frame, "left left right left")
    # Play decodes each frame alone, a rollout all frames in one batch: convolutions round
    # differently by batch size, so a pixel may sit one level over on the other side of a .5.
    difference = np.abs(session.video_frames().astype(int) - rolled.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def test_undo_restart_and_branching(session):
    for action in ["right"] * 5:
        session.step(action)
    after_five = session.frame.copy()
    session.step("left")
    session.undo()
    np.testing.assert_array_equal(session.frame, after_five)
    assert session.steps == 5

    session.seek(2)  # back on the timeline: the next step branches from step 2
    assert session.steps == 5 and session.position == 2
    session.step("left")
    assert session.steps == 3 and session.actions_text() == "right*2 left"

    start = session.restart()
    assert session.steps == 0 and session.actions_text() == ""
    np.testing.assert_array_equal(start, session.frames[0])


def test_a_bad_key_action_is_refused_with_our_message(session):
    with pytest.raises(ValueError, match="Unknown action 'jump'"):
        session.step("jump")
    with pytest.raises(ValueError, match="One action per step"):
        session.step("left right")
    assert session.steps == 0
