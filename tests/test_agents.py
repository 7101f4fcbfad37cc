"""Scripted controllers that act from frames only, and their scores in the dream and in reality."""

import numpy as np
import pytest

from worldsim.data.collect import EVAL_SEED_START
from worldsim.envs.builtin import get_spec
from worldsim.evaluation.agents import (
    CartPoleController,
    PongController,
    agent_scores,
    controller_for,
    real_episode,
)


@pytest.mark.parametrize("seed", [EVAL_SEED_START, EVAL_SEED_START + 1, EVAL_SEED_START + 2])
def test_cartpole_controller_balances_the_real_cartpole_from_frames(seed):
    spec = get_spec("cartpole")
    length, total, start = real_episode(spec, CartPoleController(spec), seed, max_steps=150)
    assert length == 150 and total == 150.0
    assert start[0].shape == (spec.height, spec.width, 3)  # frames at the model's view


def _pong_frame(paddle_row: int | None, ball_row: int | None) -> np.ndarray:
    """An 80x80 model-view Pong frame: brown court, the green paddle (2x8 px at columns 70-71,
    its top at `paddle_row`) and the white 1x2 px ball at column 40."""
    frame = np.empty((80, 80, 3), np.uint8)
    frame[:] = (144, 72, 17)
    if paddle_row is not None:
        frame[paddle_row : paddle_row + 8, 70:72] = (92, 186, 92)
    if ball_row is not None:
        frame[ball_row : ball_row + 2, 40] = (236, 236, 236)
    return frame


def test_pong_controller_moves_the_paddle_toward_the_ball():
    spec = get_spec("pong")
    controller = PongController(spec)
    up, down, noop = (spec.action_names.index(n) for n in ("right", "left", "noop"))
    assert controller.act(_pong_frame(40, 10)) == up  # ball above the paddle: "right" moves it up
    assert controller.act(_pong_frame(40, 70)) == down
    assert controller.act(_pong_frame(40, 43)) == noop  # level with the paddle's centre
    assert controller.act(_pong_frame(70, None)) == up  # no ball: back toward the court's centre
    assert controller.act(_pong_frame(None, 10)) == up  # paddle under a wall: its last reading stands
    assert PongController(spec).act(_pong_frame(None, 10)) == noop  # no paddle seen yet
    half_hidden = _pong_frame(None, 40)
    half_hidden[:2, 70:72] = (92, 186, 92)  # the paddle slid under the top wall
    assert PongController(spec).act(half_hidden) == down


def test_only_cartpole_and_pong_have_controllers():
    assert controller_for(get_spec("acrobot")) is None
    assert isinstance(controller_for(get_spec("cartpole")), CartPoleController)


def test_agent_scores_on_the_shipped_cartpole_model():
    scores = agent_scores("cartpole", episodes=2, max_steps=50, progress=False)
    for world in ("real", "dream"):
        lengths = scores[world]["lengths"]
        assert len(lengths) == 2 and all(1 <= n <= 50 for n in lengths)
        assert len(scores[world]["returns"]) == 2
        assert scores[world]["mean_length"] == np.mean(lengths)
    assert scores["real"]["lengths"] == [50, 50]  # the balancer holds the real pole up
    assert "| world | mean length | median length | mean return |" in scores["markdown"]
    assert scores["summary"] in scores["markdown"]
