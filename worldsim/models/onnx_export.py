"""A world model as two ONNX graphs, so that a page can play it with onnxruntime-web (no server
per step), and the check that the graphs draw what torch draws.

    start.onnx   context uint8 (1, K, h, w, 3), K = model.context_frames, oldest first
                 -> the state: float32 tensors, one output per part (latent kind: z, h, ref_z,
                    ref, offset, and `age` where the model re-encodes its latent)
    step.onnx    the state (inputs named as start's outputs) and `action` ((1,) int64 discrete,
                 (1, D) float32 continuous)
                 -> `<part>_next` for every part the step changes (the others stay as they are),
                    `frame` uint8 (h, w, 3), and where the model has the `outcome` capability
                    `reward` (1,) float32 (snapped in the graph to the model's reward_values, where
                    it has them) and `terminated` (1,) bool

A player runs start once per game and step once per frame, feeding each `<part>_next` back as
`<part>`. Fewer start frames than K: repeat the first (that is what `start` does with fewer).
Each graph carries `worldsim.*` metadata: the sha256 of the weights it was exported from (a
retrained checkpoint makes its graphs stale; `onnx_status` says so) and the check's result.

    >>> model = worldsim.load("cartpole")
    >>> model.export_onnx("checkpoints/cartpole")               # torch.onnx, dynamo, opset 18
    >>> check_onnx(model, "checkpoints/cartpole").min_psnr    # 60 steps, at least 45 dB
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from worldsim.models.base import WorldModel

OPSET = 18  # what onnxruntime-web 1.30 runs on wasm (docs: shared/BROWSER-INFERENCE.md)
START_FILE, STEP_FILE = "start.onnx", "step.onnx"
ONNX_FILES = (START_FILE, STEP_FILE)
MIN_PSNR = 45.0  # every step of the check's rollout: fp32 graphs draw within about a pixel level
CHECK_STEPS = 60
MAX_GRAPH_BYTES = 10_000_000  # the Hub's limit for a file outside LFS
STATE_PARTS = ("z", "h", "ref_z", "ref", "offset")  # the latent kind's state, as graph tensors


# A model that re-encodes its latent also counts its steps and carries the encoding of the frame
# it drew last (which the step that re-encodes goes on from: a graph cannot draw it only then).
REENCODE_PARTS = ("age", "seen")


def state_parts(model) -> tuple[str, ...]:
    """The state's graph tensors."""
    return STATE_PARTS + (REENCODE_PARTS if model.config.reencode_every else ())


def changing_parts(model) -> tuple[str, ...]:
    """What a step changes; the rest is fixed for a game."""
    return ("z", "h") + (REENCODE_PARTS if model.config.reencode_every else ())


# --- The latent kind's graphs -----------------------------------------------------------------


def _as_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1]; `permute`, since the exported
    `movedim` became a Transpose with a negative permutation that onnxruntime refused."""
    order = (*range(frames.dim() - 3), frames.dim() - 1, frames.dim() - 3, frames.dim() - 2)
    return frames.permute(order).float() / 255


class LatentStart(nn.Module):
    """context uint8 (1, K, h, w, 3) -> the state parts (`state_parts`: z, h, ref_z, ref, offset[,
    age]); offset is zeros for GRU dynamics."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, context: torch.Tensor):
        state = self.model.start_float(_as_float(context))
        offset = torch.zeros_like(state.z) if state.offset is None else state.offset
        reencoding = (state.age, torch.zeros_like(state.z)) if state.age is not None else ()  # age 0: unused
        return state.z, state.h, state.ref_z, state.ref, offset, *reencoding


class LatentStep(nn.Module):
    """(state parts, action) -> (the changing parts' `<part>_next`, frame uint8 (h, w, 3)[,
    reward, terminated]): `model.step`, then `render`, as a play session does them."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        from worldsim.models.latent import LatentState

        *parts, action = inputs
        given = dict(zip(state_parts(self.model), parts, strict=True))
        state = self.model.step(LatentState(**given, prev_z=given["z"]), action)
        drawn = self.model.render_float(state)
        frame = (drawn[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8)  # (h, w, 3)
        if self.model.config.reencode_every or self.model.reads_frames:
            state.seen = self.model.seen_latent(drawn)  # encoded once, for both
        changed = tuple(getattr(state, name) for name in changing_parts(self.model))
        if self.model.outcome_head is None:
            return *changed, frame
        outcome = self.model.outcome(state)  # the reward snapped as in torch (reward_values)
        return *changed, frame, outcome.reward, outcome.terminated


def example_inputs(model) -> tuple[torch.Tensor, torch.Tensor]:
    """A context (1, K, h, w, 3) and one action, the shapes the graphs take."""
    spec = model.spec
    context = torch.zeros(1, model.context_frames, spec.height, spec.width, 3, dtype=torch.uint8)
    if spec.action_kind == "discrete":
        action = torch.zeros(1, dtype=torch.int64)
    else:
        action = torch.zeros(1, spec.num_actions, dtype=torch.float32)
    return context, action


def weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of named tensors (a state dict, or a safetensors file's contents): which weights a
    graph was exported from, whatever file they were saved in."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def folder_digest(folder: str | Path) -> str:
    """weights_digest of a checkpoint folder's model.safetensors ('' where there is none)."""
    from safetensors.torch import load_file

    path = Path(folder) / "model.safetensors"
    return weights_digest(load_file(path)) if path.is_file() else ""


def export_latent(model, folder: str | Path) -> list[Path]:
    """Write start.onnx and step.onnx of a LatentWorldModel into `folder` (replacing any there:
    running it again gives the same files). Returns their paths."""
    import onnx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    context, action = example_inputs(model)
    with torch.no_grad():
        state = LatentStart(model)(context)
    outputs = [f"{name}_next" for name in changing_parts(model)] + ["frame"]
    outputs += ["reward", "terminated"] if model.outcome_head else []
    parts = list(state_parts(model))
    graphs = [
        (LatentStart(model).eval(), (context,), ["context"], parts, folder / START_FILE),
        (LatentStep(model).eval(), (*state, action), [*parts, "action"], outputs, folder / STEP_FILE),
    ]
    metadata = {
        "worldsim.weights_sha256": weights_digest(model.state_dict()),
        "worldsim.kind": model.kind,
        "worldsim.env": model.spec.name,
        "worldsim.context_frames": str(model.context_frames),
    }
    paths = []
    for module, args, input_names, output_names, path in graphs:
        tmp = path.with_suffix(".tmp.onnx")
        with torch.no_grad(), _quiet():
            torch.onnx.export(
                module,
                args,
                str(tmp),
                dynamo=True,
                opset_version=OPSET,
                input_names=input_names,
                output_names=output_names,
                external_data=False,
                verbose=False,
            )
        graph = onnx.load(str(tmp))
        _set_metadata(graph, metadata)
        onnx.save(graph, str(tmp))
        tmp.replace(path)  # atomic: a server reading the old file never sees half a new one
        paths.append(path)
    return paths


@contextlib.contextmanager
def _quiet():
    """The exporter's warnings about torchvision ops and deprecated pytree types say nothing about
    our graphs."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _set_metadata(graph, values: dict[str, str]) -> None:
    kept = [p for p in graph.metadata_props if p.key not in values]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    for key, value in values.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: str | Path) -> dict[str, str]:
    """The `metadata_props` of an ONNX file (without loading its weights into numpy)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in graph.metadata_props}


def onnx_status(folder: str | Path, weights: str | Path | None = None) -> str | None:
    """None where the graphs in `folder` are present and were exported from the weights in
    `weights` (a checkpoint folder; default `folder` itself); else why not, in a few words."""
    folder = Path(folder)
    missing = [name for name in ONNX_FILES if not (folder / name).is_file()]
    if missing:
        return f"no {' or '.join(missing)} (python -m worldsim export)"
    digest = folder_digest(folder if weights is None else weights)
    for name in ONNX_FILES:
        if read_metadata(folder / name).get("worldsim.weights_sha256", "") != digest:
            return f"{name} was exported from other weights (run python -m worldsim export again)"
    return None


# --- The check: onnxruntime against torch ----------------------------------------------------


@dataclass
class OnnxCheck:
    """A rollout through the graphs (onnxruntime) against the same rollout in torch."""

    psnr: list[float]  # per step, of the frames (inf where identical)
    max_pixel_diff: int  # largest difference of any pixel level, over all steps
    reward_diff: float | None  # largest |reward| difference; None without the outcome capability
    terminated_agree: float | None  # share of steps where both say the same
    ms_per_step: float  # onnxruntime, one thread

    @property
    def min_psnr(self) -> float:
        return min(self.psnr)

    @property
    def passed(self) -> bool:
        return self.min_psnr >= MIN_PSNR

    def describe(self) -> str:
        text = (
            f"min PSNR {self.min_psnr:.1f} dB over {len(self.psnr)} steps "
            f"(max pixel difference {self.max_pixel_diff}), onnxruntime {self.ms_per_step:.2f} ms/step"
        )
        if self.reward_diff is not None:
            text += f", reward within {self.reward_diff:.2g}, terminated agrees {self.terminated_agree:.0%}"
        return text + (" - passed" if self.passed else f" - FAILED (needs {MIN_PSNR:g} dB at every step)")


def check_actions(spec, steps: int, seed: int = 0) -> np.ndarray:
    """Random actions over the whole action space: (steps,) int64 or (steps, D) float32."""
    rng = np.random.default_rng(seed)
    if spec.action_kind == "discrete":
        return rng.integers(0, spec.num_actions, steps).astype(np.int64)
    low, high = np.asarray(spec.action_low, np.float32), np.asarray(spec.action_high, np.float32)
    return rng.uniform(low, high, (steps, len(low))).astype(np.float32)


def session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session of one graph."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def check_onnx(
    model: WorldModel,
    folder: str | Path,
    context: np.ndarray | None = None,
    actions: np.ndarray | None = None,
    steps: int = CHECK_STEPS,
) -> OnnxCheck:
    """Roll out `steps` steps from `context` (K, h, w, 3) uint8 (default: a reset frame of the
    environment... or grey where it cannot be made) under `actions` (default: random ones) with
    the graphs in `folder` and with torch, and compare every frame."""
    import time

    from worldsim.media.panels import per_step_psnr

    folder = Path(folder)
    if context is None:
        context = default_context(model)
    if actions is None:
        actions = check_actions(model.spec, steps)
    start, step = session(folder / START_FILE), session(folder / STEP_FILE)
    context = np.asarray(context, np.uint8)[-model.context_frames :]
    if len(context) < model.context_frames:  # fewer frames: repeat the first, as `start` does
        context = np.concatenate([np.repeat(context[:1], model.context_frames - len(context), 0), context])
    names = [o.name for o in start.get_outputs()]
    state = dict(zip(names, start.run(None, {"context": np.ascontiguousarray(context)[None]}), strict=True))
    torch_state = model.start(torch.from_numpy(np.ascontiguousarray(context))[None].to(model.device))
    outputs = [o.name for o in step.get_outputs()]
    graph_frames, torch_frames, rewards, ended = [], [], [], []
    seconds = 0.0
    for action in actions[:steps]:
        feed = {**state, "action": np.asarray(action)[None]}
        started = time.perf_counter()
        result = dict(zip(outputs, step.run(None, feed), strict=True))
        seconds += time.perf_counter() - started
        state |= {name.removesuffix("_next"): v for name, v in result.items() if name.endswith("_next")}
        graph_frames.append(result["frame"])
        torch_state = model.step(torch_state, torch.as_tensor(action)[None].to(model.device))
        torch_frames.append(model.render(torch_state)[0].cpu().numpy())
        if "reward" in result:
            outcome = model.outcome(torch_state)
            rewards.append(abs(float(result["reward"][0]) - float(outcome.reward[0])))
            ended.append(bool(result["terminated"][0]) == bool(outcome.terminated[0]))
    ours, theirs = np.stack(graph_frames), np.stack(torch_frames)
    psnr = [float(p) if math.isfinite(p) else math.inf for p in per_step_psnr(ours, theirs)]
    return OnnxCheck(
        psnr=psnr,
        max_pixel_diff=int(np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).max()),
        reward_diff=max(rewards) if rewards else None,
        terminated_agree=float(np.mean(ended)) if ended else None,
        ms_per_step=1000 * seconds / max(len(graph_frames), 1),
    )


def default_context(model: WorldModel) -> np.ndarray:
    """(1, h, w, 3): the environment's reset frame (seed 0) as the model sees it; grey where the
    environment cannot be made here."""
    from worldsim.envs.simulator import SimulatorStart
    from worldsim.envs.spec import preprocess

    spec = model.spec
    try:
        frame = SimulatorStart(0).frames(spec)[0]
        return preprocess(frame, spec)[None]
    except Exception:  # an environment not installed here: the graphs are checked all the same
        return np.full((1, spec.height, spec.width, 3), 128, np.uint8)


def export_and_check(model: WorldModel, folder: str | Path) -> tuple[list[Path], OnnxCheck]:
    """`model.export_onnx(folder)`, then the check; raises if a graph is too big for the Hub."""
    paths = model.export_onnx(folder)
    sizes = {p.name: p.stat().st_size for p in paths}
    too_big = [f"{name} {size / 1e6:.1f} MB" for name, size in sizes.items() if size > MAX_GRAPH_BYTES]
    if too_big:
        raise ValueError(f"ONNX files over the Hub's 10 MB limit: {', '.join(too_big)}")
    check = check_onnx(model, folder)
    for path in paths:  # record the check in the graphs themselves
        import onnx

        graph = onnx.load(str(path))
        _set_metadata(graph, {"worldsim.check": json.dumps({"min_psnr": round(check.min_psnr, 2)})})
        onnx.save(graph, str(path))
    return paths, check


def recorded_check(folder: str | Path) -> float | None:
    """The min PSNR that `export_and_check` recorded in the step graph, if any."""
    try:
        return json.loads(read_metadata(Path(folder) / STEP_FILE).get("worldsim.check", "{}")).get("min_psnr")
    except (OSError, ValueError):
        return None


def export_command(name: str, out: str | Path | None = None, force: bool = False) -> bool:
    """`python -m worldsim export`: export one model (a name, folder or hf:// id) into `out`
    (default: its checkpoint folder) and print the check. Graphs already exported from the same
    weights are kept unless `force`. Returns whether the check passed."""
    from worldsim.models.checkpoint import resolve
    from worldsim.models.registry import load

    source = resolve(name)
    folder = Path(out) if out else source
    model = load(name)
    if not model.capabilities.onnx:
        raise ValueError(f"{name}: kind {model.kind!r} has no ONNX export (capability 'onnx').")
    if not force and onnx_status(folder, source) is None:
        sizes = ", ".join(f"{n} {(folder / n).stat().st_size / 1e6:.1f} MB" for n in ONNX_FILES)
        recorded = recorded_check(folder)
        check = f"min PSNR {recorded:.1f} dB when exported" if recorded is not None else "not recorded"
        print(f"{name}: up to date in {folder} ({sizes}; check {check}); --force exports again")
        return True
    paths, check = export_and_check(model, folder)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in paths)
    print(f"{name}: {sizes} in {folder}; torch vs onnxruntime: {check.describe()}")
    return check.passed
