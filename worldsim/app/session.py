"""A rollout session as a JSON file: everything needed to make the same video again.

The app offers it beside every video ("session.json"); loading it back fills in the model, the
start frame(s), the actions, the seed and the number of samples, and rolls out the identical
video. Start frames are stored as PNG at the model's resolution, which is exactly what the model
read (preprocessing a frame already at that size changes nothing).

    {"worldsim_session": 1, "model": "cartpole", "actions": "right*10 left*10",
     "seed": 0, "samples": 1, "simulator_start": "seed 7", "start_frames": ["<base64 PNG>"]}
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from worldsim.media.images import ImageError, load_image

SESSION_FORMAT = 1
MAX_SESSION_BYTES = 2_000_000  # a few 64x160 PNGs and some text; anything bigger is not ours


class SessionError(ValueError):
    """A session file that cannot be read; the message says what was wrong."""


@dataclass
class RolloutSession:
    model: str  # a registry name or hf:// id
    actions: str  # action text
    start_frames: list[np.ndarray] = field(repr=False)  # uint8 (h, w, 3) each, oldest first
    seed: int = 0
    samples: int = 1
    simulator_start: str = ""  # e.g. "seed 7"; "" when the start frame was an upload

    def to_json(self) -> str:
        data = {"worldsim_session": SESSION_FORMAT, **asdict(self)}
        data["start_frames"] = [_png_base64(frame) for frame in self.start_frames]
        return json.dumps(data, indent=1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def from_json(cls, text: str) -> RolloutSession:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:
            raise SessionError(f"Not a worldsim session file (invalid JSON: {error}).") from None
        if not isinstance(data, dict) or data.get("worldsim_session") != SESSION_FORMAT:
            raise SessionError(
                "Not a worldsim session file: expected a JSON object with "
                f'"worldsim_session": {SESSION_FORMAT}.'
            )
        expected = {"model": str, "actions": str, "seed": int, "samples": int, "simulator_start": str}
        for name, kind in expected.items():
            if not isinstance(data.get(name), kind) or isinstance(data.get(name), bool):
                raise SessionError(
                    f"Session field {name!r} must be a {kind.__name__}, got {data.get(name)!r}."
                )
        frames = data.get("start_frames")
        if not isinstance(frames, list) or not 1 <= len(frames) <= 8:
            raise SessionError("Session field 'start_frames' must list 1 to 8 base64 PNG frames.")
        return cls(
            model=data["model"],
            actions=data["actions"],
            start_frames=[_read_png_base64(frame) for frame in frames],
            seed=data["seed"],
            samples=data["samples"],
            simulator_start=data["simulator_start"],
        )

    @classmethod
    def load(cls, path: str | Path) -> RolloutSession:
        path = Path(path)
        size = path.stat().st_size
        if size > MAX_SESSION_BYTES:
            raise SessionError(f"Session file is {size:,} bytes; at most {MAX_SESSION_BYTES:,} are accepted.")
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise SessionError("Not a worldsim session file (not UTF-8 text).") from None


def _png_base64(frame: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _read_png_base64(text: object) -> np.ndarray:
    if not isinstance(text, str):
        raise SessionError("Session start frames must be base64-encoded PNG strings.")
    try:
        return load_image(io.BytesIO(base64.b64decode(text, validate=True)))
    except (binascii.Error, ImageError) as error:
        raise SessionError(f"A session start frame is not a readable PNG: {error}") from None
