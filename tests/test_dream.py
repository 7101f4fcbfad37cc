"""worldsim/Dream-v0: the shipped CartPole model driven exactly like CartPole-v1."""

import gymnasium as gym
import numpy as np
import pytest

import worldsim  # registers worldsim/Dream-v0
from worldsim.data.collect import EVAL_SEED_START


def test_dream_has_the_real_action_space_and_uint8_frames():
    env = gym.make("worldsim/Dream-v0", model="cartpole")
    assert env.action_space == gym.make("CartPole-v1").action_space
    frame, info = env.reset(seed=3)
    assert info["simulator_seed"] == 3
    assert frame.dtype == np.uint8 and frame.shape == env.observation_space.shape == (64, 160, 3)
    frame, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert frame.dtype == np.uint8 and frame.shape == (64, 160, 3)
    assert isinstance(reward, float) and isinstance(terminated, bool) and truncated is False
    assert env.render().shape == frame.shape


def test_reset_starts_from_the_simulators_frame_or_from_given_frames():
    from worldsim.envs.builtin import get_spec
    from worldsim.envs.simulator import simulator_frames

    env = gym.make("worldsim/Dream-v0", model="cartpole")
    spec = get_spec("cartpole")
    real = simulator_frames(spec, 11)[0]
    frame, _ = env.reset(seed=11)
    assert np.array_equal(frame, worldsim.preprocess(real, spec))
    given, info = env.reset(options={"frames": [real]})
    assert np.array_equal(given, frame) and "simulator_seed" not in info


def test_stepping_before_reset_is_an_error():
    env = gym.make("worldsim/Dream-v0", model="cartpole", disable_env_checker=True)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)


@pytest.mark.slow
def test_constant_right_pushes_end_the_dream_as_they_end_the_real_cartpole():
    """The bar of issue 13: within 100 steps, for at least 18 of 20 held-out seeds."""
    env = gym.make("worldsim/Dream-v0", model="cartpole")
    ended = []
    for seed in range(EVAL_SEED_START, EVAL_SEED_START + 20):
        env.reset(seed=seed)
        for step in range(1, 101):
            *_, terminated, _, _ = env.step(1)
            if terminated:
                ended.append(step)
                break
    assert len(ended) >= 18, ended
