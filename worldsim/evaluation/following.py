"""Action following: from the same start, does the model's object move the way the simulator's
does under the same action?

PSNR can be high for a model that ignores the actions (a paddle that stays put costs few
pixels), and a person who holds "left" notices at once when nothing moves left. So, for held-out
seeds (those `eval` uses), take a start as evaluation does (the reset frame; after a warm-up of
random play where the env has one, with the model's context frames), hold each of the env's
moving actions for a third of a second of the env's time (`hold_steps`: 5 steps at 15 frames/s,
17 at 50) in the simulator and in the model, read one object back
from both end frames, and compare the direction it moved from the start frame. Only moves where
the simulator's object moves more than the readout's noise count; a model whose object stays
put (or is lost) counts as wrong. The aim (issue 15) is that at least 95% of moves agree.

    >>> result = action_following(worldsim.load("pong"), episodes=20)
    >>> result["accuracy"], result["counted"]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from worldsim.data.collect import EVAL_SEED_START, POLICIES
from worldsim.envs.actions import parse_actions
from worldsim.envs.objects import (
    read_acrobot,
    read_breakout,
    read_carracing,
    read_cartpole,
    read_lunarlander,
    read_mountaincar,
    read_pendulum,
    read_pong,
)
from worldsim.envs.simulator import Simulator
from worldsim.envs.spec import EnvSpec, preprocess
from worldsim.models.base import WorldModel
from worldsim.rollout import imagine

# Each action is held as long as a person presses a key, a third of a second of the env's time,
# and at least 5 steps: long enough to move, short enough to read. In steps, a fixed count meant
# different things at 15 and 50 frames/s: CarRacing's heading turned by at most 1.4 degrees in 5
# steps of full steering, often the other way (the wheels still turning back), and 10-18 degrees,
# always the steered way, in 17 (eval's first 8 seeds after 50 random steps).
FOLLOW_SECONDS = 1 / 3
FOLLOW_MIN_STEPS = 5
FOLLOW_AIM = 0.95


@dataclass(frozen=True)
class Readout:
    """One object coordinate read from frames, and the displacement below which the simulator's
    move is not counted: smaller moves are within the reader's noise, so their direction says
    nothing about the model."""

    reader: Callable[[np.ndarray, EnvSpec], dict[str, np.ndarray]]
    key: str
    threshold: float
    unit: str
    angle: bool = False  # degrees that wrap around: a displacement is taken the short way round

    def displacement(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """end - start per row; NaN where either frame lacks the object."""
        moved = end - start
        return (moved + 180) % 360 - 180 if self.angle else moved


# By env name (a spec's `name`), not by `object_reader`: acrobot, mountaincar and lunarlander have
# readers here but no `object_reader` in their specs, so `eval`'s per-step object errors skip them.
READOUTS: dict[str, Readout] = {
    "cartpole": Readout(read_cartpole, "cart_x", 0.01, "track units"),
    "pong": Readout(read_pong, "paddle_y", 2.0, "screen px"),
    "breakout": Readout(read_breakout, "paddle_x", 2.0, "screen px"),
    "pendulum": Readout(read_pendulum, "rod_angle_deg", 3.0, "degrees", angle=True),
    # The car's offset from the road's centre just ahead, which steering turns: the centre is a
    # centroid over the rows ahead, read to below a pixel. Gas or nothing moves it by a fraction
    # of a pixel, which counts from 0.2 px on.
    "carracing": Readout(read_carracing, "track_offset", 0.2, "view px"),
    "acrobot": Readout(read_acrobot, "link1_angle_deg", 3.0, "degrees", angle=True),
    "mountaincar": Readout(read_mountaincar, "car_x", 0.005, "position units"),
    "lunarlander": Readout(read_lunarlander, "lander_x", 0.005, "half screen widths"),
}


def hold_steps(spec: EnvSpec) -> int:
    """How many steps each action is held: FOLLOW_SECONDS of the env's time, at least FOLLOW_MIN_STEPS."""
    return max(FOLLOW_MIN_STEPS, round(FOLLOW_SECONDS * spec.fps))


def moving_actions(spec: EnvSpec) -> np.ndarray:
    """The actions to hold: every discrete action, or each distinct action of a continuous env's
    play keys (what a person presses), as parse_actions gives them: (A,) or (A, D)."""
    if spec.action_kind == "discrete":
        return np.arange(spec.num_actions, dtype=np.int64)
    actions: list[np.ndarray] = []
    for text in spec.play_keys.values():
        action = parse_actions(text, spec)[0]
        if not any(np.array_equal(action, seen) for seen in actions):
            actions.append(action)
    if not actions:  # no play keys: the corners of the box, low and high in every dimension
        actions = [np.asarray(spec.action_low, np.float32), np.asarray(spec.action_high, np.float32)]
    return np.stack(actions)


def action_label(action: np.ndarray, spec: EnvSpec) -> str:
    """How a person types the action: its name, or its numbers without float32 noise ('[-1,0.3,0]')."""
    if spec.action_kind == "discrete":
        return spec.action_names[int(action)]
    values = [f"{float(v):.4g}" for v in np.ravel(action)]
    return values[0] if len(values) == 1 else "[" + ",".join(values) + "]"


def simulate_moves(
    spec: EnvSpec, seed: int, moves: np.ndarray, warmup: int, context: int, steps: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One held-out start and each move from it in the simulator: the context frames (K, h, w, 3)
    ending at the start frame, per move the start frame and the frames of holding that move
    (A, steps+1, h, w, 3), and the actions played into the start (warmup, ...). The warm-up is
    played by the random policy as in `eval`; each move replays it from the same seed (the
    simulators are deterministic; checked on the start frame). `steps`: hold_steps(spec) unless given."""
    steps = hold_steps(spec) if steps is None else steps
    actor = POLICIES["random"](spec, np.random.default_rng(seed))
    with Simulator(spec) as sim:
        frames, played = [preprocess(sim.reset(seed), spec)], []
        for _ in range(warmup):
            played.append(actor.act(sim.observation))
            frames.append(preprocess(sim.step(played[-1])[0], spec))
        start = frames[-1]
        runs = []
        for move in moves:
            frame = preprocess(sim.reset(seed), spec)
            for action in played:
                frame = preprocess(sim.step(action)[0], spec)
            if not np.array_equal(frame, start):
                raise RuntimeError(f"{spec.name} did not replay seed {seed} to the same start frame.")
            runs.append([start] + [preprocess(sim.step(move)[0], spec) for _ in range(steps)])
    return np.stack(frames[-context:]), np.asarray(runs), np.asarray(played)


def follow_scores(
    start: np.ndarray, simulated: np.ndarray, predicted: np.ndarray, readout: Readout, spec: EnvSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Start, simulator and model end frames (N, h, w, 3) -> (counted, right) per row: counted
    where the simulator's object moved more than the readout's threshold, right where the model's
    moved the same way (a model whose object stays put or vanishes is wrong)."""
    values = readout.reader(np.concatenate([start, simulated, predicted]), spec)[readout.key]
    first, sim_end, model_end = np.split(values, 3)
    sim_moved = readout.displacement(first, sim_end)
    model_moved = readout.displacement(first, model_end)
    with np.errstate(invalid="ignore"):
        counted = np.abs(sim_moved) > readout.threshold  # NaN compares False: not counted
        right = counted & (np.sign(model_moved) == np.sign(sim_moved))
    return counted, right


def action_following(
    model: WorldModel, episodes: int, steps: int | None = None, seed_start: int = EVAL_SEED_START
) -> dict | None:
    """Share of moves in which the model's object moves the way the simulator's does, over
    `episodes` held-out starts and every moving action; None where the env has no readout (not
    measured, rather than a number about something else).

    Returns accuracy, counted (moves the simulator made large enough to judge), moves (all),
    per_action ({action: [right, counted]}), and what was read (key, threshold, unit, start)."""
    spec = model.spec
    readout = READOUTS.get(spec.name)
    if readout is None:
        return None
    moves = moving_actions(spec)
    steps = hold_steps(spec) if steps is None else steps
    warmup = spec.warmup_steps
    context = model.context_frames if warmup else 1
    contexts, runs, pasts = [], [], []
    for i in range(episodes):
        frames, moved, played = simulate_moves(spec, seed_start + i, moves, warmup, context, steps)
        contexts.append(np.repeat(frames[None], len(moves), axis=0))
        runs.append(moved)
        pasts.append(np.repeat(played[None, max(0, len(played) - model.past_actions) :], len(moves), axis=0))
    contexts, runs = np.concatenate(contexts), np.concatenate(runs)  # (episodes * A, ...)
    held = np.repeat(moves[:, None], steps, axis=1)  # (A, steps, ...): each move held throughout
    actions = np.tile(held, (episodes,) + (1,) * (held.ndim - 1))
    # The keys played into the start, as the app's simulator start passes them (none from a reset)
    past = np.concatenate(pasts) if warmup and model.past_actions else None
    predicted = imagine(model, contexts, actions, past=past).frames
    counted, right = follow_scores(runs[:, 0], runs[:, -1], predicted[:, -1], readout, spec)
    per_action = {}
    for a, move in enumerate(moves):
        rows = np.arange(a, len(counted), len(moves))
        per_action[action_label(move, spec)] = [int(right[rows].sum()), int(counted[rows].sum())]
    total = int(counted.sum())
    return {
        "accuracy": float(right.sum() / total) if total else None,
        "counted": total,
        "moves": len(counted),
        "per_action": per_action,
        "object": readout.key,
        "threshold": readout.threshold,
        "unit": readout.unit,
        "steps": steps,
        "seconds": steps / spec.fps,
        "start": (
            f"the frame after {warmup} steps of random play ({context} context frames)"
            if warmup
            else "the reset frame"
        ),
        "seeds": f"{seed_start}..{seed_start + episodes - 1}",
    }


def following_line(result: dict | None, env: str = "") -> str:
    """The verdict as one line: PASS/FAIL against the aim, or why it was not measured."""
    if result is None:
        return f"action following: not measured (no object readout for {env or 'this environment'})"
    if result["accuracy"] is None:
        return f"action following: not measured (the simulator's {result['object']} never moved enough)"
    accuracy = result["accuracy"]
    return (
        f"{'PASS' if accuracy >= FOLLOW_AIM else 'FAIL'} action following: {accuracy:.0%} of "
        f"{result['counted']} moves (aim: >= {FOLLOW_AIM:.0%}): {result['object']} after "
        f"{result['steps']} steps{held_time(result)} of each action, from {result['start']}"
    )


def held_time(result: dict) -> str:
    """' (0.34 s)', or '' for results saved before the hold was set in seconds."""
    return f" ({result['seconds']:.2f} s)" if "seconds" in result else ""
