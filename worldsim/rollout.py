"""Rollout: start frame + action text -> video file. Shared by the CLI and the app.

load (cached) -> read start frame -> parse actions -> imagine -> encode video
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from worldsim.envs.actions import MAX_STEPS, parse_actions
from worldsim.media.images import load_image
from worldsim.media.video import write_video
from worldsim.models.checkpoint import load
from worldsim.models.latent import WorldModel


@functools.lru_cache(maxsize=8)
def cached_model(name: str, device: str = "cpu") -> WorldModel:
    """Models stay loaded between requests: cold start is paid once per process."""
    return load(name, device)


def rollout_frames(
    model: WorldModel,
    start,
    actions,
    seed: int | None = None,
    max_steps: int = MAX_STEPS,
    progress=None,
) -> np.ndarray:
    """Start image (path, PIL image or array) and actions (text or sequence) -> (T+1, h, w, 3)."""
    frame = load_image(start)
    parsed = parse_actions(actions, model.spec, max_steps=max_steps)
    return model.rollout(frame, parsed, seed=seed, progress=progress)


def rollout_to_file(
    model_name: str, start, actions: str, out: str | Path, seed: int | None = None, device: str = "cpu"
) -> Path:
    """The CLI's `rollout`: actions may be text or @file holding the text."""
    if actions.startswith("@"):
        actions = Path(actions[1:]).read_text()
    model = cached_model(model_name, device)
    frames = rollout_frames(model, start, actions, seed=seed)
    return write_video(frames, out, model.spec.fps)
