"""The real simulator, driven like a world model: seed + actions -> rendered frames."""

from __future__ import annotations

import re
import threading
import warnings
from dataclasses import dataclass

import numpy as np

from worldsim.envs.actions import parse_actions
from worldsim.envs.spec import EnvSpec

# pygame, which draws the classic-control and Box2D envs, is not thread-safe: two simulators
# rendering at once in one process (the app serves requests in threads while its showcase renders
# in the background) drew wrong frames, 75 in 100 21-frame CartPole rollouts beside a second
# thread, and one env's close() quits pygame under another's feet. Every simulator steps,
# renders and closes under this lock; a step is well under a millisecond, so nobody waits long.
RENDER_LOCK = threading.RLock()


class Simulator:
    """The real environment, stepped like a world model: `reset(seed)` gives the start frame,
    `step(action)` the next frame with its reward and termination. It steps on past termination
    (CartPole: the pole keeps falling), as users drive a model past that point.

        with Simulator(spec) as sim:
            frame = sim.reset(seed=7)
            frame, reward, terminated = sim.step(1)
    """

    def __init__(self, spec: EnvSpec):
        self.spec = spec
        with RENDER_LOCK:
            self.env = spec.make(disable_env_checker=True)
        self.observation = None  # the env's own last observation (policies read it)

    def reset(self, seed: int) -> np.ndarray:
        """Full-size rendered frame (H, W, 3) uint8 after a reset with `seed`."""
        with RENDER_LOCK:
            self.observation, _ = self.env.reset(seed=seed)
            return self.env.render()

    def step(self, action) -> tuple[np.ndarray, float, bool]:
        with RENDER_LOCK, warnings.catch_warnings():  # stepping past termination is intended
            warnings.simplefilter("ignore")
            self.observation, reward, terminated, _, _ = self.env.step(action)
            frame = self.env.render()
        return frame, float(reward), bool(terminated)

    def close(self) -> None:
        with RENDER_LOCK:
            self.env.close()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def simulator_frames(spec: EnvSpec, seed: int, actions="") -> np.ndarray:
    """Full-size rendered frames (T+1, H, W, 3) uint8: the reset frame, then one per action."""
    empty = not actions.strip() if isinstance(actions, str) else len(actions) == 0
    parsed = [] if empty else parse_actions(actions, spec)
    with Simulator(spec) as sim:
        frames = [sim.reset(seed)]
        frames += [sim.step(action)[0] for action in parsed]
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

    def played(self, spec: EnvSpec) -> list:
        """The actions played after the reset to reach the start frame."""
        return list(parse_actions(self.actions, spec)) if self.actions else []

    def frames_before(self, spec: EnvSpec, count: int) -> np.ndarray:
        """The start frame and up to `count` frames played before it, oldest first (H, W, 3)."""
        return simulator_frames(spec, self.seed, self.played(spec))[-1 - count :]

    def frames(self, spec: EnvSpec, actions=()) -> np.ndarray:
        """Full-size frames from this start on: (T+1, H, W, 3), frame 0 the start frame itself."""
        prefix = self.played(spec)
        return simulator_frames(spec, self.seed, prefix + list(actions))[len(prefix) :]
