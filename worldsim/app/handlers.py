"""What the Gradio app does, kept out of app.py so it can be tested by calling it.

Handlers take what Gradio hands them (file paths, text) and return what Gradio shows; every
expected failure becomes a gr.Error with our message, so the page says what was wrong and the
server goes on serving everyone else.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from worldsim.app.play import KEY_ROLES, PlaySession
from worldsim.app.session import RolloutSession, SessionError
from worldsim.envs.actions import (
    ActionError,
    accepted_actions,
    format_actions,
    parse_actions,
    read_action_file,
)
from worldsim.envs.simulator import SimulatorStart
from worldsim.envs.spec import preprocess
from worldsim.evaluation.familiarity import familiarity
from worldsim.hub.client import is_hub_id
from worldsim.media.images import ACCEPTED_IMAGES, MAX_IMAGE_PIXELS, ImageError, load_clip, load_image
from worldsim.media.panels import difference, per_step_psnr, resize_video, side_by_side, uncertainty
from worldsim.media.video import write_video
from worldsim.models.base import WorldModel
from worldsim.models.catalog import ModelEntry, model_entries
from worldsim.models.checkpoint import CheckpointError, resolve
from worldsim.models.examples import model_examples
from worldsim.rollout import cached_model

MAX_ROLLOUT_STEPS = 300  # per request in the app: well under a second of CPU, 6 s of CartPole video
MAX_SAMPLES = 8
MAX_UPLOAD_MB = 20  # app.py passes it to Gradio as max_file_size
# Inside Gradio's own cache, so it serves our files in place instead of copying each one there.
VIDEO_DIR = Path(gr.utils.get_upload_folder()) / "worldsim-videos"
UNKNOWN_START = ""  # the simulator start of an uploaded frame: unknown
# A start frame is the simulator's when, as the model sees them, the two agree to this PSNR:
# a PNG round trip is exact and a JPEG (quality 85) screenshot scores 56 dB, while CartPole
# reset frames of neighbouring seeds score 26-31 dB.
SAME_FRAME_MIN_PSNR = 40.0
PLOT_MAX_PSNR = 60.0


class Catalog:
    """The models this app offers, by picker name (worldsim.models.catalog). The app's builder
    chooses them (`worldsim.App(models=[...])`); by default every shipped and plugin model."""

    def __init__(self, entries: list[ModelEntry] | None = None):
        self.entries = {entry.name: entry for entry in (model_entries() if entries is None else entries)}
        self._envs: dict[str, str] = {}  # name -> gymnasium id, read from config.json once

    def env(self, name: str) -> str | None:
        """The gymnasium id an offered model was trained on; None where unknown (a Hub model not
        yet in the cache, which a later call reads once it is)."""
        if name not in self._envs and name in self.entries:
            env = self.entries[name].describe()["env"]
            if env is not None:
                self._envs[name] = env
        return self._envs.get(name)

    def names(self) -> list[str]:
        return list(self.entries)

    def location(self, name: str) -> str | None:
        """What `load` is given for a picker name; hf:// ids are their own location."""
        entry = self.entries.get(name)
        return entry.location if entry else (name if is_hub_id(name) else None)


catalog = Catalog()


def use_catalog(entries: list[ModelEntry]) -> None:
    """Offer these models (the app builder calls it before building the page)."""
    global catalog
    catalog = Catalog(entries)


def default_model(models: list[str]) -> str | None:
    """What the page opens with: CartPole, the flagship, when offered; else the first model."""
    return "cartpole" if "cartpole" in models else next(iter(models), None)


def picker_models() -> list[str]:
    """The Model picker's choices."""
    return catalog.names()


def examples() -> list[list[str]]:
    """[model, start frame, actions, simulator start] rows for every offered model, from its
    examples listing (`worldsim.models.examples`)."""
    rows = []
    for name, entry in catalog.entries.items():
        if entry.source == "hub":
            continue  # never download at start-up
        for example in model_examples(name, Path(entry.location)):
            rows.append([name, str(example.frame), example.actions, example.start or UNKNOWN_START])
    return rows


def get_model(model_name: str) -> WorldModel:
    """An offered model or an hf:// id, never a local path typed into the page."""
    name = (model_name or "").strip()
    location = catalog.location(name)
    if location is None:
        raise gr.Error(
            f"Unknown model {name!r}. Choose one of: {', '.join(catalog.names())}, or load hf://owner/name."
        )
    try:
        return cached_model(location)  # hub ids are parsed and checked on the way in
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
        f"Start frame: {ACCEPTED_IMAGES}, any size up to {MAX_IMAGE_PIXELS // 1_000_000} megapixels "
        f"and {MAX_UPLOAD_MB} MB; up to {MAX_SAMPLES} samples."
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
    frame = start.frames(spec)[0]
    path = _video_dir() / f"{spec.name}_seed{start.seed}.png"
    Image.fromarray(frame).save(path)
    return str(path), str(start)


# --- Start frames and actions --------------------------------------------------------------


EXPLAINED_LOCK = threading.Lock()
# The listeners of one upload run within this of each other. The key is the upload's path, which
# Gradio names by the file's content: the same bad file from another visitor within it gets no
# message at upload (the rollout's own check still says what is missing).
EXPLAIN_ONCE_SECONDS = 2.0


def start_frame_input(**kwargs) -> gr.Image:
    """The Start frame box: a gr.Image that hands the uploaded file to worldsim untouched
    (image_mode=None keeps GIFs, 16-bit and EXIF for our loader) and turns a file Pillow cannot
    open into our message instead of Gradio's "could not preprocess". (Wrapped on the instance:
    a gr.Image subclass would make Gradio write a .pyi stub beside this module at import.)"""
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    preprocess = image.preprocess
    explained: dict[str, float] = {}  # upload path -> when its message was raised

    def preprocess_or_explain(payload):
        try:
            return preprocess(payload)
        except Image.DecompressionBombError:
            message = f"Image is too large; at most {MAX_IMAGE_PIXELS:,} pixels are accepted."
        except (OSError, ValueError, SyntaxError):  # PIL's "cannot identify", truncation
            name = getattr(payload, "orig_name", None) or "The upload"
            message = f"{name} is not a readable image. Accepted: {ACCEPTED_IMAGES}."
        # An upload sets off every listener of the box at once: one message, not one per listener.
        # A click seconds later (a rollout) gets it again (EXPLAIN_ONCE_SECONDS).
        now, path = time.monotonic(), str(getattr(payload, "path", ""))
        with EXPLAINED_LOCK:
            for old in [p for p, when in explained.items() if now - when > EXPLAIN_ONCE_SECONDS]:
                del explained[old]
            repeat = path in explained
            explained.setdefault(path, now)
        if repeat:
            return None
        raise gr.Error(message)

    image.preprocess = preprocess_or_explain
    return image


def clip_start(model_name: str, clip_path: str | None):
    """A GIF/MP4 upload -> (its last frame for the Start frame box, the clip as context, no
    simulator start)."""
    if not clip_path:
        return None, None, UNKNOWN_START
    model = get_model(model_name)
    try:
        frames = load_clip(clip_path, model.context_frames)
    except ImageError as error:
        raise gr.Error(str(error)) from None
    last = _new_video_path(".png")
    Image.fromarray(frames[-1]).save(last)
    return str(last), clip_path, UNKNOWN_START


def model_input(model_name: str, start_frame: str | None, context_clip: str | None):
    """What the model sees (its context frames after crop and resize, enlarged) and how familiar
    the frame looks next to the training data."""
    if not start_frame and not context_clip:
        return None, ""
    model = get_model(model_name)
    try:
        context = model.prepare_context(read_start(start_frame, context_clip, model))
    except (ImageError, ValueError) as error:
        return None, f"⚠️ {error}"
    seen = np.concatenate(list(context), axis=1)
    scale = max(1, 256 // seen.shape[0])
    seen = seen.repeat(scale, axis=0).repeat(scale, axis=1)
    frames = f"{len(context)} frame{'s' if len(context) > 1 else ''} at {context.shape[2]}x{context.shape[1]}"
    return seen, f"{frames}. {familiarity_text(model, context[-1])}"


def familiarity_text(model: WorldModel, frame: np.ndarray) -> str:
    """One line: how well the model's autoencoder explains this frame, against held-out frames."""
    check = familiarity(model, frame)
    if check is None:
        return "This checkpoint has no familiarity calibration."
    if check.familiar:
        return (
            f"Looks like the training frames: reconstruction {check.psnr:.1f} dB "
            f"(held-out frames: {check.threshold:.1f} dB or better in {check.coverage:.1%} of cases)."
        )
    return (
        f"⚠️ **Unlike the training frames**: reconstruction {check.psnr:.1f} dB, below "
        f"{check.coverage:.1%} of held-out frames ({check.threshold:.1f} dB). "
        "Predictions from it may be meaningless."
    )


def describe_actions(model_name: str, actions: str) -> str:
    """A live reading of the Actions box for the chosen model (Markdown): 'right x5, left x5: 10
    steps, 0.20 s of play.', or what is wrong with it."""
    if not (actions or "").strip():
        return ""
    try:
        spec = get_model(model_name).spec
        return markdown_text(action_summary(parse_actions(actions, spec, max_steps=MAX_ROLLOUT_STEPS), spec))
    except ActionError as error:
        return f"⚠️ {markdown_text(str(error))}"
    except gr.Error:
        return ""


def markdown_text(text: str) -> str:
    """Text shown as itself in a Markdown box: 'left*0 ... left*5' is not italics."""
    return re.sub(r"([\\`*_\[\]<>#|~&])", r"\\\1", text)


MAX_BUTTONS = 6  # most action buttons any environment shows (Pong has 6 actions)


def action_buttons(model_name: str) -> list:
    """Buttons that append an action: one per action name, or the continuous presets."""
    try:
        spec = get_model(model_name).spec
    except gr.Error:
        return [gr.update(visible=False)] * MAX_BUTTONS
    if spec.action_kind == "discrete":
        tokens = list(spec.action_names)
    else:
        tokens = list(dict.fromkeys(spec.play_keys.values()))
    tokens = tokens[:MAX_BUTTONS]
    return [gr.update(value=token, visible=True) for token in tokens] + [gr.update(visible=False)] * (
        MAX_BUTTONS - len(tokens)
    )


def sample_controls(model_name: str):
    """The Samples slider, shown only for a model that samples (capability `sampling`)."""
    try:
        sampling = get_model(model_name).capabilities.sampling
    except gr.Error:
        sampling = False
    return gr.update(visible=sampling, value=1)


def append_action(model_name: str, actions: str, token: str) -> str:
    """Add one action to the Actions box; runs merge, so five clicks on right read 'right*5'."""
    spec = get_model(model_name).spec
    text = f"{actions or ''} {token}".strip()
    try:
        return format_actions(parse_actions(text, spec, max_steps=MAX_ROLLOUT_STEPS), spec)
    except ActionError:
        return text  # leave the user's text alone; the summary line says what is wrong with it


def actions_from_file(model_name: str, path: str | None) -> str:
    """An uploaded .txt/.json/.csv/.npy action file -> action text in the Actions box."""
    if not path:
        return gr.skip()
    spec = get_model(model_name).spec
    try:
        return format_actions(read_action_file(path, spec, max_steps=MAX_ROLLOUT_STEPS), spec)
    except ActionError as error:
        raise gr.Error(str(error)) from None


@dataclass
class Rollout:
    """The last video of a browser tab: what made it (to save as a session) and its panels at
    model resolution (for the GIF export and the frame scrubber). Every open tab holds one, so
    the enlarged video is composed on demand, not kept: 6 MB per tab instead of 33."""

    session: RolloutSession | None  # set once the rollout is done
    panels: list[np.ndarray]  # uint8 (T+1, h, w, 3) each: samples, spread, simulator, difference
    labels: list[str]
    columns: int | None
    fps: float

    @property
    def video(self) -> np.ndarray:
        """uint8 (T+1, H, W, 3): the panels as the video shows them."""
        if len(self.panels) == 1:
            return self.panels[0]
        return side_by_side(self.panels, self.labels, self.columns)


def rollout_video(
    model_name: str,
    start_frame: str | None,
    actions: str,
    simulator_start: str | None = None,
    samples: float = 1,
    seed: float = 0,
    context_clip: str | None = None,
    progress=gr.Progress(),  # noqa: B008 (gradio injects it)
):
    """Roll a world model forward from a start frame under an action sequence, into a video.

    Args:
        model_name: a shipped model (e.g. "cartpole") or a Hugging Face id "hf://owner/name".
        start_frame: the start frame, an image file (PNG, JPEG, WebP or GIF) of the environment at any size.
        actions: action text, e.g. "right*10 left*10": names or indices, TOKEN*N repeats, or a JSON list.
        simulator_start: where the start frame came from, e.g. "seed 7"; the real simulator is then
            shown beside the model. Empty for an uploaded frame.
        samples: how many futures to sample (1 to 8), shown as a grid with their per-pixel spread.
        seed: the random seed of the samples; the same seed gives the same video.
        context_clip: optional GIF/MP4 whose last frames are the model's context instead of the frame.

    Returns the MP4 path, a summary, the per-step PSNR table (or None) and the tab's last rollout.
    """
    model = get_model(model_name)
    spec = model.spec
    if not start_frame and not context_clip:
        raise gr.Error(f"Upload a start frame first ({ACCEPTED_IMAGES}).")
    if not (actions or "").strip():
        raise gr.Error(f"Type some actions first, e.g. {spec.example_actions!r}.")
    samples, seed = (
        _whole_number(samples, "Samples", 1, MAX_SAMPLES),
        _whole_number(seed, "Seed", 0, 2**31 - 1),
    )
    started = time.perf_counter()
    try:
        parsed = parse_actions(actions, spec, max_steps=MAX_ROLLOUT_STEPS)
        sim_start = SimulatorStart.parse(simulator_start)
        context, past = start_context(model, read_start(start_frame, context_clip, model), sim_start)
        predicted = model.rollout(
            context, parsed, seed=seed, num_samples=samples, progress=progress.tqdm, past=past
        )
    except (ActionError, ImageError, ValueError) as error:
        raise gr.Error(str(error)) from None
    imagined = time.perf_counter() - started
    predicted = predicted if samples > 1 else predicted[None]  # (S, T+1, h, w, 3)
    rate = len(parsed) * samples / max(imagined, 1e-9)
    summary = f"{action_summary(parsed, spec)} Imagined in {imagined:.2f} s ({rate:,.0f} frames/s)"
    panels, labels = [predicted[0]], ["model"]
    if samples > 1:
        panels = [*predicted, uncertainty(predicted)]
        labels = [f"sample {i + 1}" for i in range(samples)] + ["uncertainty (spread)"]
        spread = float(np.abs(predicted - predicted[:1]).max())
        summary += (
            f"; {samples} samples with seed {seed}"
            if spread
            else f"; this model is deterministic: its {samples} samples are identical"
        )
    truth = _simulator_truth(model, sim_start, parsed, predicted[0, 0])
    plot = None
    if truth is None:
        summary += (
            ". No simulator truth: this start frame has no known simulator state (use an example or "
            "'Start from simulator' to see the real environment beside the model)"
            if sim_start is None
            else f". The start frame is not the simulator's frame for {sim_start}: showing the model alone"
        )
    else:
        panels.append(truth)
        labels.append("simulator")
        if samples == 1:
            panels.append(difference(predicted[0], truth))
            labels.append("|difference|")
        model_psnr = per_step_psnr(predicted[0, 1:], truth[1:])  # step 0 is the start frame itself
        copy_psnr = per_step_psnr(np.repeat(truth[:1], len(truth) - 1, axis=0), truth[1:])
        plot = _psnr_table(model_psnr, copy_psnr)
        summary += (
            f"; beside the real simulator from {sim_start}: mean PSNR {model_psnr.mean():.1f} dB "
            f"(copying the start frame: {copy_psnr.mean():.1f} dB)"
        )
    columns = None if len(panels) <= 3 else (2 if spec.width > spec.height else 4)
    rollout = Rollout(None, list(panels), labels, columns, spec.fps)
    path = write_video(rollout.video, _new_video_path(".mp4"), spec.fps)
    summary += f". Video ready in {time.perf_counter() - started:.2f} s."
    rollout.session = RolloutSession(
        model=model_name,
        actions=format_actions(parsed, spec),
        start_frames=list(context),
        seed=seed,
        samples=samples,
        simulator_start=str(sim_start or ""),
    )
    return str(path), summary, plot, rollout


def action_summary(parsed: np.ndarray, spec) -> str:
    """'right x5, left x5: 10 steps, 0.20 s of play.'"""
    runs = format_actions(parsed, spec).split(" ")
    readable = ", ".join(run.replace("*", " x") for run in runs[:12]) + (", ..." if len(runs) > 12 else "")
    return f"{readable}: {len(parsed)} steps, {len(parsed) / spec.fps:.2f} s of play."


def read_start(start_frame: str | None, context_clip: str | None, model: WorldModel) -> list[np.ndarray]:
    """The start as frames: the clip's last K frames when a clip was given, else the one image."""
    if context_clip:
        return load_clip(context_clip, model.context_frames)
    if Path(start_frame).suffix.lower() in (".mp4", ".webm", ".mov"):  # API clients may send clips
        return load_clip(start_frame, model.context_frames)
    return [load_image(start_frame)]


def start_context(model: WorldModel, frames: list[np.ndarray], sim_start) -> tuple[np.ndarray, list | None]:
    """The model's context (K, h, w, 3), and the actions played into it where known. One
    uploaded frame cannot show velocity (which way is Pong's ball flying?), nor what a key
    pressed just before it set moving; when it is the simulator's frame for a known start
    ("seed 3 after ..."), the simulator's frames before it are the context, as a clip of the
    game would be, and the actions played are the model's `past`."""
    context = model.prepare_context(frames)
    if sim_start is None or not sim_start.actions:
        return context, None
    if len(context) >= model.context_frames and not model.past_actions:
        return context, None
    played = sim_start.frames_before(model.spec, model.context_frames - 1)
    before = np.stack([preprocess(frame, model.spec) for frame in played])
    if per_step_psnr(before[-1:], context[-1:])[0] < SAME_FRAME_MIN_PSNR:
        return context, None  # not the simulator's frame after all: the upload alone
    return (context if len(context) >= model.context_frames else before), sim_start.played(model.spec)


def _whole_number(value: float | None, name: str, low: int, high: int) -> int:
    if value is None or value != int(value) or not low <= value <= high:
        raise gr.Error(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    return int(value)


def _simulator_truth(model: WorldModel, sim_start, actions, start_as_seen) -> np.ndarray | None:
    """The real environment's frames (T+1, h, w, 3) for these actions, if the start is known and
    the uploaded frame really is the simulator's start frame."""
    if sim_start is None:
        return None
    real = sim_start.frames(model.spec, actions)
    truth = np.stack([preprocess(frame, model.spec) for frame in real])
    if per_step_psnr(truth[:1], start_as_seen[None])[0] < SAME_FRAME_MIN_PSNR:
        return None
    return truth


# The plot's legend falls below the box Gradio gives it (its title showed, cut off): the label
# names the colours instead, and the legend's title is blank.
PSNR_PLOT_COLOURS = {
    "color": "series",
    "color_map": {"model": "#4c78a8", "copy start frame": "#f58518"},
    "color_title": " ",
}


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


# --- Exports: GIF, session file, single frames ---------------------------------------------


def export_gif(rollout: Rollout | None) -> str:
    if rollout is None:
        raise gr.Error("Roll out a video first.")
    name = f"worldsim_{rollout.session.model.removeprefix('hf://').replace('/', '_')}"
    return str(write_video(rollout.video, _new_video_path(".gif", name), rollout.fps))


def save_session(rollout: Rollout | None) -> str:
    """A session.json that reproduces the last video exactly when loaded back."""
    if rollout is None:
        raise gr.Error("Roll out a video first.")
    return str(rollout.session.save(_new_video_path(".json", "session")))


def load_session(path: str | None):
    """A session file -> (model, start frame, actions, simulator start, samples, seed) for the page."""
    if not path:
        raise gr.Error("Choose a session.json file.")
    try:
        session = RolloutSession.load(path)
    except (SessionError, OSError) as error:
        raise gr.Error(str(error)) from None
    get_model(session.model)  # an unknown model fails here, before the page changes
    start = _new_video_path(".png")
    Image.fromarray(session.start_frames[-1]).save(start)
    return session.model, str(start), session.actions, session.simulator_start, session.samples, session.seed


def scrub(rollout: Rollout | None, step: float) -> np.ndarray:
    """Frame `step` of the last video, for a single-frame PNG export."""
    if rollout is None:
        raise gr.Error("Roll out a video first.")
    step = int(min(max(step, 0), len(rollout.panels[0]) - 1))
    return replace(rollout, panels=[panel[step : step + 1] for panel in rollout.panels]).video[0]


def scrubber_range(rollout: Rollout | None):
    steps = 0 if rollout is None else len(rollout.panels[0]) - 1
    return gr.update(maximum=max(steps, 1), value=0), None if rollout is None else scrub(rollout, 0)


# --- Compare two models ---------------------------------------------------------------------


def compare_choices(model_name: str, second: str | None):
    """The Compare tab's second list: the offered models of the chosen one's environment (the
    only ones it can be compared with), keeping the current pick where it still fits. A Hub
    entry not yet in the cache has no known environment and is left out."""
    try:
        env = get_model(model_name).spec.gym_id
    except gr.Error:  # the model picker says why already
        return gr.update()
    same = [name for name in catalog.names() if catalog.env(name) == env]
    same = same if model_name in same else [model_name, *same]  # a Hub model is not in the catalog
    others = [name for name in same if name != model_name]
    value = second if second in others else next(iter(others), model_name)
    return gr.update(choices=same, value=value)


def compare_models(
    model_a: str,
    model_b: str,
    start_frame: str | None,
    actions: str,
    simulator_start: str | None = None,
    context_clip: str | None = None,
) -> tuple[str, str]:
    """The same start and actions through two models of one environment, side by side (with the
    real simulator when the start is known). Returns (MP4 path, summary)."""
    first, second = get_model(model_a), get_model(model_b)
    if first.spec.gym_id != second.spec.gym_id:
        raise gr.Error(
            f"Compare models of one environment: {model_a} is {first.spec.gym_id}, "
            f"{model_b} is {second.spec.gym_id}."
        )
    if not start_frame and not context_clip:
        raise gr.Error(f"Upload a start frame first ({ACCEPTED_IMAGES}).")
    spec = first.spec
    try:
        parsed = parse_actions(actions, spec, max_steps=MAX_ROLLOUT_STEPS)
        sim_start = SimulatorStart.parse(simulator_start)
        videos = []
        for model in (first, second):
            context, past = start_context(model, read_start(start_frame, context_clip, model), sim_start)
            videos.append(model.rollout(context, parsed, past=past))
    except (ActionError, ImageError, ValueError) as error:
        raise gr.Error(str(error)) from None
    videos[1] = resize_video(videos[1], *videos[0].shape[1:3])
    panels, labels = videos, [model_a, model_b]
    summary = action_summary(parsed, spec)
    truth = _simulator_truth(first, sim_start, parsed, videos[0][0])
    if truth is not None:
        panels, labels = [*videos, truth], [*labels, "simulator"]
        scores = [per_step_psnr(video[1:], truth[1:]).mean() for video in videos]
        summary += (
            f" Mean PSNR against the simulator: {model_a} {scores[0]:.1f} dB, {model_b} {scores[1]:.1f} dB."
        )
    path = write_video(side_by_side(panels, labels), _new_video_path(".mp4"), spec.fps)
    return str(path), summary


# --- Model card -----------------------------------------------------------------------------


def model_card(model_name: str) -> str:
    """The selected model's card (README.md) without its front matter."""
    get_model(model_name)
    try:
        text = (resolve(catalog.location(model_name)) / "README.md").read_text()
    except (CheckpointError, OSError):
        return f"{model_name} has no model card."
    if text.startswith("---"):
        text = text.split("---", 2)[2]
    return text.strip()


# --- Live play ------------------------------------------------------------------------------

PLAY_SCALE = 4  # the play view draws model pixels this many times larger (crisp, no smoothing)
KEY_LABELS = {"left": "◀", "right": "▶", "up": "▲", "down": "▼", "space": "␣"}  # on the buttons


def play_key(session: PlaySession | None, model_name: str, start_frame: str | None, role: str):
    """A key press (role: left/right/up/down/space) steps the game; the first press starts it from
    the start frame, and so does a press after the model changed."""
    if session is None or session.model_name != model_name:
        session = _new_play_session(model_name, start_frame)
    action = session.model.spec.play_keys.get(role)
    if action is None:
        raise gr.Error(f"The {role} key does nothing in {session.model.spec.name}.")
    try:
        session.step(action)
    except (ActionError, ValueError) as error:
        raise gr.Error(str(error)) from None
    return (*_play_view(session), session)


def play_start_if_possible(model_name: str, start_frame: str | None):
    """A new game whenever the start frame or the model changes; nothing to show without a frame."""
    if not start_frame:
        return "", gr.update(maximum=1, value=0), "Choose a start frame to play.", None
    try:
        session = _new_play_session(model_name, start_frame)
    except gr.Error as error:
        return "", gr.update(maximum=1, value=0), str(error), None
    return (*_play_view(session), session)


def play_seek(session: PlaySession | None, position: float):
    """Show an earlier frame; the next key press branches from it."""
    if session is None:
        raise gr.Error("Press a key or 'Start playing' first.")
    session.seek(int(position))
    return (*_play_view(session), session)


def play_undo(session: PlaySession | None):
    if session is None:
        raise gr.Error("Nothing to undo yet.")
    session.undo()
    return (*_play_view(session), session)


def play_restart(session: PlaySession | None):
    if session is None:
        raise gr.Error("Nothing to restart yet.")
    session.restart()
    return (*_play_view(session), session)


def play_save(session: PlaySession | None) -> str:
    """The game up to the frame on screen as an MP4."""
    if session is None or session.steps == 0:
        raise gr.Error("Play a few steps first.")
    return str(write_video(session.video_frames(), _new_video_path(".mp4"), session.model.spec.fps))


def play_controls(model_name: str) -> list:
    """One update per key role: the on-screen button shows what it does, or hides."""
    try:
        keys = get_model(model_name).spec.play_keys
    except gr.Error:
        keys = {}
    return [
        gr.update(value=f"{KEY_LABELS[role]} {keys[role]}", visible=True)
        if role in keys
        else gr.update(visible=False)
        for role in KEY_ROLES
    ]


def _new_play_session(model_name: str, start_frame: str | None) -> PlaySession:
    model = get_model(model_name)
    if not start_frame:
        raise gr.Error(f"Choose a start frame first ({ACCEPTED_IMAGES}, or 'Start from simulator').")
    try:
        return PlaySession.start(model, load_image(start_frame), model_name=model_name)
    except (ImageError, ValueError) as error:
        raise gr.Error(str(error)) from None


def _play_view(session: PlaySession) -> tuple[str, dict, str]:
    """(frame HTML, timeline update, status line) for the frame on screen."""
    spec = session.model.spec
    status = f"Step {session.position} of {session.steps}"
    if session.score is not None:
        status += f" · score {session.score:.1f}"
    if session.game_over:
        status = f"**Game over**: the model predicts the episode ended here. {status}"
    if text := session.actions_text():
        status += f" · `{text}`"
    timeline = gr.update(maximum=max(session.steps, 1), value=session.position)
    return frame_html(session.frame, PLAY_SCALE, f"{spec.name} step {session.position}"), timeline, status


def frame_html(frame: np.ndarray, scale: int, alt: str) -> str:
    """An <img> of the frame as an inline PNG, scaled up without smoothing: no file per frame
    (live play makes thousands) and a few kB per update."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=1)
    data = base64.b64encode(buffer.getvalue()).decode()
    height, width = frame.shape[:2]
    return (
        f'<img id="play-image" alt="{alt}" src="data:image/png;base64,{data}" '
        f'width="{width * scale}" height="{height * scale}" style="image-rendering: pixelated; '
        f'max-width: 100%; height: auto">'
    )


def _video_dir() -> Path:
    """VIDEO_DIR, after removing outputs older than OUTPUT_TTL_S or beyond the newest
    MAX_OUTPUTS: a busy Space keeps a bounded folder (Gradio serves these files in place)."""
    VIDEO_DIR.mkdir(parents=True, exist_ok=True)
    entries = []
    for entry in VIDEO_DIR.iterdir():
        with contextlib.suppress(OSError):  # removed by another worker meanwhile
            entries.append((entry.stat().st_mtime, entry))
    entries.sort(reverse=True)
    now = time.time()
    for rank, (mtime, entry) in enumerate(entries):
        if rank >= MAX_OUTPUTS or now - mtime > OUTPUT_TTL_S:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    return VIDEO_DIR


OUTPUT_TTL_S = 900  # a video, GIF or session file lives this long at most...
MAX_OUTPUTS = 200  # ...and only the newest this many are kept (20 users' worth, many times over)


def _new_video_path(suffix: str, name: str = "worldsim") -> Path:
    """A fresh file `name + suffix` in its own temporary folder: downloads get a readable name."""
    return Path(tempfile.mkdtemp(dir=_video_dir())) / f"{name}{suffix}"


# Keys step the model while the Play tab is on screen and no text field has the focus: each
# press clicks the on-screen button of its role (held keys repeat, about 30 presses/s; a press
# that arrives while the last step is still on its way is dropped, so play never lags behind).
PLAY_KEYS_SCRIPT = """
<script>
(() => {
  const roles = {ArrowLeft: "left", a: "left", ArrowRight: "right", d: "right", ArrowUp: "up",
                 w: "up", ArrowDown: "down", s: "down", " ": "space"};
  document.addEventListener("keydown", (event) => {
    const role = roles[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (!role || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select, [contenteditable='true']")) return;
    const view = document.getElementById("play-frame");
    if (!view || view.offsetParent === null) return;
    const button = document.getElementById("play-" + role);
    if (!button || button.offsetParent === null) return;
    event.preventDefault();
    button.click();
  });
})();
</script>
"""
