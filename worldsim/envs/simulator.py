"""The real simulator, driven like a world model: seed + actions -> rendered frames."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from worldsim.envs.actions import parse_actions
from worldsim.envs.spec import get_spec


def simulator_frames(env_name: str, seed: int, actions="") -> np.ndarray:
    """Full-size rendered frames (T+1, H, W, 3) uint8: the reset frame, then one per action.

    Steps on past termination (CartPole: the pole keeps falling), as a world model would.
    """
    spec = get_spec(env_name)
    empty = not actions.strip() if isinstance(actions, str) else len(actions) == 0
    parsed = [] if empty else parse_actions(actions, spec)
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


@dataclass(frozen=True)
class SimulatorStart:
    """Where a start frame came from in the real simulator: a reset seed and the actions played
    after it. Written as text people can read and type: "seed 7" or "seed 3 after right left"."""

    seed: int
    actions: str = ""

    def __str__(self) -> str:
        return f"seed {self.seed}" + (f" after {self.actions}" if self.actions else "")

    @classmethod
    def parse(cls, text: str) -> SimulatorStart | None:
        """None for empty text; ValueError naming the accepted form otherwise."""
        text = (text or "").strip()
        if not text:
            return None
        match = re.fullmatch(r"seed\s+(\d{1,9})(?:\s+after\s+(.+))?", text, flags=re.IGNORECASE)
        if match is None:
            raise ValueError(
                f"Cannot read simulator start {text!r}; write 'seed 7' or 'seed 3 after right left'."
            )
        return cls(int(match.group(1)), (match.group(2) or "").strip())

    def frames(self, env_name: str, actions=()) -> np.ndarray:
        """Full-size frames from this start on: (T+1, H, W, 3), frame 0 the start frame itself."""
        prefix = list(parse_actions(self.actions, env_name)) if self.actions else []
        return simulator_frames(env_name, self.seed, prefix + list(actions))[len(prefix) :]
