"""The models an app offers: shipped checkpoints, checkpoints that installed packages ship, Hub
ids and folders, each by the name the picker shows. `python -m worldsim models` lists them.

Descriptions read config.json only: no weights are loaded and no code runs but the entry points
of installed packages.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from worldsim.envs.spec import EnvSpec
from worldsim.hub.client import is_hub_id
from worldsim.models.base import config_kind
from worldsim.models.checkpoint import (
    CheckpointError,
    plugin_checkpoints,
    read_config_json,
    resolve,
    shipped_checkpoints,
)

SOURCES = ("shipped", "plugin", "hub", "folder")


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what the picker shows and `load` is given
    source: str  # one of SOURCES
    location: str  # the folder, or the hf:// id

    def describe(self) -> dict:
        """name, kind, env (gymnasium id), source and example_actions, from config.json alone.
        A Hub model that is not in the local cache is listed with kind and env unknown."""
        info = {"name": self.name, "kind": None, "env": None, "source": self.source, "example_actions": None}
        try:
            folder = resolve(self.location) if self.source != "hub" else _cached_hub_folder(self.location)
            if folder is None:
                return info
            config = read_config_json(folder)
            spec = EnvSpec.from_dict(config["env"])
        except (CheckpointError, KeyError, TypeError, ValueError):
            return info
        return {
            **info,
            "kind": config_kind(config),
            "env": spec.gym_id,
            "example_actions": spec.example_actions,
        }


def model_entries(extra: Iterable[str] = ()) -> list[ModelEntry]:
    """Shipped checkpoints, plugin checkpoints, the Hub ids listed in WORLDSIM_HUB_MODELS
    (comma-separated; a Space preloads them with `preload_from_hub`), then `extra`: names of the
    above, hf:// ids or folders (a folder is offered under its own name)."""
    entries: dict[str, ModelEntry] = {}
    for name, folder in shipped_checkpoints().items():
        entries[name] = ModelEntry(name, "shipped", str(folder))
    for name, folder in plugin_checkpoints().items():
        entries.setdefault(name, ModelEntry(name, "plugin", str(folder)))
    hub = [m.strip() for m in os.environ.get("WORLDSIM_HUB_MODELS", "").split(",") if is_hub_id(m.strip())]
    for item in [*hub, *extra]:
        item = str(item).strip()
        if item in entries:
            continue
        if is_hub_id(item):
            entries[item] = ModelEntry(item, "hub", item)
        elif Path(item).is_dir():
            entries.setdefault(
                Path(item).resolve().name, ModelEntry(Path(item).resolve().name, "folder", item)
            )
        else:
            raise CheckpointError(f"No model {item!r}: not a shipped or plugin model, hf:// id or folder.")
    return list(entries.values())


def select(entries: list[ModelEntry], names: Iterable[str]) -> list[ModelEntry]:
    """Only the entries named (in that order)."""
    by_name = {entry.name: entry for entry in entries}
    return [by_name[name] for name in names if name in by_name]


def _cached_hub_folder(hub_id: str) -> Path | None:
    """The cached snapshot of a Hub model, without touching the network."""
    from worldsim.hub.client import cached_snapshot

    return cached_snapshot(hub_id)
