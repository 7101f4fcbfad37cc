"""What the Gradio app does, kept out of app.py so it can be tested by calling it.

Handlers take what Gradio hands them (file paths, text) and return what Gradio shows; every
expected failure becomes a gr.Error with our message, so the page says what was wrong and the
server goes on serving everyone else.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from worldsim.actions import ActionError, accepted_actions, format_actions, parse_actions
from worldsim.checkpoint import CHECKPOINTS_DIR, CheckpointError
from worldsim.compare import difference, per_step_psnr, side_by_side
from worldsim.envs import preprocess
from worldsim.hub import is_hub_id
from worldsim.images import ACCEPTED_IMAGES, ImageError, load_image
from worldsim.model import WorldModel
from worldsim.rollout import cached_model
from worldsim.simulator import SimulatorStart
from worldsim.video import write_video

MAX_ROLLOUT_STEPS = 300  # per request in the app: well under a second of CPU, 6 s of CartPole video
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
VIDEO_DIR = Path(tempfile.gettempdir()) / "worldsim-videos"
UNKNOWN_START = ""  # the simulator start of an uploaded frame: unknown
# A start frame is the simulator's when, as the model sees them, the two agree to this PSNR:
# a PNG round trip is exact and a JPEG (quality 85) screenshot scores 56 dB, while CartPole
# reset frames of neighbouring seeds score 26-31 dB.
SAME_FRAME_MIN_PSNR = 40.0
PLOT_MAX_PSNR = 60.0


def shipped_models() -> list[str]:
    """Names of the checkpoints shipped in checkpoints/, for the Model picker."""
    return sorted(p.parent.name for p in CHECKPOINTS_DIR.glob("*/config.json"))


def picker_models() -> list[str]:
    """The Model picker: shipped models, then the Hub ids listed in WORLDSIM_HUB_MODELS
    (comma-separated; a Space preloads them with `preload_from_hub`)."""
    extra = [m.strip() for m in os.environ.get("WORLDSIM_HUB_MODELS", "").split(",") if is_hub_id(m.strip())]
    return shipped_models() + extra


def examples() -> list[list[str]]:
    """[model, start frame, actions, simulator start] rows from each assets/<model>/examples.json."""
    rows = []
    for model in shipped_models():
        listing = ASSETS_DIR / model / "examples.json"
        if listing.exists():
            for example in json.loads(listing.read_text()):
                frame = str(listing.parent / example["frame"])
                rows.append([model, frame, example["actions"], example.get("start", UNKNOWN_START)])
    return rows


def get_model(model_name: str) -> WorldModel:
    """A shipped model or an hf:// id, never a local path typed into the page."""
    name = (model_name or "").strip()
    if name not in shipped_models() and not is_hub_id(name):
        raise gr.Error(
            f"Unknown model {name!r}. Choose one of: {', '.join(shipped_models())}, or load hf://owner/name."
        )
    try:
        return cached_model(name)  # hub ids are parsed and checked on the way in
    except CheckpointError as error:
        raise gr.Error(str(error)) from None


def describe_model(model_name: str) -> str:
    """Markdown: what the chosen model accepts."""
    try:
        spec = get_model(model_name).spec
    except gr.Error as error:
        return str(error)
    return (
        f"**{spec.gym_id}** at {spec.fps:g} steps/s. {accepted_actions(spec)}. "
        f"Repeat with `TOKEN*N`; at most {MAX_ROLLOUT_STEPS} steps. "
        f"Start frame: {ACCEPTED_IMAGES}, any size."
    )


def load_from_hub(hub_id: str):
    """'hf://owner/name[@rev]' -> the Model picker with that model added and chosen."""
    hub_id = (hub_id or "").strip()
    if not is_hub_id(hub_id):
        hub_id = "hf://" + hub_id  # people paste owner/name
    get_model(hub_id)
    return gr.update(choices=[*picker_models(), hub_id], value=hub_id)


def start_from_simulator(model_name: str, seed: float | None):
    """(model, seed) -> (the simulator's reset frame as a PNG path, its simulator start text)."""
    if seed is None or not 0 <= seed < 2**31 or seed != int(seed):
        raise gr.Error("Seed must be a whole number from 0 to 2147483647.")
    spec = get_model(model_name).spec
    start = SimulatorStart(int(seed))
    frame = start.frames(spec.name)[0]
    VIDEO_DIR.mkdir(parents=True, exist_ok=True)
    path = VIDEO_DIR / f"{spec.name}_seed{start.seed}.png"
    Image.fromarray(frame).save(path)
    return str(path), str(start)


def rollout_video(
    model_name: str,
    start_frame: str | None,
    actions: str,
    simulator_start: str | None = None,  # None keeps it optional for API clients
    progress=gr.Progress(),  # noqa: B008 (gradio injects it)
):
    """(model, start frame path, action text[, simulator start]) -> (mp4 path, summary, PSNR plot).

    With a simulator start whose frame matches the upload, the video shows the model, the real
    simulator stepped with the same actions, and their difference, side by side.
    """
    model = get_model(model_name)
    spec = model.spec
    if not start_frame:
        raise gr.Error(f"Upload a start frame first ({ACCEPTED_IMAGES}).")
    if not (actions or "").strip():
        raise gr.Error(f"Type some actions first, e.g. {spec.example_actions!r}.")
    started = time.perf_counter()
    try:
        parsed = parse_actions(actions, spec, max_steps=MAX_ROLLOUT_STEPS)
        image = load_image(start_frame)
        predicted = model.rollout(image, parsed, progress=progress.tqdm)
        sim_start = SimulatorStart.parse(simulator_start)
    except (ActionError, ImageError, ValueError) as error:
        raise gr.Error(str(error)) from None
    imagined = time.perf_counter() - started
    steps = len(parsed)
    summary = (
        f"`{format_actions(parsed, spec)}`: {steps} steps, {steps / spec.fps:.2f} s of play. "
        f"Imagined in {imagined:.2f} s ({steps / max(imagined, 1e-9):,.0f} frames/s)"
    )
    truth = _simulator_truth(model, sim_start, parsed, predicted[0])
    plot = None
    if truth is None:
        video = predicted
        summary += (
            ". No simulator truth: this start frame has no known simulator state (use an example or "
            "'Start from simulator' to see the real environment beside the model)."
            if sim_start is None
            else f". The start frame is not the simulator's frame for {sim_start}: showing the model alone."
        )
    else:
        video = side_by_side(
            [predicted, truth, difference(predicted, truth)], ["model", "simulator", "|difference|"]
        )
        model_psnr = per_step_psnr(predicted[1:], truth[1:])  # step 0 is the start frame itself
        copy_psnr = per_step_psnr(np.repeat(truth[:1], len(truth) - 1, axis=0), truth[1:])
        plot = _psnr_table(model_psnr, copy_psnr)
        summary += (
            f"; beside the real simulator from {sim_start}: mean PSNR {model_psnr.mean():.1f} dB "
            f"(copying the start frame: {copy_psnr.mean():.1f} dB)"
        )
    VIDEO_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".mp4", dir=VIDEO_DIR, delete=False) as file:
        path = write_video(video, file.name, spec.fps)
    summary += f". Video ready in {time.perf_counter() - started:.2f} s."
    return str(path), summary, plot


def _simulator_truth(model: WorldModel, sim_start, actions, start_as_seen) -> np.ndarray | None:
    """The real environment's frames (T+1, h, w, 3) for these actions, if the start is known and
    the uploaded frame really is the simulator's start frame."""
    if sim_start is None:
        return None
    real = sim_start.frames(model.spec.name, actions)
    truth = np.stack([preprocess(frame, model.spec) for frame in real])
    if per_step_psnr(truth[:1], start_as_seen[None])[0] < SAME_FRAME_MIN_PSNR:
        return None
    return truth


def _psnr_table(model_psnr: np.ndarray, copy_psnr: np.ndarray) -> pd.DataFrame:
    """Per-step PSNR of the model and of copying the start frame for the plot, capped at
    PLOT_MAX_PSNR: identical frames would otherwise plot at 100 dB and flatten the rest."""
    steps = np.arange(1, len(model_psnr) + 1)
    return pd.DataFrame(
        {
            "step": np.concatenate([steps, steps]),
            "PSNR (dB)": np.minimum(PLOT_MAX_PSNR, np.concatenate([model_psnr, copy_psnr])),
            "series": ["model"] * len(steps) + ["copy start frame"] * len(steps),
        }
    )
