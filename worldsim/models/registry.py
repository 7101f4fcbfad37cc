"""Model kinds by name, and `load`, which picks a checkpoint's class from its config.json.

A kind is a WorldModel subclass. The built-in kind is `latent`; an installed package adds kinds
through the entry point group `worldsim.models`, in its own pyproject.toml:

    [project.entry-points."worldsim.models"]
    pixel-unet = "worldsim_pixel_unet:PixelUNetWorldModel"

`load` reads config.json, looks its `kind` up here and calls that class's `from_pretrained`. A
kind that is not installed is an error naming it; code is never downloaded, files never unpickled.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

import torch

from worldsim.models.base import WorldModel, config_kind
from worldsim.models.checkpoint import CheckpointError, read_config_json, resolve

ENTRY_POINT_GROUP = "worldsim.models"
BUILTIN_KINDS = {"latent": "worldsim.models.latent:LatentWorldModel"}


def known_kinds() -> dict[str, str]:
    """kind -> "module:Class", built-in first, then those installed packages declare."""
    installed = {entry.name: entry.value for entry in entry_points(group=ENTRY_POINT_GROUP)}
    return {**installed, **BUILTIN_KINDS}


def model_class(kind: str) -> type[WorldModel]:
    """The class registered for `kind`; a one-line error naming it and the known kinds otherwise."""
    kinds = known_kinds()
    if kind not in kinds:
        raise CheckpointError(
            f"Unknown model kind {kind!r}; known kinds: {', '.join(sorted(kinds))}. Install the package "
            f"that provides {kind!r} (it registers the kind in the {ENTRY_POINT_GROUP!r} entry point group)."
        )
    module, _, name = kinds[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, WorldModel)):
        raise CheckpointError(
            f"Model kind {kind!r} points to {kinds[kind]}, which is not a worldsim.WorldModel."
        )
    return cls


def load(name_or_path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """A world model by shipped or plugin name ("cartpole"), Hub id ("hf://owner/name[@revision]")
    or checkpoint folder. Only JSON and safetensors are read; the config is validated first."""
    folder = resolve(name_or_path)
    data = read_config_json(folder)
    try:
        kind = config_kind(data)
    except ValueError as error:
        raise CheckpointError(f"{folder / 'config.json'}: {error}") from None
    return model_class(kind).from_pretrained(folder, device)
