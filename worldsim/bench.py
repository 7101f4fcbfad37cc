"""Benchmark: rollout speed against the environment's real-time step rate, and cold start.

    python -m worldsim bench --model cartpole

Prints medians over repeated runs. Measures what a user waits for: `model.imagine` on uint8
frames, decoding included, video encoding excluded (see the app's timings for that).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from worldsim.checkpoint import load


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
    model.imagine(context, _random_actions(spec, 1, 1, rng))
    cold_start = time.perf_counter() - started
    print(
        f"{spec.name}: cold start (load + first frame) {cold_start:.2f} s; "
        f"torch threads {torch.get_num_threads()}"
    )
    results = {"cold_start_s": cold_start}
    for batch in (1, 8):
        ctx = np.repeat(context, batch, axis=0)
        actions = _random_actions(spec, batch, steps, rng)
        model.imagine(ctx, actions)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model.imagine(ctx, actions)
            times.append(time.perf_counter() - t)
        median = statistics.median(times)
        fps = batch * steps / median
        results[f"batch{batch}_fps"] = fps
        print(
            f"  batch {batch}: {steps}-step rollout median {median * 1000:.1f} ms -> {fps:,.0f} frames/s "
            f"= {fps / spec.fps:.1f}x real time ({spec.fps:g} steps/s)"
        )
    return results
