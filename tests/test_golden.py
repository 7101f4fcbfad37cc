"""The shipped models roll out exactly as they did before the package was reorganised (issue 13).

tests/data/golden_rollouts.npz holds the first 20 steps of every shipped model's first example,
rolled out by the code as it stood before the move to the world-model contract. A model that is
retrained gets its frames recorded again with its new checkpoint (issue 15: pendulum, pong and
carracing), so the test keeps guarding every refactor after.
"""

import numpy as np
import pytest

import worldsim
from tests.conftest import ROOT
from worldsim.media.images import load_image

GOLDEN = np.load(ROOT / "tests" / "data" / "golden_rollouts.npz")
MODELS = sorted(name for name in GOLDEN.files if "__" not in name)


@pytest.mark.parametrize("name", MODELS)
def test_shipped_model_rolls_out_the_frames_it_did_before_the_move(name):
    model = worldsim.load(name)
    frame = load_image(ROOT / str(GOLDEN[f"{name}__frame"]))
    video = model.rollout(frame, str(GOLDEN[f"{name}__actions"]))[: len(GOLDEN[name])]
    # float arithmetic may round a pixel differently on another CPU; anything more is a change
    difference = np.abs(video.astype(int) - GOLDEN[name].astype(int))
    assert difference.max() <= 1, f"{name}: max pixel difference {difference.max()}"
    assert (difference > 0).mean() < 1e-3
