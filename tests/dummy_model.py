"""A world model that is not worldsim's: the contract kept in a few lines, for contract tests.

It "predicts" by sliding the start frame one pixel per step in the pushed direction (left: -1,
right: +1), ends the episode after `episode_steps` steps and pays 1 per step. No torch module,
no weights: config.json is its whole checkpoint.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from worldsim import Capabilities, EnvSpec, Outcome, WorldModel
from worldsim.envs.builtin import get_spec

FOLDER = Path(tempfile.gettempdir()) / "worldsim-tests" / "dummy-box"


@dataclass
class SlideState:
    frames: torch.Tensor  # uint8 (B, h, w, 3)
    steps: torch.Tensor  # (B,) steps taken


class SlideWorldModel(WorldModel):
    kind = "slide"
    capabilities = Capabilities(outcome=True)

    def __init__(self, spec: EnvSpec, episode_steps: int = 10):
        self.spec, self.context_frames, self.episode_steps = spec, 1, episode_steps

    def start(self, frames: torch.Tensor, sample: bool = False) -> SlideState:
        return SlideState(frames[:, -1], torch.zeros(len(frames), dtype=torch.long))

    def step(self, state: SlideState, actions: torch.Tensor) -> SlideState:
        shift = actions.long() * 2 - 1  # CartPole: 0 left, 1 right
        frames = torch.stack([f.roll(int(s), dims=1) for f, s in zip(state.frames, shift, strict=True)])
        return SlideState(frames, state.steps + 1)

    def render(self, state: SlideState) -> torch.Tensor:
        return state.frames

    def outcome(self, state: SlideState) -> Outcome:
        return Outcome(torch.ones(len(state.steps)), state.steps >= self.episode_steps)

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "kind": self.kind,
            "format_version": 1,
            "env": self.spec.to_dict(),
            "episode_steps": self.episode_steps,
        }
        (folder / "config.json").write_text(json.dumps(config))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device="cpu") -> SlideWorldModel:
        config = json.loads((Path(folder) / "config.json").read_text())
        return cls(EnvSpec.from_dict(config["env"]), int(config["episode_steps"]))


def checkpoint_folder() -> Path:
    """The `worldsim.checkpoints` entry point: a checkpoint this 'package' ships. Written on every
    call: a folder left in the temp dir by an older run would hold an older built-in spec."""
    SlideWorldModel(get_spec("cartpole")).save_pretrained(FOLDER)
    return FOLDER
