"""The rollout service: the one loop that drives a world model through a sequence of actions.

The app's Roll out and Compare, evaluation, the benchmarks and `WorldModel.rollout` all dream
through `imagine`; Play and Dream-v0 step the same contract one action at a time.

    load (cached) -> read start frame -> parse actions -> imagine -> encode video
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldsim.envs.actions import MAX_STEPS, parse_actions
from worldsim.media.images import load_image
from worldsim.media.video import write_video
from worldsim.models.base import WorldModel
from worldsim.models.registry import load

# Frames drawn per render_many call when imagining a whole sequence. Batching the decoder over
# time is the biggest CPU speed-up (CartPole, batch 1: 186 -> 440 frames/s); much larger passes
# get slower again (memory bound), see docs/performance.md.
RENDER_FRAMES = 64


@dataclass
class Dream:
    """What a model imagined for a batch of rows."""

    frames: np.ndarray  # uint8 (B, T+1, h, w, 3); frame 0 is the last context frame
    rewards: np.ndarray | None  # (B, T) float32: the reward of each step (capability `outcome`)
    terminated: np.ndarray | None  # (B, T) bool: the episode had ended by the frame after step t

    def episode_lengths(self) -> np.ndarray | None:
        """(B,) steps until the first predicted episode end (T where none ends)."""
        if self.terminated is None:
            return None
        ended = self.terminated.any(axis=1)
        return np.where(ended, self.terminated.argmax(axis=1) + 1, self.terminated.shape[1])


@functools.lru_cache(maxsize=8)
def cached_model(name: str, device: str = "cpu") -> WorldModel:
    """Models stay loaded between requests: cold start is paid once per process."""
    return load(name, device)


@torch.inference_mode()
def imagine(
    model: WorldModel,
    context: np.ndarray,
    actions: np.ndarray,
    sample: bool = False,
    progress=None,
    past: np.ndarray | None = None,
) -> Dream:
    """Batched rollout: context uint8 (B, K, h, w, 3) at model resolution, actions (B, T, ...)
    -> a Dream of T steps. With `sample`, each row draws its own future (torch's RNG) where the
    model can sample. `progress` wraps the chunks drawn (tqdm-like). `past` (B, N, ...): the
    actions played into the last context frame, for a model that takes them (`past_actions`)."""
    frames = torch.as_tensor(context, dtype=torch.uint8, device=model.device)
    action_tensor = torch.as_tensor(actions, device=model.device)
    state = start_state(model, frames, sample and model.capabilities.sampling, past)
    states = []
    for t in range(action_tensor.shape[1]):  # stepping is cheap; drawing is the work
        state = model.step(state, action_tensor[:, t])
        states.append(state)
    per_pass = max(1, RENDER_FRAMES // frames.shape[0])  # steps drawn per call
    chunks = range(0, len(states), per_pass)
    video = [frames[:, -1][None]]
    for start in chunks if progress is None else progress(chunks):
        video.append(model.render_many(states[start : start + per_pass]))
    video = torch.cat(video).transpose(0, 1).cpu().numpy()
    if not model.capabilities.outcome or not states:
        return Dream(video, None, None)
    # after drawing: a model whose outcome reads its frames has them drawn by now
    outcomes = [model.outcome(state) for state in states]
    rewards, ended = [o.reward for o in outcomes], [o.terminated for o in outcomes]
    # once ended, ended for good: a model may forget that it crashed a few steps later
    terminated = torch.stack(ended, dim=1).cpu().numpy().astype(bool)
    return Dream(
        video, torch.stack(rewards, dim=1).cpu().numpy(), np.logical_or.accumulate(terminated, axis=1)
    )


def start_state(model: WorldModel, frames: torch.Tensor, sample: bool = False, past=None):
    """`model.start`, given the actions played into the last frame (B, N, ...) where the model
    takes them and they are known; other models never see them (the contract's `past`)."""
    if model.past_actions and past is not None:
        return model.start(frames, sample=sample, past=torch.as_tensor(past, device=model.device))
    return model.start(frames, sample=sample)


def dream(
    model: WorldModel,
    start,
    actions,
    seed: int | None = None,
    num_samples: int = 1,
    progress=None,
    max_steps: int = MAX_STEPS,
    past=None,
) -> Dream:
    """Start frame(s) (a path, an image or an array of any size; or up to K frames, oldest
    first) and actions (text or a sequence) -> a Dream of num_samples rows: row 0 the best
    guess, the others sampled where the model can (`seed` makes them repeatable). `past`: the
    actions played into the start frame, where known (text or a sequence)."""
    frames = (
        start if isinstance(start, list) or (isinstance(start, np.ndarray) and start.ndim == 4) else [start]
    )
    context = model.prepare_context([f if isinstance(f, np.ndarray) else load_image(f) for f in frames])
    parsed = parse_actions(actions, model.spec, max_steps=max_steps)
    if past is not None:
        past = np.repeat(parse_actions(past, model.spec)[None], num_samples, axis=0)
    if seed is not None:
        torch.manual_seed(seed)
    return imagine(
        model,
        np.repeat(context[None], num_samples, axis=0),
        np.repeat(parsed[None], num_samples, axis=0),
        sample=num_samples > 1,
        progress=progress,
        past=past,
    )


def rollout_to_file(
    model_name: str, start, actions: str, out: str | Path, seed: int | None = None, device: str = "cpu"
) -> Path:
    """The CLI's `rollout`: actions may be text or @file holding the text."""
    if actions.startswith("@"):
        actions = Path(actions[1:]).read_text()
    model = cached_model(model_name, device)
    return write_video(dream(model, start, actions, seed=seed).frames[0], out, model.spec.fps)
