"""What the Gradio app does, kept out of app.py so it can be tested by calling it.

Handlers take what Gradio hands them (file paths, text) and return what Gradio shows; every
expected failure becomes a gr.Error with our message, so the page says what was wrong and the
server goes on serving everyone else.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import gradio as gr

from worldsim.actions import ActionError, accepted_actions, format_actions, parse_actions
from worldsim.checkpoint import CHECKPOINTS_DIR, CheckpointError
from worldsim.images import ACCEPTED_IMAGES, ImageError
from worldsim.rollout import cached_model, rollout_frames
from worldsim.video import write_video

MAX_ROLLOUT_STEPS = 300  # per request in the app: ~1-2 s of CPU, 6 s of CartPole video
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
VIDEO_DIR = Path(tempfile.gettempdir()) / "worldsim-videos"


def shipped_models() -> list[str]:
    """Names of the checkpoints shipped in checkpoints/, for the Model picker."""
    return sorted(p.parent.name for p in CHECKPOINTS_DIR.glob("*/config.json"))


def examples() -> list[list[str]]:
    """[model, start frame, actions] rows from each assets/<model>/examples.json."""
    rows = []
    for model in shipped_models():
        listing = ASSETS_DIR / model / "examples.json"
        if listing.exists():
            for example in json.loads(listing.read_text()):
                rows.append([model, str(listing.parent / example["frame"]), example["actions"]])
    return rows


def describe_model(model_name: str) -> str:
    """Markdown: what the chosen model accepts."""
    if model_name not in shipped_models():
        return ""
    spec = cached_model(model_name).spec
    return (
        f"**{spec.gym_id}** at {spec.fps:g} steps/s. {accepted_actions(spec)}. "
        f"Repeat with `TOKEN*N`; at most {MAX_ROLLOUT_STEPS} steps. Start frame: {ACCEPTED_IMAGES}, any size."
    )


def rollout_video(model_name: str, start_frame: str | None, actions: str, progress=gr.Progress()):  # noqa: B008 (gradio injects it)
    """(model, start frame path, action text) -> (mp4 path, summary markdown)."""
    if model_name not in shipped_models():
        raise gr.Error(f"Unknown model {model_name!r}. Choose one of: {', '.join(shipped_models())}.")
    if not start_frame:
        raise gr.Error(f"Upload a start frame first ({ACCEPTED_IMAGES}).")
    if not (actions or "").strip():
        raise gr.Error("Type some actions first, e.g. " + repr(cached_model(model_name).spec.example_actions))
    started = time.perf_counter()
    try:
        model = cached_model(model_name)
        parsed = parse_actions(actions, model.spec, max_steps=MAX_ROLLOUT_STEPS)
        frames = rollout_frames(model, start_frame, parsed, progress=progress.tqdm)
    except (ActionError, ImageError, CheckpointError) as error:
        raise gr.Error(str(error)) from None
    imagined = time.perf_counter() - started
    VIDEO_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".mp4", dir=VIDEO_DIR, delete=False) as file:
        path = write_video(frames, file.name, model.spec.fps)
    total = time.perf_counter() - started
    steps = len(parsed)
    summary = (
        f"{format_actions(parsed, model.spec)}: {steps} steps, {steps / model.spec.fps:.2f} s of play. "
        f"Imagined in {imagined:.2f} s ({steps / max(imagined, 1e-9):,.0f} frames/s), "
        f"video ready in {total:.2f} s."
    )
    return str(path), summary
