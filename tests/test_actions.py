import contextlib
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worldsim.actions import MAX_STEPS, ActionError, format_actions, parse_actions
from worldsim.envs import get_spec

CARTPOLE = get_spec("cartpole")
PENDULUM = get_spec("pendulum")
CARRACING = get_spec("carracing")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("right left", [1, 0]),
        ("RIGHT, Left,right", [1, 0, 1]),
        ("1 0 1", [1, 0, 1]),
        ("right*3 left*2", [1, 1, 1, 0, 0]),
        ("right * 2", [1, 1]),
        ('["left", "right", 1]', [0, 1, 1]),
        ("[0, 1, 1]", [0, 1, 1]),
    ],
)
def test_discrete_syntax(text, expected):
    actions = parse_actions(text, CARTPOLE)
    assert actions.dtype == np.int64
    assert actions.tolist() == expected


def test_continuous_syntax():
    assert parse_actions("2 -2*2 0.5", PENDULUM).tolist() == [[2.0], [-2.0], [-2.0], [0.5]]
    actions = parse_actions("[0,1,0]*2 [-1, 0.5, 0]", CARRACING)
    assert actions.shape == (3, 3) and actions.dtype == np.float32
    assert actions[2].tolist() == [-1.0, 0.5, 0.0]
    assert parse_actions("[[0,1,0],[1,0,0]]", CARRACING).shape == (2, 3)
    assert parse_actions("[0,1,0]", CARRACING).shape == (1, 3)  # one vector, not three actions


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("right jump left", "'jump' at position 2"),
        ("right 2", "'2' at position 2"),
        ("left*-3", "repeat count"),
        ("left*0", "repeat count"),
        ("left*abc", "repeat count"),
        ("", "No actions"),
        ("   ,  ", "No actions"),
    ],
)
def test_discrete_errors_name_the_token(text, fragment):
    with pytest.raises(ActionError) as info:
        parse_actions(text, CARTPOLE)
    message = str(info.value)
    assert fragment in message
    if "position" in fragment or "No actions" in fragment:
        assert "left (0), right (1)" in message  # the accepted names are listed


@pytest.mark.parametrize("text", ["nan", "inf", "3", "-2.5", "[5]", "[[0, 1]]", "[0,1]*2"])
def test_continuous_errors(text):
    with pytest.raises(ActionError, match="pendulum|torque"):
        parse_actions(text, PENDULUM)


def test_length_limit_is_enforced_fast_and_stated():
    started = time.perf_counter()
    with pytest.raises(ActionError, match=f"at most {MAX_STEPS} steps"):
        parse_actions("left*999999999", CARTPOLE)
    with pytest.raises(ActionError, match="at most 5 steps"):
        parse_actions("left*3 right*3", CARTPOLE, max_steps=5)
    with pytest.raises(ActionError, match="characters"):
        parse_actions("left " * 1_000_000, CARTPOLE)
    assert time.perf_counter() - started < 1.0


def test_sequences_are_validated_too():
    assert parse_actions([1, 0, 1], CARTPOLE).tolist() == [1, 0, 1]
    with pytest.raises(ActionError):
        parse_actions([0, 5], CARTPOLE)


@given(st.text(max_size=200))
def test_parser_raises_only_its_own_error(text):
    for spec in (CARTPOLE, CARRACING):
        with contextlib.suppress(ActionError):
            parse_actions(text, spec)


@given(st.lists(st.integers(0, 1), min_size=1, max_size=300))
def test_discrete_round_trip(actions):
    assert parse_actions(format_actions(actions, CARTPOLE), CARTPOLE).tolist() == actions


@given(st.lists(st.lists(st.floats(-1, 1), min_size=3, max_size=3), min_size=1, max_size=50))
def test_continuous_round_trip(values):
    values = [[v[0], abs(v[1]), abs(v[2])] for v in values]  # gas and brake are in [0, 1]
    actions = np.asarray(values, dtype=np.float32)
    text = format_actions(actions, CARRACING)
    assert np.array_equal(parse_actions(text, CARRACING), actions)
