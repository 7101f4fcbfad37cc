"""The examples a model is shown with: a start frame, the actions to play from it and, where the
frame came from the real simulator, that start ("seed 2 after [0,0,0]*50"). The app offers them,
renders the first as the model's showcase clip, and `eval` measures the model on their starts,
so that what a visitor sees first is measured too.

A listing is an `examples.json` in the checkpoint folder itself (a plugin ships its own), else in
assets/<model>/ or assets/<env>/:

    [{"frame": "seed2_after50.png", "start": "seed 2 after [0,0,0]*50", "actions": "[0,0.5,0]*30"}]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from worldsim.envs.spec import EnvSpec

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"


@dataclass(frozen=True)
class Example:
    frame: Path  # the start frame (an image file)
    actions: str
    start: str = ""  # the simulator start, e.g. "seed 7"; empty where the frame came from elsewhere


def example_listing(name: str, folder: Path) -> Path | None:
    """The examples.json a checkpoint `folder` (offered as `name`) is shown with, or None. A folder
    without a readable config has none."""
    folder = Path(folder)
    try:
        env = EnvSpec.from_dict(json.loads((folder / "config.json").read_text())["env"]).name
    except (OSError, KeyError, TypeError, ValueError):
        return None
    listings = [folder / "examples.json", *(ASSETS_DIR / key / "examples.json" for key in (name, env))]
    return next((path for path in listings if path.is_file()), None)


def model_examples(name: str, folder: Path) -> list[Example]:
    """Every example in the model's listing, in its order ([] without one)."""
    listing = example_listing(name, folder)
    if listing is None:
        return []
    return [
        Example(listing.parent / item["frame"], item["actions"], item.get("start", ""))
        for item in json.loads(listing.read_text())
    ]
