"""Session files: a saved rollout loads back into the same video; bad files get clear messages."""

import json

import numpy as np
import pytest

from tests.conftest import ASSETS
from worldsim.app import handlers as demo
from worldsim.app.session import RolloutSession, SessionError

START = str(ASSETS / "cartpole" / "reset_seed7.png")


def test_a_saved_session_reproduces_the_exact_video(tmp_path):
    _, _, _, first = demo.rollout_video("cartpole", START, "right*6 left*4", "seed 7", samples=1, seed=3)
    path = demo.save_session(first)
    model, start, actions, simulator_start, samples, seed = demo.load_session(path)
    assert (model, actions, simulator_start, samples, seed) == ("cartpole", "right*6 left*4", "seed 7", 1, 3)
    _, _, _, again = demo.rollout_video(model, start, actions, simulator_start, samples, seed)
    np.testing.assert_array_equal(again.video, first.video)


def test_round_trip_keeps_every_field():
    frame = np.random.default_rng(0).integers(0, 256, (64, 160, 3), dtype=np.uint8)
    session = RolloutSession(
        "cartpole", "left*3", [frame, frame[::-1]], seed=5, samples=4, simulator_start=""
    )
    loaded = RolloutSession.from_json(session.to_json())
    assert (loaded.model, loaded.actions, loaded.seed, loaded.samples) == ("cartpole", "left*3", 5, 4)
    for a, b in zip(loaded.start_frames, session.start_frames, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "worldsim_session"),
        (json.dumps({"worldsim_session": 1, "model": 3}), "'model' must be a str"),
        (
            json.dumps(
                {
                    "worldsim_session": 1,
                    "model": "cartpole",
                    "actions": "left",
                    "seed": 0,
                    "samples": 1,
                    "simulator_start": "",
                    "start_frames": ["not base64 png!"],
                }
            ),
            "not a readable PNG",
        ),
    ],
)
def test_bad_session_files_say_what_is_wrong(text, message):
    with pytest.raises(SessionError, match=message):
        RolloutSession.from_json(text)
