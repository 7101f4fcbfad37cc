"""Live play: step a world model one action at a time, with undo and branching.

A `PlaySession` keeps every frame and model state of the game so far, so going back is free:
`seek(t)` shows an earlier frame, and the next `step` branches from it (the later frames are
dropped, as in an editor's undo history). The app keeps one session per browser tab.

    >>> session = PlaySession.start(load("cartpole"), frame)
    >>> session.step("right")          # -> uint8 (h, w, 3), the imagined next frame
    >>> session.undo(); session.seek(0); session.actions_text()
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from worldsim.envs.actions import format_actions, parse_actions
from worldsim.models.base import WorldModel

KEY_ROLES = ("left", "right", "up", "down", "space")  # arrows / WASD, and the space bar
MAX_PLAY_STEPS = 3000  # one session's history: a minute at 50 steps/s, a few MB of frames


@dataclass
class PlaySession:
    """The frames, actions and model states of one game; `position` is the frame on screen."""

    model: WorldModel
    frames: list[np.ndarray]  # uint8 (h, w, 3) at model resolution; frames[0] is the start
    states: list  # the model's state at each frame
    actions: list = field(default_factory=list)  # actions[t] led from frames[t] to frames[t + 1]
    rewards: list = field(default_factory=list)  # rewards[t]: of actions[t] (capability `outcome`)
    ended: list = field(default_factory=list)  # ended[t]: the episode had ended by frames[t + 1]
    position: int = 0
    model_name: str = ""  # what the model was loaded as: a registry name, folder or hf:// id

    @classmethod
    @torch.inference_mode()
    def start(
        cls, model: WorldModel, start: np.ndarray | list[np.ndarray], model_name: str = ""
    ) -> PlaySession:
        """Begin from one RGB start frame of any size (or up to K frames, oldest first)."""
        context = model.prepare_context(start)
        state = model.start(torch.from_numpy(context)[None].to(model.device))
        return cls(model=model, frames=[context[-1]], states=[state], model_name=model_name)

    @property
    def steps(self) -> int:
        return len(self.actions)

    @torch.inference_mode()
    def step(self, action) -> np.ndarray:
        """One environment step with `action` (text like "left", an index, or a vector) from the
        frame on screen; later frames, if the timeline was rewound, are dropped (a branch)."""
        if self.position >= MAX_PLAY_STEPS:
            raise ValueError(f"A play session holds at most {MAX_PLAY_STEPS} steps: restart or go back.")
        parsed = parse_actions([action] if not isinstance(action, str) else action, self.model.spec)
        if len(parsed) != 1:
            raise ValueError(f"One action per step, got {len(parsed)}.")
        self._truncate(self.position)
        state = self.model.step(self.states[-1], torch.as_tensor(parsed, device=self.model.device))
        frame = self.model.render(state)[0].cpu().numpy()
        if self.model.capabilities.outcome:
            outcome = self.model.outcome(state)
            self.rewards.append(float(outcome.reward[0]))
            self.ended.append(bool(outcome.terminated[0]) or self.game_over)
        self.frames.append(frame)
        self.states.append(state)
        self.actions.append(parsed[0])
        self.position += 1
        return frame

    def _truncate(self, keep: int) -> None:
        """Forget everything after frame `keep`."""
        del self.frames[keep + 1 :], self.states[keep + 1 :], self.actions[keep:]
        del self.rewards[keep:], self.ended[keep:]

    @property
    def game_over(self) -> bool:
        """The model predicts that the episode has ended by the frame on screen."""
        return bool(self.ended) and self.position > 0 and self.ended[self.position - 1]

    @property
    def score(self) -> float | None:
        """The sum of predicted rewards up to the frame on screen (None: the model has none)."""
        return sum(self.rewards[: self.position]) if self.model.capabilities.outcome else None

    def seek(self, position: int) -> np.ndarray:
        """Show frame `position` (clamped to the timeline); the next step branches from it."""
        self.position = int(min(max(position, 0), len(self.frames) - 1))
        return self.frames[self.position]

    def undo(self) -> np.ndarray:
        """Drop the last step (or, when rewound, everything after the frame on screen and it)."""
        keep = max(self.position - 1, 0)
        self._truncate(keep)
        self.position = keep
        return self.frames[keep]

    def restart(self) -> np.ndarray:
        """Back to the start frame, forgetting the game."""
        self.seek(0)
        self._truncate(0)
        return self.frames[0]

    @property
    def frame(self) -> np.ndarray:
        return self.frames[self.position]

    def video_frames(self) -> np.ndarray:
        """(T+1, h, w, 3): the game up to the frame on screen."""
        return np.stack(self.frames[: self.position + 1])

    def actions_text(self) -> str:
        """The actions up to the frame on screen as action text ('' before the first step)."""
        taken = self.actions[: self.position]
        return format_actions(np.stack(taken), self.model.spec) if taken else ""
