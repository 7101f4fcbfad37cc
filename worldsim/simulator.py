"""The real simulator, driven like a world model: seed + actions -> rendered frames."""

from __future__ import annotations

import warnings

import numpy as np

from worldsim.actions import parse_actions
from worldsim.envs import get_spec


def simulator_frames(env_name: str, seed: int, actions="") -> np.ndarray:
    """Full-size rendered frames (T+1, H, W, 3) uint8: the reset frame, then one per action.

    Steps on past termination (CartPole: the pole keeps falling), as a world model would.
    """
    spec = get_spec(env_name)
    parsed = parse_actions(actions, spec) if (not isinstance(actions, str) or actions.strip()) else []
    env = spec.make(disable_env_checker=True)
    env.reset(seed=seed)
    frames = [env.render()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for action in parsed:
            env.step(action)
            frames.append(env.render())
    env.close()
    return np.stack(frames)
