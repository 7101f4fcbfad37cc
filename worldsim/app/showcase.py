"""The first screen: every model's dream beside the real simulator, rendered once and cached.

What a visitor sees before reading a word: the flagship model's first example (CartPole, seed 7)
as a looping video, the dream on the left and the real environment on the right, with its mean
PSNR against the copy-the-start-frame baseline; below it, a strip of every other model doing the
same. A click on a card opens that model in Roll out (or Play) with that start; *Present* turns the
page into a projector view (arrow keys or a clicker step through the models) and *Full screen*
asks the browser for the whole screen.

Clips are rendered by the functions Roll out uses (the model's rollout, the simulator replay,
worldsim.media.panels and video) in a background thread, the flagship first, and cached on disk
under a key hashed from the checkpoint's config.json and weights, the example and RENDER_VERSION:
a restart re-renders nothing, a retrained model gets a new clip, and a visitor costs nothing.

- `Showcase`: the clips of an app's catalog; `start()` (App.launch, or the first timer tick)
  reads the cache and renders what is missing; `page_html()` is the page's #showcase component.
- `routes()`: the cached MP4s at /worldsim/showcase/<key>/<file> (same origin, immutable).
- `write_gif()`: `python -m worldsim showcase --out docs/showcase.gif`, the README's animation.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from worldsim.envs.actions import parse_actions
from worldsim.envs.simulator import SimulatorStart
from worldsim.media.panels import per_step_psnr
from worldsim.media.video import MIN_SHORT_SIDE, write_video
from worldsim.models.catalog import ModelEntry
from worldsim.models.examples import Example, model_examples

log = logging.getLogger(__name__)

RENDER_VERSION = 1  # bump when the look of a clip changes: every cached clip is rendered again
MAX_STEPS = 60  # of an example, per clip
MAX_FPS = 20.0  # playback: CartPole's 50 steps/s would loop 30 steps in 0.6 s, too fast to follow
HOLD_START_S, HOLD_END_S = 0.3, 0.8  # the start and the last frame stay on screen this long
LABELS = ("dream (world model)", "reality (simulator)")
LABEL_COLORS = ("#5b21b6", "#111111")
LABEL_HEIGHT, LABEL_BACKGROUND = 40, "#f1f1f4"  # px above each panel
DIVIDER, DIVIDER_GREY = 6, 150  # px between the two panels
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".npz")
LAYOUTS = ("wide", "stacked")  # panels in one row; across the frames' short side (panels' default)
PREFIX = "/worldsim/showcase"
KEY = re.compile(r"[0-9a-f]{32}")


def cache_root() -> Path:
    """WORLDSIM_SHOWCASE_DIR, else $XDG_CACHE_HOME/worldsim/showcase (~/.cache/...)."""
    if os.environ.get("WORLDSIM_SHOWCASE_DIR"):
        return Path(os.environ["WORLDSIM_SHOWCASE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "worldsim" / "showcase"


# --- What is shown: a model's first example ------------------------------------------------


def model_folder(entry: ModelEntry) -> Path | None:
    """The checkpoint folder on this machine: a Hub model only when it is already cached."""
    if entry.source == "hub":
        from worldsim.hub.client import cached_snapshot

        return cached_snapshot(entry.location)
    folder = Path(entry.location)
    return folder if (folder / "config.json").is_file() else None


def first_example(name: str, folder: Path) -> Example | None:
    """The model's first example with a simulator start (`worldsim.models.examples`), or None."""
    return next((example for example in model_examples(name, folder) if example.start), None)


def cache_key(folder: Path, example: Example) -> str:
    """What a clip depends on: the checkpoint's config and weights, the example, the renderer."""
    digest = hashlib.sha256(f"worldsim showcase {RENDER_VERSION} {MAX_STEPS} {MAX_FPS}\n".encode())
    files = [folder / "config.json"]
    files += sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    for path in files:
        digest.update(f"{path.name}\n".encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    digest.update(f"{example.actions}\n{example.start}\n".encode())
    digest.update(Path(example.frame).read_bytes())
    return digest.hexdigest()[:32]


# --- Rendering ------------------------------------------------------------------------------


@dataclass
class Clip:
    """A rendered clip, as cached in <root>/<key>/clip.json beside its MP4s."""

    name: str
    gym_id: str
    key: str
    steps: int
    fps: float  # playback
    speed: float  # playback fps / the environment's fps
    model_psnr: float  # mean over the steps, against the simulator
    copy_psnr: float  # the same for copying the start frame
    start: str
    files: dict  # layout -> file name in the clip's folder
    render_s: float = 0.0

    def url(self, layout: str) -> str:
        """Relative, so the page works under any root path."""
        return f"{PREFIX.lstrip('/')}/{self.key}/{self.files[layout]}"


def dream_and_truth(model, example: Example) -> tuple[np.ndarray, np.ndarray]:
    """The model's rollout of the example and the real simulator's frames for the same actions,
    both (T+1, h, w, 3) at model resolution, as Roll out shows them."""
    from worldsim.app.handlers import _simulator_truth, read_start

    spec = model.spec
    actions = parse_actions(example.actions, spec)[:MAX_STEPS]
    context = model.prepare_context(read_start(str(example.frame), None, model))
    dream = model.rollout(context, actions)
    truth = _simulator_truth(model, SimulatorStart.parse(example.start), actions, dream[0])
    if truth is None:
        raise ValueError(f"{example.frame} is not the simulator's frame for {example.start}")
    return dream, truth


def compose(dream: np.ndarray, truth: np.ndarray, layout: str, fps: float) -> np.ndarray:
    """The two side by side (wide: in one row; stacked: across the frames' short side, as
    panels.side_by_side lays them out), each under a label large enough for a phone or a room,
    with the start and the last frame held a moment so a loop reads as start, motion, outcome."""
    h, w = dream.shape[1:3]
    k = max(1, math.ceil(MIN_SHORT_SIDE / min(h, w)))
    tiles = []
    for panel, label, color in zip((dream, truth), LABELS, LABEL_COLORS, strict=True):
        header = Image.new("RGB", (w * k, LABEL_HEIGHT), LABEL_BACKGROUND)
        font = ImageFont.load_default(size=round(LABEL_HEIGHT * 0.62))
        ImageDraw.Draw(header).text((10, LABEL_HEIGHT // 2), label, fill=color, font=font, anchor="lm")
        tile = np.empty((len(panel), LABEL_HEIGHT + h * k, w * k, 3), np.uint8)
        tile[:, :LABEL_HEIGHT] = np.asarray(header)
        tile[:, LABEL_HEIGHT:] = panel.repeat(k, axis=1).repeat(k, axis=2)
        tiles.append(tile)
    axis = 2 if layout == "wide" or w <= h else 1
    gap_shape = list(tiles[0].shape)
    gap_shape[axis] = DIVIDER
    video = np.concatenate([tiles[0], np.full(gap_shape, DIVIDER_GREY, np.uint8), tiles[1]], axis=axis)
    start = np.repeat(video[:1], round(HOLD_START_S * fps), axis=0)
    end = np.repeat(video[-1:], round(HOLD_END_S * fps), axis=0)
    return np.concatenate([start, video, end])


def render_clip(name: str, model, example: Example, key: str, out: Path) -> Clip:
    """Render a clip into the folder `out` (created) and return what clip.json records."""
    started = time.perf_counter()
    spec = model.spec
    dream, truth = dream_and_truth(model, example)
    fps = min(spec.fps, MAX_FPS)
    wide_is_stacked = spec.width <= spec.height  # square or tall frames already sit in a row
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for layout in ("wide",) if wide_is_stacked else LAYOUTS:
        files[layout] = f"{layout}.mp4"
        write_video(compose(dream, truth, layout, fps), out / files[layout], fps)
    files.setdefault("stacked", files["wide"])
    copy = np.repeat(truth[:1], len(truth) - 1, axis=0)
    clip = Clip(
        name=name,
        gym_id=spec.gym_id,
        key=key,
        steps=len(dream) - 1,
        fps=fps,
        speed=fps / spec.fps,
        model_psnr=float(per_step_psnr(dream[1:], truth[1:]).mean()),
        copy_psnr=float(per_step_psnr(copy, truth[1:]).mean()),
        start=example.start,
        files=files,
        render_s=round(time.perf_counter() - started, 2),
    )
    (out / "clip.json").write_text(json.dumps(asdict(clip), indent=1) + "\n")
    return clip


def read_cached(root: Path, key: str) -> Clip | None:
    try:
        clip = Clip(**json.loads((root / key / "clip.json").read_text()))
    except (OSError, TypeError, ValueError):
        return None
    ok = clip.key == key and all((root / key / f).is_file() for f in clip.files.values())
    return clip if ok else None


def eval_line(folder: Path) -> tuple[str, str] | None:
    """(short, long) wording of the model's held-out evaluation (metrics.json, written by `python
    -m worldsim eval`): PSNR 10 steps ahead under its first policy, against copying the start."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        policy, curves = next(iter(metrics["per_step"].items()))
        horizon = min(10, len(curves["psnr"]) - 1)
        model, copy = curves["psnr"][horizon], curves["psnr_copy"][horizon]
        episodes = metrics.get("episodes_per_policy", "?")
    except (OSError, KeyError, IndexError, StopIteration, TypeError, ValueError):
        return None
    short = f"PSNR {model:.1f} dB {horizon} steps ahead (copy {copy:.1f})"
    long = (
        f"Held-out evaluation, {episodes} episodes of the '{policy}' policy: the dream's frame "
        f"{horizon} steps ahead scores {model:.1f} dB PSNR against the simulator; copying the start "
        f"frame scores {copy:.1f} dB."
    )
    following = metrics.get("following") or {}
    if following.get("accuracy") is not None:
        held = f" for {following['seconds']:.2f} s" if "seconds" in following else ""
        long += (
            f" Holding a key{held} moves its "
            f"{str(following.get('object', 'object')).replace('_', ' ')} the "
            f"way the simulator's moves in {following['accuracy']:.0%} of {following['counted']} tries."
        )
    return short, long


# --- The catalog's clips ---------------------------------------------------------------------


@dataclass
class Job:
    name: str
    folder: Path
    example: Example
    key: str | None = None


class Showcase:
    """The clips of the models an app offers, the flagship first."""

    def __init__(self, entries: list[ModelEntry], flagship: str | None = None, root: Path | None = None):
        self.entries = [e for e in entries if e.name == flagship] + [e for e in entries if e.name != flagship]
        self.flagship = self.entries[0].name if self.entries else None
        self.root = Path(root) if root else None
        self.jobs: dict[str, Job] = {}
        self.clips: dict[str, Clip] = {}
        self.failed: dict[str, str] = {}
        self.evals: dict[str, tuple[str, str] | None] = {}
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._missing: list[Job] | None = None

    # Start-up: the cache is read at once, the rest is rendered in the background.

    def scan(self) -> None:
        """Read the cache (hashes of a few MB of weights, no model loaded): idempotent."""
        with self._lock:
            if self._missing is None:
                self.root = self.root or cache_root()
                self._missing = self._scan()
                if not self._missing:
                    self.done.set()

    def start(self, background: bool = True) -> None:
        """Idempotent: read the cache now; render the missing clips (in a daemon thread)."""
        self.scan()
        with self._lock:
            if self._thread is not None or self.done.is_set():
                return
            self._thread = threading.Thread(
                target=self._render_all, args=(self._missing,), name="worldsim-showcase", daemon=True
            )
        if background:
            self._thread.start()
        else:
            self._thread.run()

    def _scan(self) -> list[Job]:
        """Jobs for every local model with an example; the cached clips taken as they are."""
        missing = []
        for entry in self.entries:
            folder = model_folder(entry)
            example = first_example(entry.name, folder) if folder else None
            if example is None:
                continue
            try:
                job = Job(entry.name, folder, example, cache_key(folder, example))
            except OSError as error:
                self.failed[entry.name] = str(error)
                continue
            self.jobs[entry.name] = job
            self.evals[entry.name] = eval_line(folder)
            cached = read_cached(self.root, job.key)
            if cached is None:
                missing.append(job)
            else:
                self.clips[entry.name] = cached
        return missing

    def _render_all(self, jobs: list[Job]) -> None:
        from worldsim.app.handlers import get_model

        try:
            for job in jobs:
                try:
                    self.clips[job.name] = self.render(job, get_model(job.name))
                except Exception as error:  # one broken model must not hide the others
                    log.warning("showcase: %s could not be rendered: %s", job.name, error)
                    self.failed[job.name] = str(error)
        finally:
            self.done.set()

    def render(self, job: Job, model) -> Clip:
        """Render into a private folder, then move it into place: a crash leaves no half clip,
        and two processes rendering at once both end with a whole one."""
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{job.key}-", dir=self.root))
        scratch.chmod(0o755)
        try:
            clip = render_clip(job.name, model, job.example, job.key, scratch)
            with contextlib.suppress(OSError):  # another process got there first: theirs is as good
                os.replace(scratch, self.root / job.key)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log.info("showcase: %s rendered in %.1f s", job.name, clip.render_s)
        return read_cached(self.root, job.key) or clip

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    @property
    def complete(self) -> bool:
        return self.done.is_set()

    # The page.

    def example(self, name: str) -> Example | None:
        job = self.jobs.get(name)
        return job.example if job else None

    def caption(self, clip: Clip) -> str:
        speed = f", slowed to {clip.speed:.1f}×" if clip.speed < 0.95 else ""
        return (
            f"<b>{html.escape(clip.gym_id)}</b> · {clip.steps} steps from {html.escape(clip.start)}{speed}"
            f" · mean PSNR <b>{clip.model_psnr:.1f} dB</b> (copying the start frame: {clip.copy_psnr:.1f} dB)"
        )

    def page_html(self) -> str:
        """The #showcase component: the flagship's stage, its buttons and the strip of models."""
        if self.flagship is None:
            return ""
        return f'<div class="ws-showcase">{self._stage_html()}{self._strip_html()}</div>'

    def _stage_html(self) -> str:
        clip = self.clips.get(self.flagship)
        if clip is None:
            failed = self.failed.get(self.flagship)
            note = "No dream to show." if failed or self.complete else "Rendering the first dream"
            stage = f'<div class="ws-stage ws-pending"><span>{note}</span></div>'
            caption = html.escape(self.flagship)
        else:
            stage = (
                '<div class="ws-stage">'
                + _video(clip.url("wide"), "ws-wide", "hero-video", self.flagship)
                + _video(clip.url("stacked"), "ws-narrow", "hero-video-stacked", self.flagship)
                + "</div>"
            )
            caption = self.caption(clip)
        model = html.escape(self.flagship, quote=True)
        return (
            f'{stage}<div class="ws-bar"><p class="ws-caption" id="ws-caption">{caption}</p>'
            '<div class="ws-buttons">'
            f'<button class="ws-button ws-primary" data-act="open" data-tab="play" data-model="{model}">'
            "▶ Play it yourself</button>"
            f'<button class="ws-button" data-act="open" data-tab="rollout" data-model="{model}">'
            "Try other actions</button>"
            '<button class="ws-button" data-act="present" title="Only the dreams, large (Esc leaves; '
            '← → step through the models). Link: ?present=1">Present</button>'
            '<button class="ws-button" data-act="fullscreen" title="Present, on the whole screen">'
            "Fullscreen</button>"
            "</div></div>"
        )

    def _strip_html(self) -> str:
        cards = []
        for index, name in enumerate(self.jobs):
            clip = self.clips.get(name)
            label = html.escape(name)
            if clip is None:
                if name in self.failed:
                    continue
                cards.append(
                    f'<div class="ws-card ws-pending" role="listitem"><span class="ws-thumb"></span>'
                    f'<span class="ws-card-title">{label}</span>'
                    '<span class="ws-card-number">rendering the dream</span></div>'
                )
                continue
            number = self.evals.get(name)
            clip_line = f"{clip.model_psnr:.1f} dB mean PSNR on this clip (copy {clip.copy_psnr:.1f})"
            short, long = number if number else (clip_line, "")
            tip = f"{long} On this clip, {clip.steps} steps from {clip.start}: {clip_line}.".strip()
            attributes = {
                "data-act": "open",
                "data-tab": "rollout",
                "data-model": name,
                "data-index": str(index),
                "data-wide": clip.url("wide"),
                "data-stacked": clip.url("stacked"),
                "data-caption": self.caption(clip),
                "title": tip + " Click: open it in Roll out.",
            }
            attrs = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in attributes.items())
            cards.append(
                f'<button class="ws-card" role="listitem" {attrs}>'
                + _video(clip.url("stacked"), "ws-thumb", None, name)
                + f'<span class="ws-card-title">{label} · {html.escape(clip.gym_id)}</span>'
                f'<span class="ws-card-number">{html.escape(short)}</span></button>'
            )
        if len(cards) < 2:
            return ""
        return (
            '<div class="ws-strip-title">Every model, dream beside reality. Pick one to open it:</div>'
            f'<div class="ws-strip" role="list">{"".join(cards)}</div>'
        )

    # Gradio events (wired in builder.py).

    def refresh(self, shown: str | None):
        """The timer's tick: start rendering if nobody has, and send the showcase again when it
        changed; the timer stops once every clip is there."""
        self.start()
        now = self.page_html()
        return (gr.skip() if now == shown else now), gr.Timer(active=not self.complete)

    def open_example(self, evt: gr.EventData):
        """A click on the flagship's buttons or a card: (model, start frame, actions, simulator
        start, tab) for the page, so Roll out or Play starts from that example."""
        from worldsim.app import handlers

        data = getattr(evt, "_data", None) or {}
        name, tab = data.get("model"), data.get("tab", "rollout")
        example = self.example(name)
        if example is None:
            raise gr.Error(f"No example for {name!r}.")
        frame = handlers._new_video_path(".png", f"{name}_start")  # served from Gradio's own folder
        shutil.copyfile(example.frame, frame)
        tab = tab if tab in ("play", "rollout") else "rollout"
        return name, str(frame), example.actions, example.start, gr.Tabs(selected=tab), tab


def rollout_if_asked(
    tab: str | None,
    model: str,
    start: str | None,
    actions: str,
    simulator_start: str,
    progress=gr.Progress(),  # noqa: B008 (gradio injects it)
):
    """After a click that opened Roll out: its video (Play starts its own game from the start)."""
    from worldsim.app import handlers

    if tab != "rollout":
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return handlers.rollout_video(model, start, actions, simulator_start, progress=progress)


def _video(url: str, classes: str, elem_id: str | None, name: str) -> str:
    ident = f' id="{elem_id}"' if elem_id else ""
    alt = html.escape(f"{name}: the world model's dream beside the real simulator", quote=True)
    return (
        f'<video{ident} class="{classes}" src="{html.escape(url, quote=True)}" autoplay muted loop '
        f'playsinline preload="auto" aria-label="{alt}"></video>'
    )


# --- Serving the clips ----------------------------------------------------------------------


def routes() -> list[Route]:
    return [Route(PREFIX + "/{key}/{file}", clip_file, methods=["GET", "HEAD"])]


async def clip_file(request: Request) -> Response:
    """A cached clip's MP4: only <key>/<layout>.mp4, never another file of the cache."""
    key, file = request.path_params["key"], request.path_params["file"]
    path = cache_root() / key / file
    if not KEY.fullmatch(key) or file not in {f"{layout}.mp4" for layout in LAYOUTS} or not path.is_file():
        return PlainTextResponse("Not found", status_code=404)
    # A key names its content: a browser may keep it for a year.
    headers = {"Cache-Control": "public, max-age=31536000, immutable"}
    return FileResponse(path, media_type="video/mp4", headers=headers)


# --- The README's animation -----------------------------------------------------------------


def write_gif(out: str | Path, model_name: str = "cartpole", layout: str = "wide") -> Path:
    """The model's first example, dream beside reality, as an animated GIF (the README's)."""
    from worldsim.models.catalog import model_entries
    from worldsim.models.registry import load

    entry = next((e for e in model_entries([]) if e.name == model_name), None)
    if entry is None:
        entry = model_entries([model_name])[-1]
    folder = model_folder(entry)
    example = first_example(entry.name, folder) if folder else None
    if example is None:
        raise ValueError(f"{model_name} has no example with a simulator start (examples.json).")
    model = load(entry.location)
    dream, truth = dream_and_truth(model, example)
    fps = min(model.spec.fps, MAX_FPS)
    return write_video(compose(dream, truth, layout, fps), out, fps)


# --- The page's side: styles and the script of the #showcase component ------------------------

# Gradio prefixes every selector of launch's css with ".gradio-container... .contain": inside an
# @media block only the prefixed copy is kept, so rules there name elements of the page (never
# body or .gradio-container), and presentation mode is a class on #showcase itself.
CSS = """
#showcase { margin-bottom: 4px; -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
#showcase .html-container { padding: 0; }
.ws-showcase { display: flex; flex-direction: column; gap: 6px; }
.ws-stage { display: flex; justify-content: center; background: #fff; border-radius: 8px; }
.ws-stage video { display: block; width: 100%; max-width: 1400px; height: auto; }
.ws-stage.ws-pending { aspect-ratio: 4.5 / 1; align-items: center; color: #777;
  background: repeating-linear-gradient(45deg, #f4f4f6, #f4f4f6 12px, #ececf0 12px, #ececf0 24px); }
.ws-pending span::after { content: " …"; }
.ws-narrow { display: none !important; }
.ws-bar { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between;
  gap: 6px 12px; }
.ws-caption { margin: 0; font-size: 15px; }
.ws-buttons { display: flex; flex-wrap: wrap; gap: 6px; }
.ws-button { box-sizing: border-box; height: 36px; display: inline-flex; align-items: center;
  justify-content: center; margin: 0; padding: 0 14px; border-radius: 8px; cursor: pointer; font-size: 14px;
  border: 1px solid var(--border-color-primary, #ccc);
  background: var(--button-secondary-background-fill, #f3f4f6); color: var(--body-text-color, #111); }
.ws-button.ws-primary { background: var(--button-primary-background-fill, #f97316);
  color: var(--button-primary-text-color, #fff); border-color: transparent; font-weight: 600; }
.ws-strip-title { font-size: 13px; color: var(--body-text-color-subdued, #666); margin-top: 4px; }
.ws-strip { display: flex; gap: 10px; overflow-x: auto; padding-bottom: 6px; scroll-snap-type: x proximity; }
.ws-card { flex: 0 0 auto; width: 236px; display: flex; flex-direction: column; align-items: stretch;
  gap: 2px; padding: 6px; border-radius: 8px; cursor: pointer; text-align: left; scroll-snap-align: start;
  border: 1px solid var(--border-color-primary, #ddd); background: var(--block-background-fill, #fff);
  color: var(--body-text-color, #111); font: inherit; }
.ws-card:hover, .ws-card:focus-visible { border-color: var(--color-accent, #f97316); }
.ws-card video, .ws-card .ws-thumb { width: 100%; height: 128px; object-fit: contain; display: block;
  background: #fff; }
.ws-card.ws-pending .ws-thumb { background: #f0f0f3; border-radius: 4px; }
.ws-card-title { font-weight: 600; font-size: 13px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.ws-card-number { font-size: 12px; color: var(--body-text-color-subdued, #555); }
.ws-card.ws-current { border-color: var(--color-accent, #f97316); }

/* A phone: the stacked clip (each panel the screen's width), the inputs folded, bigger targets. */
@media (max-width: 700px) {
  #showcase { margin-left: -24px; margin-right: -24px; width: calc(100% + 48px); max-width: none; }
  .ws-wide { display: none !important; }
  .ws-narrow { display: block !important; }
  .ws-stage.ws-pending { aspect-ratio: 1.1 / 1; }
  .ws-bar { padding: 0 8px; }
  .ws-caption { font-size: 14px; }
  .ws-button { font-size: 15px; }
  .ws-buttons { display: grid; grid-template-columns: 1fr 1fr; width: 100%; }
  .ws-strip { padding-left: 8px; }
  .ws-strip-title { padding-left: 8px; }
  .ws-card { width: 176px; }
  .ws-card video, .ws-card .ws-thumb { height: 104px; }
  #intro h1 { font-size: 26px; margin-bottom: 4px; }
  #intro p { font-size: 14px; line-height: 1.4; }
}
/* Touch: every target at least 44 px. */
@media (max-width: 700px), (pointer: coarse) {
  .ws-button { height: 46px; min-width: 44px; }
  button, [role="tab"], .label-wrap, textarea, select,
  input:not([type="range"]):not([type="checkbox"]):not([type="radio"]):not([type="file"]) {
    min-height: 44px; }
  button { min-width: 44px; }
}

/* Presentation mode (Present, ?present=1, Full screen): the dream and reality, as large as fits. */
#showcase.ws-present { position: fixed; inset: 0; z-index: 1000; margin: 0; padding: 16px 24px;
  background: #101014; color: #f2f2f2; overflow: hidden; }
#showcase.ws-present .html-container, #showcase.ws-present .prose,
#showcase.ws-present .ws-showcase { height: 100%; }
#showcase.ws-present .ws-stage { flex: 1 1 auto; min-height: 0; align-items: center; background: #101014; }
#showcase.ws-present .ws-stage video { width: 100%; height: 100%; max-width: none; object-fit: contain; }
#showcase.ws-present .ws-caption { font-size: 22px; color: #f2f2f2; }
#showcase.ws-present .ws-caption b { color: #fff; }
#showcase.ws-present .ws-button[data-act="open"] { display: none; }
#showcase.ws-present .ws-buttons { display: flex; width: auto; }
#showcase.ws-present .ws-strip-title { display: none; }
#showcase.ws-present .ws-strip { flex: 0 0 auto; }
#showcase.ws-present .ws-card { width: 150px; background: #1c1c22; color: #eee; border-color: #333; }
#showcase.ws-present .ws-card video { height: 64px; background: #1c1c22; }
#showcase.ws-present .ws-card-number { display: none; }
#showcase.ws-present .ws-card-title { color: #ddd; font-size: 12px; }
#showcase.ws-present .ws-card.ws-current { border-color: #f97316; }
/* On a landscape screen that is not very wide, the stacked clip of wide frames is the larger. */
@media (max-aspect-ratio: 5/2) {
  #showcase.ws-present .ws-wide { display: none !important; }
  #showcase.ws-present .ws-narrow { display: block !important; }
}
"""

# js_on_load of the #showcase gr.HTML: `element` is the component, `trigger` sends an event to
# the server (a card's or a button's model and tab, for showcase.open_example).
JS_ON_LOAD = """
const host = element.closest('#showcase') || element;
const presenting = () => host.classList.contains('ws-present');
const present = (on) => {
  host.classList.toggle('ws-present', on);
  document.body.style.overflow = on ? 'hidden' : '';
  element.querySelectorAll('[data-act="present"]').forEach((b) => {
    b.textContent = on ? 'Leave' : 'Present';
  });
  if (!on && document.fullscreenElement) document.exitFullscreen().catch(() => {});
};
const show = (card) => {
  const stage = element.querySelector('.ws-stage');
  if (!card || !stage || !card.dataset.wide) return;
  const wide = element.querySelector('#hero-video'), tall = element.querySelector('#hero-video-stacked');
  if (wide) wide.src = card.dataset.wide;
  if (tall) tall.src = card.dataset.stacked;
  const caption = element.querySelector('#ws-caption');
  if (caption) caption.innerHTML = card.dataset.caption;
  element.querySelectorAll('.ws-card').forEach((c) => c.classList.toggle('ws-current', c === card));
};
element.addEventListener('click', (event) => {
  const target = event.target.closest('[data-act]');
  if (!target || !element.contains(target)) return;
  const act = target.dataset.act;
  if (act === 'present') present(!presenting());
  else if (act === 'fullscreen') {
    present(true);
    const root = document.documentElement;
    if (!document.fullscreenElement && root.requestFullscreen) root.requestFullscreen().catch(() => {});
  } else if (act === 'open') {
    if (presenting() && target.classList.contains('ws-card')) show(target);
    else trigger('click', {model: target.dataset.model, tab: target.dataset.tab});
  }
});
if (!window.worldsimShowcaseKeys) {
  window.worldsimShowcaseKeys = true;
  window.addEventListener('keydown', (event) => {
    const showcase = document.getElementById('showcase');
    if (!showcase || !showcase.classList.contains('ws-present')) return;
    const cards = [...showcase.querySelectorAll('.ws-card[data-wide]')];
    const keys = {ArrowRight: 1, PageDown: 1, ArrowDown: 1, ' ': 1, ArrowLeft: -1, PageUp: -1, ArrowUp: -1};
    const step = keys[event.key];
    if (event.key === 'Escape') showcase.querySelector('[data-act="present"]').click();
    else if (step && cards.length) {
      const now = cards.findIndex((c) => c.classList.contains('ws-current'));
      const next = cards[(Math.max(now, 0) + step + cards.length) % cards.length];
      next.click();
    } else return;
    event.preventDefault();
    event.stopImmediatePropagation();
  }, true);
}
if (new URLSearchParams(window.location.search).get('present') === '1') present(true);
"""

# A click that opens Roll out or Play brings the tabs into view (run in the page, before the server).
SCROLL_TO_TABS_JS = """
() => {
  const showcase = document.getElementById('showcase');
  if (showcase) showcase.classList.remove('ws-present');
  document.body.style.overflow = '';
  const tabs = document.getElementById('main-tabs');
  if (tabs) tabs.scrollIntoView({behavior: 'smooth', block: 'start'});
}
"""

# On a narrow screen the inputs start folded (a tap opens each): a js-only load event whose
# outputs are the accordions.
FOLD_ON_NARROW_JS = """
() => {
  const narrow = window.matchMedia('(max-width: 700px)').matches;
  return Array.from({length: %d}, () => narrow ? {__type__: 'update', open: false} : {__type__: 'update'});
}
"""
