"""Benchmark: rollout speed against the environment's real-time step rate, and cold start.

    python -m worldsim bench --model cartpole

Prints medians over repeated runs. Measures what a user waits for: `worldsim.rollout.imagine` on uint8
frames, decoding included, video encoding excluded (see the app's timings for that).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from worldsim.models.registry import load
from worldsim.rollout import imagine


def _random_actions(spec, batch: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    if spec.action_kind == "discrete":
        return rng.integers(spec.num_actions, size=(batch, steps))
    return rng.uniform(spec.action_low, spec.action_high, size=(batch, steps, spec.action_dim)).astype(
        np.float32
    )


def run_benchmark(model_name: str, steps: int = 60, repeats: int = 7) -> dict:
    started = time.perf_counter()
    model = load(model_name)
    spec = model.spec
    rng = np.random.default_rng(0)
    context = rng.integers(0, 256, size=(1, 1, spec.height, spec.width, 3), dtype=np.uint8)
    imagine(model, context, _random_actions(spec, 1, 1, rng))
    cold_start = time.perf_counter() - started
    print(
        f"{spec.name}: cold start (load + first frame) {cold_start:.2f} s; "
        f"torch threads {torch.get_num_threads()}"
    )
    results = {"cold_start_s": cold_start}
    for batch in (1, 8):
        ctx = np.repeat(context, batch, axis=0)
        actions = _random_actions(spec, batch, steps, rng)
        imagine(model, ctx, actions)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            imagine(model, ctx, actions)
            times.append(time.perf_counter() - t)
        median = statistics.median(times)
        fps = batch * steps / median
        results[f"batch{batch}_fps"] = fps
        print(
            f"  batch {batch}: {steps}-step rollout median {median * 1000:.1f} ms -> {fps:,.0f} frames/s "
            f"= {fps / spec.fps:.1f}x real time ({spec.fps:g} steps/s)"
        )
    return results


def _training_summary(folder) -> str:
    """Minutes and samples/s from the checkpoint's training record (frames for the autoencoder,
    unrolled windows for the dynamics), as measured while it trained."""
    import json

    record = json.loads((folder / "training.json").read_text())
    rates = ", ".join(f"{record[stage]['samples_per_second']:,.0f}" for stage in ("autoencoder", "dynamics"))
    return f"{record['minutes']:.1f} | {rates}"


def run_all_benchmarks(steps: int, repeats: int, out: str = "docs/bench.md") -> str:
    """Every shipped model, one table (markdown, also written to `out`)."""
    from pathlib import Path

    from worldsim.models.checkpoint import CHECKPOINTS_DIR

    rows = [
        "# Rollout speed, every shipped model",
        "",
        f"`python -m worldsim bench --all` on this 2-core machine ({steps}-step rollouts, median of "
        f"{repeats}, torch threads {torch.get_num_threads()}). Bar at batch 1: 10x real time (CarRacing 5x).",
        "",
        "| model | real time (steps/s) | batch 1 frames/s | x real time | batch 8 frames/s "
        "| cold start s | bar | training minutes | training samples/s (autoencoder, dynamics) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for folder in sorted(p.parent for p in CHECKPOINTS_DIR.glob("*/config.json")):
        result = run_benchmark(folder.name, steps, repeats)
        fps = load(folder.name).spec.fps
        target = 5 if folder.name.startswith("carracing") else 10
        multiple = result["batch1_fps"] / fps
        rows.append(
            f"| {folder.name} | {fps:g} | {result['batch1_fps']:,.0f} | {multiple:.1f}x | "
            f"{result['batch8_fps']:,.0f} | {result['cold_start_s']:.2f} | "
            f"{'met' if multiple >= target else 'NOT met'} ({target}x) | {_training_summary(folder)} |"
        )
    text = "\n".join(rows) + "\n"
    Path(out).write_text(text)
    return text
