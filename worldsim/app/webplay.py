"""Play in the page: the model runs in the browser (onnxruntime-web, wasm) at the environment's
real rate, and the server is asked once per game, not once per frame.

The server's part:
- `routes()`: same-origin files, added to Gradio's FastAPI app (`launch(app_kwargs={"routes":
  ...})`): the vendored onnxruntime-web under /worldsim/static/ (its 14 MB .wasm is stored
  gzip-compressed and sent as `Content-Encoding: gzip`) and each offered model's start.onnx and
  step.onnx under /worldsim/models/<name>/ (only models of the app's catalog, only those files).
- `play_start`: once per game (page load, a new start frame, another model or engine), the game
  the page runs: the start frames as the model sees them, keys, fps, the files to fetch. A model
  whose kind cannot export, or whose checkpoint has no current graphs, plays on the server as
  before (worldsim.app.play), and so does a browser without WebAssembly.
- `check_game`, `game_video`: after a game, the recorded actions replayed on the server: the
  dream beside the real simulator with the PSNR curve, and the game as an MP4.

The page's part is static/webplay.js (loaded by LAUNCH's head).
"""

from __future__ import annotations

import base64
import html
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from worldsim.app import handlers
from worldsim.envs.actions import ActionError, format_actions, parse_actions
from worldsim.envs.spec import EnvSpec
from worldsim.media.images import ImageError
from worldsim.media.video import write_video
from worldsim.models.base import WorldModel
from worldsim.models.onnx_export import ONNX_FILES, onnx_status

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/worldsim"
ENGINES = {"browser": "in your browser", "server": "on the server"}
MAX_CHECK_STEPS = handlers.MAX_ROLLOUT_STEPS  # a check is one rollout request: the game's first steps
MAX_VIDEO_STEPS = 1500  # the game as MP4: 30 s of CartPole, a minute and a half of Atari
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
CONTENT_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}
KEYS = {"left": "◀ ←/A", "right": "▶ →/D", "up": "▲ ↑/W", "down": "▼ ↓/S", "space": "␣ space"}


# --- Routes -----------------------------------------------------------------------------------


def routes() -> list[Route]:
    return [
        Route(PREFIX + "/static/{path:path}", static_file, methods=["GET", "HEAD"]),
        Route(PREFIX + "/models/{name}/{file}", model_file, methods=["GET", "HEAD"]),
    ]


async def static_file(request: Request) -> Response:
    """A file of static/ ('.wasm' is sent from its '.wasm.gz', compressed as it is stored)."""
    relative = request.path_params["path"]
    path = (STATIC_DIR / relative).resolve()
    if not path.is_relative_to(STATIC_DIR) or relative.startswith(".") or "/." in relative:
        return PlainTextResponse("Not found", status_code=404)
    headers = {"Cache-Control": "public, max-age=86400"}
    if path.suffix == ".wasm" and not path.is_file() and path.with_suffix(".wasm.gz").is_file():
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
        return FileResponse(path.with_suffix(".wasm.gz"), media_type="application/wasm", headers=headers)
    if not path.is_file():
        return PlainTextResponse("Not found", status_code=404)
    return FileResponse(path, media_type=CONTENT_TYPES.get(path.suffix), headers=headers)


async def model_file(request: Request) -> Response:
    """start.onnx or step.onnx of a model the app offers; nothing else, and nothing of others."""
    name, file = request.path_params["name"], request.path_params["file"]
    folder = model_folder(name) if MODEL_NAME.fullmatch(name) and file in ONNX_FILES else None
    if folder is None or not (folder / file).is_file():
        return PlainTextResponse("Not found", status_code=404)
    # The page asks with ?v=<mtime>: a new export is a new URL, so a day of caching is safe.
    headers = {"Cache-Control": "public, max-age=86400"}
    return FileResponse(folder / file, media_type="application/octet-stream", headers=headers)


def model_folder(name: str) -> Path | None:
    """The local checkpoint folder of an offered model (never a download, never a typed path)."""
    entry = handlers.catalog.entries.get(name)
    if entry is None or entry.source == "hub":
        return None
    folder = Path(entry.location)
    return folder if folder.is_dir() else None


_STATUS_CACHE: dict[tuple, str | None] = {}


def browser_engine_missing(model_name: str, model: WorldModel) -> str | None:
    """Why this model cannot play in the page (None: it can): its kind has no ONNX export, or
    its checkpoint has no graphs exported from its current weights."""
    if not model.capabilities.onnx:
        return f"the {model.kind!r} kind has no ONNX export"
    folder = model_folder(model_name)
    if folder is None:
        return "its checkpoint is not a local folder with ONNX graphs"
    files = [folder / name for name in (*ONNX_FILES, "model.safetensors")]
    key = (str(folder), *(p.stat().st_mtime_ns if p.exists() else 0 for p in files))
    if key not in _STATUS_CACHE:  # hashing the weights takes a few ms: once per file version
        _STATUS_CACHE[key] = onnx_status(folder)
    return _STATUS_CACHE[key]


# --- One game ---------------------------------------------------------------------------------


@dataclass
class GameStart:
    """What a game started from, for the check against reality and the exports."""

    model: str
    frame: str | None  # the start frame's path
    simulator_start: str  # "seed 7", or "" where unknown
    clip: str | None = None
    described: str = ""  # for the page: "the first example (seed 7)"


def game_start(model_name: str, start_frame: str | None, simulator_start: str | None, clip: str | None):
    """The start frame chosen on the page; without one, the model's first example."""
    if start_frame or clip:
        known = (simulator_start or "").strip()
        described = f"the start frame ({known})" if known else "the uploaded start frame"
        return GameStart(model_name, start_frame, known, clip, described)
    for name, frame, _actions, start in handlers.examples():
        if name == model_name:
            return GameStart(model_name, frame, start, None, f"its first example ({start or 'a frame'})")
    return None


def noop_action(spec: EnvSpec) -> tuple[object | None, str]:
    """What a step takes with no key held, and how the page says it. None: alternate left and
    right (CartPole has no 'do nothing': pushing one way, as the last key did, would run the cart
    off the screen; alternating pushes come closest to leaving it alone)."""
    if spec.action_kind == "continuous":
        rest = np.clip(np.zeros(len(spec.action_low)), spec.action_low, spec.action_high)
        return rest.astype(float).round(4).tolist(), f"no key: {format_actions(rest[None], spec)} (no push)"
    for name in ("noop", "none"):
        if name in spec.action_names:
            return spec.action_names.index(name), f"no key: {name}"
    if "space" in spec.play_keys:
        token = spec.play_keys["space"]
        return int(parse_actions(token, spec)[0]), f"no key: {token}"
    if {"left", "right"} <= set(spec.play_keys):
        left, right = spec.play_keys["left"], spec.play_keys["right"]
        return None, (
            f"no key: {spec.name} has no 'do nothing' action, so the model alternates {left} and "
            f"{right} pushes, about no push at all"
        )
    return 0, f"no key: {spec.action_names[0]}"


def game_config(model_name: str, model: WorldModel, start: GameStart, engine: str, why: str | None) -> dict:
    """Everything the page needs to play one game, as JSON."""
    spec = model.spec
    context = model.prepare_context(handlers.read_start(start.frame, start.clip, model))
    # start.onnx takes exactly K frames: fewer are padded with the first, as `start` pads them
    context = np.concatenate([np.repeat(context[:1], model.context_frames - len(context), 0), context])
    keys = {}
    for role, token in spec.play_keys.items():
        value = parse_actions(token, spec)[0]
        keys[role] = {
            "label": token,
            "value": int(value) if spec.action_kind == "discrete" else np.asarray(value).round(4).tolist(),
        }
    noop, noop_text = noop_action(spec)
    folder = model_folder(model_name)
    version = "0"
    if folder is not None and (folder / ONNX_FILES[1]).is_file():
        version = str((folder / ONNX_FILES[1]).stat().st_mtime_ns)
    return {
        "id": uuid.uuid4().hex,
        "model": model_name,
        "env": spec.gym_id,
        "name": spec.name,
        "engine": engine,
        "why_not_browser": why or "",
        "files": {
            name.removesuffix(".onnx"): f"{PREFIX.lstrip('/')}/models/{model_name}/{name}?v={version}"
            for name in ONNX_FILES
        },
        "fps": float(spec.fps),
        "height": spec.height,
        "width": spec.width,
        "context_frames": model.context_frames,
        "context_shape": list(context.shape),
        "context": base64.b64encode(np.ascontiguousarray(context).tobytes()).decode(),
        "action_kind": spec.action_kind,
        "action_names": list(spec.action_names),
        "action_low": list(spec.action_low),
        "action_high": list(spec.action_high),
        "keys": keys,
        "noop": noop,
        "noop_text": noop_text,
        "outcome": bool(model.capabilities.outcome),
        "start": start.described,
        "simulator_start": start.simulator_start,
        "max_check_steps": MAX_CHECK_STEPS,
        "max_video_steps": MAX_VIDEO_STEPS,
    }


def config_html(config: dict | None, message: str = "") -> str:
    """The game for static/webplay.js, as a data attribute of an element it watches."""
    data = html.escape(json.dumps(config), quote=True) if config else ""
    note = html.escape(message)
    return f'<div id="webplay-game" data-game="{data}" data-message="{note}"></div>'


def engine_choice(choice: str | None) -> str:
    return next((key for key, label in ENGINES.items() if choice in (key, label)), "browser")


def play_start(
    model_name: str,
    start_frame: str | None,
    simulator_start: str | None,
    clip: str | None,
    engine: str | None = None,
):
    """A new game (page load, start frame, model or engine changed) -> (the page's game, the
    engine picker, the GameStart, then the server engine's view, timeline, status and session,
    and whether its controls show)."""

    def without_game(message: str, picker=None, start=None, server=None):
        return (
            config_html(None, message),
            picker or gr.update(),
            start,
            "",
            gr.update(),
            message,
            None,
            (server or gr.update()),
        )

    try:
        model = handlers.get_model(model_name)
    except gr.Error as error:
        return without_game(str(error))
    why = browser_engine_missing(model_name, model)
    engine = "server" if why or engine_choice(engine) == "server" else "browser"
    picker = gr.update(
        choices=[ENGINES["browser"], ENGINES["server"]] if why is None else [ENGINES["server"]],
        value=ENGINES[engine],
        info=None if why is None else f"In the browser needs ONNX graphs: {why}.",
    )
    server = gr.update(visible=engine == "server")
    start = game_start(model_name, start_frame, simulator_start, clip)
    if start is None:
        message = "Choose a start frame to play (this model has no examples)."
        return without_game(message, picker, None, server)
    try:
        config = game_config(model_name, model, start, engine, why)
    except (ImageError, ValueError, OSError) as error:
        return without_game(str(error), picker, start, server)
    server_view = ("", gr.update(maximum=1, value=0), "", None)
    if engine == "server":
        server_view = handlers.play_start_if_possible(model_name, start.frame)
    return config_html(config), picker, start, *server_view, server


# --- After a game -----------------------------------------------------------------------------


def _game_actions(start: GameStart | None, actions: str, limit: int) -> tuple[WorldModel, np.ndarray, bool]:
    if start is None:
        raise gr.Error("Play a game first.")
    model = handlers.get_model(start.model)
    try:
        parsed = parse_actions(actions or "", model.spec, max_steps=100_000)
    except ActionError as error:
        raise gr.Error(f"The game's actions: {error}") from None
    if len(parsed) == 0:
        raise gr.Error("Play a few steps first.")
    return model, parsed[:limit], len(parsed) > limit


def check_game(start: GameStart | None, actions: str, progress=gr.Progress()):  # noqa: B008
    """The game's actions replayed on the server from the game's start: the dream beside the real
    simulator (where the start is the simulator's) with the per-step PSNR. The first
    MAX_CHECK_STEPS steps, as one Roll out."""
    model, parsed, cut = _game_actions(start, actions, MAX_CHECK_STEPS)
    text = format_actions(parsed, model.spec)
    video, summary, plot, rollout = handlers.rollout_video(
        start.model, start.frame, text, start.simulator_start, 1, 0, start.clip, progress=progress
    )
    if cut:
        seconds = MAX_CHECK_STEPS / model.spec.fps
        summary = f"The game's first {MAX_CHECK_STEPS} steps ({seconds:.1f} s). {summary}"
    return video, summary, plot, rollout


def game_video(start: GameStart | None, actions: str) -> str:
    """The game, as the model draws it on the server from the same start and actions, as MP4."""
    model, parsed, _ = _game_actions(start, actions, MAX_VIDEO_STEPS)
    try:
        context = model.prepare_context(handlers.read_start(start.frame, start.clip, model))
        frames = model.rollout(context, parsed)
    except (ImageError, ValueError) as error:
        raise gr.Error(str(error)) from None
    name = f"worldsim_{start.model.replace('/', '_')}_game"
    return str(write_video(frames, handlers._new_video_path(".mp4", name), model.spec.fps))


def game_session(rollout) -> str:
    """The checked game as a session file (load it in Roll out to see the same video)."""
    if rollout is None:
        raise gr.Error("Check the game against reality first: the session is that rollout.")
    return handlers.save_session(rollout)


# --- The page ---------------------------------------------------------------------------------

# Static markup of the in-page game; static/webplay.js brings it to life.
GAME_HTML = """
<div id="webplay" class="webplay" data-state="loading">
  <div class="webplay-stage">
    <canvas id="webplay-canvas" width="160" height="64" aria-label="the model's frame"></canvas>
    <div class="webplay-banner" id="webplay-banner" hidden></div>
  </div>
  <div class="webplay-hud">
    <span id="webplay-engine">Loading the model…</span>
    <span id="webplay-counter"></span>
    <span id="webplay-rate"></span>
    <span id="webplay-score"></span>
  </div>
  <div class="webplay-pad" id="webplay-pad"></div>
  <div class="webplay-bar">
    <button id="webplay-pause" type="button">Pause (P)</button>
    <button id="webplay-restart" type="button">Restart (R)</button>
    <button id="webplay-undo" type="button">Undo</button>
    <span class="webplay-speed" role="group" aria-label="speed">
      <button type="button" data-speed="0.5">×0.5</button>
      <button type="button" data-speed="1" class="on">×1</button>
      <button type="button" data-speed="2">×2</button>
    </span>
    <button id="webplay-fullscreen" type="button">Full screen</button>
  </div>
  <input id="webplay-timeline" type="range" min="0" max="0" value="0" step="1" aria-label="timeline">
  <div class="webplay-note" id="webplay-note"></div>
</div>
"""

CSS = """
#webplay { display: flex; flex-direction: column; gap: 6px; user-select: none; -webkit-user-select: none; }
#webplay[data-engine="server"] { display: none; }
.webplay-stage { position: relative; background: #111; display: flex; justify-content: center; }
#webplay-canvas { image-rendering: pixelated; image-rendering: crisp-edges; width: 100%; height: auto;
  max-height: 70vh; object-fit: contain; }
#webplay:fullscreen { background: #000; color: #eee; padding: 8px; }
#webplay:fullscreen #webplay-canvas { max-height: 80vh; }
.webplay-banner { position: absolute; top: 8px; left: 50%; transform: translateX(-50%); padding: 4px 10px;
  background: rgba(180, 0, 0, .85); color: #fff; font-weight: 600; border-radius: 4px; }
.webplay-hud { display: flex; gap: 14px; flex-wrap: wrap; font-variant-numeric: tabular-nums; }
.webplay-pad, .webplay-bar { display: flex; gap: 6px; flex-wrap: wrap; }
.webplay-pad button { min-width: 64px; min-height: 48px; font-size: 18px; touch-action: none; }
.webplay-pad button.held { background: var(--color-accent, #f97316); color: #fff; }
.webplay-bar button { padding: 4px 10px; }
.webplay-speed button.on { font-weight: 700; text-decoration: underline; }
#webplay button { border: 1px solid var(--border-color-primary, #ccc); border-radius: 6px;
  background: var(--button-secondary-background-fill, #eee); color: inherit; }
#webplay-timeline { width: 100%; }
.webplay-note { font-size: 0.9em; opacity: .8; }
"""


def head() -> str:
    """What LAUNCH's head adds: the styles and the game's script (same origin, relative URLs)."""
    return f'<style>{CSS}</style>\n<script type="module" src="worldsim/static/webplay.js"></script>\n'
