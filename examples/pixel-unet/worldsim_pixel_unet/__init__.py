"""worldsim-pixel-unet: a second kind of world model for worldsim, as an installable plugin.

Two entry points (pyproject.toml) are all worldsim needs:

    worldsim.models       pixel-unet    -> worldsim_pixel_unet.model:PixelUNetWorldModel
    worldsim.checkpoints  breakout-unet -> worldsim_pixel_unet:checkpoint_folder

This module stays light (no torch import): worldsim calls `checkpoint_folder` when it lists
models, and the model class is imported only when a pixel-unet checkpoint is loaded.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def checkpoint_folder() -> Path:
    """The folder of the shipped Breakout model (config.json, model.safetensors, card, examples)."""
    return CHECKPOINTS / "breakout-unet"


def __getattr__(name: str):
    if name in ("PixelUNetWorldModel", "PixelUNetConfig"):
        from worldsim_pixel_unet import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
