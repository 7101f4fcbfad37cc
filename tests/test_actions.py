import contextlib
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worldsim.envs.actions import MAX_STEPS, ActionError, format_actions, parse_actions
from worldsim.envs.builtin import ENV_SPECS, get_spec

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


SPECS = list(ENV_SPECS.values())
# Text shaped like actions, so that generated text gets past the first token: names of every
# action space, odd numbers (huge, non-ASCII digits, nan), vectors, and TOKEN*COUNT with odd counts.
words = st.one_of(
    st.sampled_from(sorted({name for spec in SPECS for name in spec.action_names})),
    st.from_regex(r"\A[+-]?[0-9]{1,3}(\.[0-9]{1,2})?\Z"),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "1" * 5000, "٣", "[0,1,0]", "[nan,0,0]", "[]", "[[1]]"]),
    st.text(max_size=5),
)
counts = st.one_of(st.from_regex(r"\A-?[0-9]{0,4}\Z"), st.sampled_from(["²", "٣", "9" * 5000, "1.5", "x"]))
tokens = st.tuples(words, st.none() | counts).map(lambda t: t[0] if t[1] is None else f"{t[0]}*{t[1]}")
action_text = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda parts, sep: sep.join(parts), st.lists(tokens, max_size=12), st.sampled_from([" ", ",", ", "])
    ),
)


@given(action_text, st.sampled_from(SPECS))
def test_parser_raises_only_its_own_error(text, spec):
    with contextlib.suppress(ActionError):
        parse_actions(text, spec)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=20,
)


@given(st.lists(json_values, max_size=10), st.sampled_from(SPECS))
def test_parser_raises_only_its_own_error_on_any_sequence(sequence, spec):
    with contextlib.suppress(ActionError):
        parse_actions(sequence, spec)


@given(action_text, st.sampled_from(SPECS))
def test_whatever_parses_formats_to_text_that_parses_the_same(text, spec):
    try:
        actions = parse_actions(text, spec)
    except ActionError:
        return
    assert np.array_equal(parse_actions(format_actions(actions, spec), spec), actions)


@given(st.data(), st.sampled_from([s for s in SPECS if s.action_kind == "discrete"]))
def test_discrete_round_trip(data, spec):
    actions = data.draw(st.lists(st.integers(0, spec.num_actions - 1), min_size=1, max_size=300))
    assert parse_actions(format_actions(actions, spec), spec).tolist() == actions


def test_continuous_actions_are_written_as_people_type_them():
    text = "[-0.6,0.3,0]*15 [1,0.25,0]"
    assert format_actions(parse_actions(text, CARRACING), CARRACING) == text
    assert format_actions(parse_actions("0.1 -2*3", PENDULUM), PENDULUM) == "0.1 -2*3"


@given(st.data(), st.sampled_from([s for s in SPECS if s.action_kind == "continuous"]))
def test_continuous_round_trip(data, spec):
    bounds = zip(spec.action_low, spec.action_high, strict=True)
    one_action = st.tuples(*[st.floats(lo, hi, width=32) for lo, hi in bounds])
    actions = np.asarray(data.draw(st.lists(one_action, min_size=1, max_size=50)), dtype=np.float32)
    text = format_actions(actions, spec)
    assert np.array_equal(parse_actions(text, spec), actions)
