"""The app's own examples, measured: the start a visitor sees first is not one of `eval`'s (the
reset frame, or the frame after a warm-up of the policy's own actions). CarRacing's examples
start from a car at rest after fifty no-op steps, and a CarRacing retrained for action following
that passed every line of `eval` lost 5 dB there (docs/experiments.md, session 21).

Each example with a simulator start ("seed 2 after [0,0,0]*50") is played from held-out seeds:
the start's warm-up actions from the reset, then the example's actions, the model given the same
context frames and the keys played into the start as the app gives it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldsim.data.collect import EVAL_SEED_START
from worldsim.envs.actions import parse_actions
from worldsim.envs.simulator import SimulatorStart, simulator_frames
from worldsim.envs.spec import preprocess
from worldsim.evaluation.metrics import per_step_metrics
from worldsim.models.base import WorldModel
from worldsim.models.examples import model_examples
from worldsim.rollout import imagine


def example_scores(model: WorldModel, name: str, folder: Path, episodes: int) -> list[dict]:
    """Per example with a simulator start: its start and actions, and the mean over its steps and
    the held-out seeds of the PSNR of the model and of copying the start frame (with per-step
    curves). [] for a model without examples."""
    spec, scores = model.spec, []
    for example in model_examples(name, folder):
        if not example.start:
            continue
        start = SimulatorStart.parse(example.start)
        played, actions = start.played(spec), list(parse_actions(example.actions, spec))
        warmup, context = len(played), min(model.context_frames, len(played) + 1)
        true, contexts = [], []
        for i in range(episodes):
            frames = simulator_frames(spec, EVAL_SEED_START + i, played + actions)
            frames = np.stack([preprocess(frame, spec) for frame in frames])
            true.append(frames[warmup:])
            contexts.append(frames[warmup + 1 - context : warmup + 1])
        past = None
        if played and model.past_actions:
            past = np.repeat(np.asarray(played[-model.past_actions :])[None], episodes, axis=0)
        action_rows = np.repeat(np.asarray(actions)[None], episodes, axis=0)
        pred = imagine(model, np.stack(contexts), action_rows, past=past).frames
        m = per_step_metrics(pred, np.stack(true), spec)
        scores.append(
            {
                "start": example.start,
                "actions": example.actions,
                "steps": len(actions),
                "psnr": float(np.mean(m["psnr"][1:])),
                "psnr_copy": float(np.mean(m["psnr_copy"][1:])),
                "per_step": {"psnr": m["psnr"].tolist(), "psnr_copy": m["psnr_copy"].tolist()},
            }
        )
    return scores


def examples_markdown(scores: list[dict], episodes: int) -> str:
    """A table: one row per example, PSNR model / copy averaged over its steps and at h=1, 5, 10."""
    lines = [
        f"Each of the app's examples with a simulator start, played from {episodes} held-out seeds "
        "(the start's actions from the reset, then the example's). Cells: PSNR in dB, model / copy.",
        "",
        "| start | actions | steps | mean over the steps | h=1 | h=5 | h=10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for score in scores:
        curve = score["per_step"]
        at = [
            f"{curve['psnr'][h]:.1f} / {curve['psnr_copy'][h]:.1f}" if h < len(curve["psnr"]) else "–"
            for h in (1, 5, 10)
        ]
        lines.append(
            f"| `{score['start']}` | `{score['actions']}` | {score['steps']} | "
            f"{score['psnr']:.1f} / {score['psnr_copy']:.1f} | " + " | ".join(at) + " |"
        )
    return "\n".join(lines)


def example_line(score: dict) -> str:
    """PASS/FAIL: the model above copying the start frame on the example, averaged over its steps."""
    gain = score["psnr"] - score["psnr_copy"]
    return (
        f"{'PASS' if gain > 0 else 'FAIL'} example `{score['start']}` then `{score['actions']}`: "
        f"PSNR {score['psnr']:.2f} dB over its {score['steps']} steps, {gain:+.2f} over copy "
        "(aim: above copy)"
    )
