"""The world-model contract: all that worldsim's app, CLI, evaluation, Hub code and Dream-v0 know
of a model. docs/contract.md explains it for someone bringing their own model.

A world model is an environment you imagine in, batched:

    state = model.start(frames)            # uint8 (B, K, h, w, 3), 1 <= K <= model.context_frames
    state = model.start(frames, past=acts)  # where model.past_actions > 0: the actions played into them
    state = model.step(state, actions)     # (B,) int64 discrete or (B, D) float32 continuous
    frames = model.render(state)           # uint8 (B, h, w, 3)

`model.spec` describes the environment (gymnasium id and kwargs, actions with names and play
keys, fps, the view: crop and frame size), as data stored in config.json. What a model can do
beyond that is declared in `capabilities` and never probed: a consumer checks the flag, and the
app hides what a model lacks.

Every kind saves itself as a folder (`save_pretrained`: config.json with its `kind` and
`format_version`, weights as safetensors) and loads from one (`from_pretrained`). Kinds register
by name (worldsim.models.registry), built in or through the `worldsim.models` entry point group
of an installed package. Nothing is ever unpickled and no code is ever downloaded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from worldsim.envs.spec import EnvSpec, preprocess

State = Any  # whatever a kind keeps between steps; consumers only pass it back


@dataclass(frozen=True)
class Capabilities:
    """What a model can do beyond start, step and render. Each flag promises a method."""

    sampling: bool = False  # start(frames, sample=True) draws what the frames leave open, per row
    outcome: bool = False  # outcome(state): the reward of the last step and whether the episode ended
    encoder: bool = False  # reconstruct(frames): the familiarity check of uploaded frames
    redraw: bool = False  # redraw(video): true frames as the model draws them (evaluation)
    onnx: bool = False  # export_onnx(folder): start and step graphs for play in the page

    def names(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]


@dataclass
class Outcome:
    """What the last step led to, per row: reward (B,) float32 and terminated (B,) bool."""

    reward: torch.Tensor
    terminated: torch.Tensor


class WorldModel(ABC):
    """The contract. Subclasses set `kind`, `capabilities`, `spec` and `context_frames`, and
    implement start, step, render, save_pretrained and from_pretrained (plus the methods their
    capabilities promise). Tensors live on `device`; frames are uint8 (..., h, w, 3) at the
    model's resolution (spec.height, spec.width)."""

    kind: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    spec: EnvSpec
    context_frames: int = 1
    # How many of the actions played into the last start frame `start` takes (`past`); 0: none,
    # and `start` need not accept them (consumers pass `past` only to a model that takes some).
    past_actions: int = 0
    calibration: dict | None = None  # familiarity check of uploads (evaluation.familiarity), if any

    @abstractmethod
    def start(self, frames: torch.Tensor, sample: bool = False) -> State:
        """frames uint8 (B, K, h, w, 3), oldest first, 1 <= K <= context_frames -> the state at
        the last frame. With `sample` (capability `sampling`), rows after the first draw what the
        frames leave open (row 0 stays the best guess); otherwise `sample` is ignored. A model
        with `past_actions` > 0 also takes `past=`: the actions played into the last frame, (B, N)
        int64 or (B, N, D) float32, oldest first, -1 or NaN where unknown; None: none known."""

    @abstractmethod
    def step(self, state: State, actions: torch.Tensor) -> State:
        """One environment step for every row: actions (B,) int64 or (B, D) float32."""

    @abstractmethod
    def render(self, state: State) -> torch.Tensor:
        """The frames of a state: uint8 (B, h, w, 3)."""

    def render_many(self, states: list[State]) -> torch.Tensor:
        """Frames of several states: uint8 (T, B, h, w, 3). Override to batch the work."""
        return torch.stack([self.render(state) for state in states])

    def outcome(self, state: State) -> Outcome:
        """Capability `outcome`: reward of the step into `state` and whether the episode ended."""
        raise NotImplementedError(f"{type(self).__name__} does not predict reward or episode end.")

    def reconstruct(self, frames: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Capability `encoder`: uint8 (B, h, w, 3) frames as the model's encoder explains them
        (a kind that draws over a reference frame draws over `reference`, uint8 (h, w, 3))."""
        raise NotImplementedError(f"{type(self).__name__} has no image encoder.")

    def redraw(self, video: np.ndarray) -> np.ndarray:
        """Capability `redraw`: true frames uint8 (B, T+1, h, w, 3) as the model would draw them
        if it predicted their latents exactly. Evaluation tells the drawing's cost from the
        dynamics' with it."""
        raise NotImplementedError(f"{type(self).__name__} cannot redraw frames.")

    def export_onnx(self, folder: str | Path) -> list[Path]:
        """Capability `onnx`: write start and step graphs into `folder`."""
        raise NotImplementedError(f"{type(self).__name__} has no ONNX export.")

    @abstractmethod
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write config.json (with `kind` and `format_version`) and the weights into `folder`."""

    @classmethod
    @abstractmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> WorldModel:
        """Rebuild a model from a local folder that `save_pretrained` wrote. Validate the config
        before building anything; read only JSON and safetensors."""

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    # --- built on the contract: consumers call these, kinds do not override them ---------------

    def prepare_context(self, start: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """One frame (H, W, 3) or up to K frames (K, H, W, 3) of any size -> (K, h, w, 3) uint8."""
        frames = [start] if isinstance(start, np.ndarray) and start.ndim == 3 else list(start)
        if not frames:
            raise ValueError("No start frame given.")
        frames = frames[-self.context_frames :]
        return np.stack([preprocess(np.asarray(frame), self.spec) for frame in frames])

    def rollout(
        self,
        start: np.ndarray | list[np.ndarray],
        actions,
        seed: int | None = None,
        num_samples: int = 1,
        progress=None,
        past=None,
    ) -> np.ndarray:
        """Imagine the future from start frame(s) under `actions` (text or a sequence).

        start: one RGB uint8 frame (H, W, 3) of any size, or up to K frames, oldest first.
        Returns uint8 (T+1, h, w, 3): frame 0 is the last start frame as the model sees it,
        frame t the prediction after t actions. With num_samples > 1: (S, T+1, h, w, 3), sample
        0 the best guess and the others drawn from what the start frames leave open; `seed`
        makes them repeatable. A model that cannot sample returns identical samples. `past`
        (text or a sequence): the actions played into the start frame, where known; a model
        that takes some (`past_actions`) uses the last of them.
        """
        from worldsim.rollout import dream

        video = dream(
            self, start, actions, seed=seed, num_samples=num_samples, progress=progress, past=past
        ).frames
        return video[0] if num_samples == 1 else video


class PretrainedWorldModel(nn.Module, WorldModel):
    """A WorldModel that is a torch module with a config dataclass: save_pretrained and
    from_pretrained come with it. A kind sets `kind`, `config_class` (a dataclass with an `env`
    EnvSpec field, `context_frames`, `to_dict()` and a `from_dict(data)` that validates) and
    `format_version`, and builds its layers in __init__(config)."""

    config_class: ClassVar[type]
    format_version: ClassVar[int] = 1

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.spec = config.env
        self.context_frames = config.context_frames
        self.past_actions = getattr(config, "past_actions", 0)
        self.calibration = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def config_dict(self) -> dict:
        return {"kind": self.kind, "format_version": self.format_version, **self.config.to_dict()}

    def save_pretrained(
        self, folder: str | Path, training: dict | None = None, metrics: dict | None = None
    ) -> Path:
        from worldsim.models.checkpoint import save_checkpoint

        return save_checkpoint(self, folder, training=training, metrics=metrics)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> PretrainedWorldModel:
        from worldsim.evaluation.familiarity import read_calibration
        from worldsim.models.checkpoint import CheckpointError, read_config_json, read_weights

        folder = Path(folder)
        data = read_config_json(folder)
        try:
            config = cls.config_class.from_dict(data)
        except (TypeError, ValueError, KeyError) as error:
            raise CheckpointError(f"{folder / 'config.json'}: {error}") from None
        model = read_weights(lambda: cls(config), folder)
        model.calibration = read_calibration(folder)
        return model.to(device).eval()


def config_from_fields(cls, data: dict):
    """The config dataclass `cls` from config.json's fields, once "kind" and "format_version" are
    taken off (and older formats upgraded): unknown fields are refused and "env" becomes an
    EnvSpec, before any tensor exists. Every kind's `from_dict` ends with it."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"config.json has unknown field(s) {unknown}; known: {sorted(known)}")
    if "env" not in data:
        raise ValueError("config.json has no 'env' (the environment description)")
    return cls(**{**data, "env": EnvSpec.from_dict(data["env"])})


def config_kind(data: dict) -> str:
    """The `kind` field of a config.json's contents ('latent' where older configs leave it out)."""
    kind = data.get("kind", "latent")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"config.json 'kind' must be a non-empty string, got {kind!r}")
    return kind


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1]."""
    return frames.movedim(-1, -3).float() / 255


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """float (..., 3, H, W) in [0, 1] -> uint8 (..., H, W, 3)."""
    return (frames.movedim(-3, -1) * 255).round().clamp(0, 255).to(torch.uint8)
