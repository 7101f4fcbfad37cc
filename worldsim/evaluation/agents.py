"""An agent's score inside the dream, next to its score in the real environment.

A scripted controller that acts from frames only (the dream has no simulator state) plays the
real environment and the dream (`worldsim/Dream-v0`) from the same held-out seeds, the same code
in both worlds, each seeing frames at the model's view. Reported per world: episode length (until
`terminated` or `max_steps`; in the dream `terminated` comes from the model's outcome head) and
return (the sum of rewards; the dream's from the outcome head). This is the measure DIAMOND and
IRIS publish: whether a dream is good enough to train an agent in.

    python -m worldsim agent --model cartpole --episodes 20 --max-steps 300

Controllers: CartPole, a PD balancer on the pole angle read from frames; Pong, a paddle that
tracks the ball. Other environments have none (`agent_scores` returns None).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from worldsim.data.collect import EVAL_SEED_START, POLICIES
from worldsim.envs.actions import parse_actions
from worldsim.envs.objects import read_cartpole, read_pong, render_grid
from worldsim.envs.simulator import Simulator
from worldsim.envs.spec import EnvSpec, preprocess
from worldsim.models.base import WorldModel


def _value(reading: dict[str, np.ndarray], key: str) -> float:
    return float(reading[key][0])


class CartPoleController:
    """PD balancer from frames: push right when

        k_angle * angle + k_rate * angle_rate + k_x * cart_x + k_velocity * cart_velocity > 0

    with the angle in degrees (+ leans right) and cart_x in track units read by `read_cartpole`,
    rates by finite difference over one step (0 from a reset frame). The cart terms are small: a
    cart right of centre is pushed right briefly, which tilts the pole left, which the angle term
    then follows back to the centre. Gains tuned on the real CartPole-v1 through the model's view
    (64x160): 8 of 8 held-out seeds balanced 1000 steps, and every gain in a 4x range around them
    balanced 300. A reading that is missing (cart off screen) counts as 0.
    """

    description = "a PD balancer reading the pole angle from frames"

    def __init__(
        self,
        spec: EnvSpec,
        k_angle: float = 1.0,
        k_rate: float = 4.0,
        k_x: float = 2.0,
        k_velocity: float = 30.0,
    ):
        self.spec = spec
        self.gains = (k_angle, k_rate, k_x, k_velocity)
        self.left, self.right = (int(parse_actions(name, spec)[0]) for name in ("left", "right"))
        self._previous: tuple[float, float] | None = None

    def reset(self) -> None:
        self._previous = None

    def read(self, frame: np.ndarray) -> tuple[float, float]:
        """(pole angle in degrees, cart x in track units) of one frame at the model's view; 0 where
        the frame does not show them."""
        reading = read_cartpole(frame[None], self.spec)
        angle, x = _value(reading, "pole_angle_deg"), _value(reading, "cart_x")
        return (0.0 if np.isnan(angle) else angle), (0.0 if np.isnan(x) else x)

    def act(self, frame: np.ndarray) -> int:
        angle, x = self.read(frame)
        previous_angle, previous_x = self._previous or (angle, x)
        self._previous = angle, x
        k_angle, k_rate, k_x, k_velocity = self.gains
        push = k_angle * angle + k_rate * (angle - previous_angle) + k_x * x + k_velocity * (x - previous_x)
        return self.right if push > 0 else self.left


class PongController:
    """Ball-tracking paddle from frames: move the (right, green) paddle toward the ball's row,
    noop within `dead_band` screen pixels; with no ball in view, toward the court's centre. Where
    the paddle slides more than half under a wall, `read_pong` misses it and the green left in
    view places it at that wall; where no green shows at all, its last reading stands. Over 10
    held-out seeds of the real Pong (300 steps after a random warm-up) a dead band of 4 px scored
    +0.7 points a game, 5 px as much, 3 and 6 px less (the paddle coasts on after a move).
    """

    description = "a paddle tracking the ball read from frames"

    def __init__(self, spec: EnvSpec, dead_band: float = 4.0):
        self.spec, self.dead_band = spec, dead_band
        # Pong's "right" moves the paddle up the screen, "left" down: the spec's play keys say so.
        self.up, self.down, self.noop = (
            int(parse_actions(spec.play_keys[role], spec)[0]) for role in ("up", "down", "space")
        )
        self.centre = (spec.crop.top + spec.crop.bottom) / 2 * spec.render_size[0]
        self._paddle = np.nan

    def reset(self) -> None:
        self._paddle = np.nan

    def act(self, frame: np.ndarray) -> int:
        reading = read_pong(frame[None], self.spec)
        paddle, ball = _value(reading, "paddle_y"), _value(reading, "ball_y")
        if np.isnan(paddle):
            paddle = self._paddle_at_wall(frame)
        if not np.isnan(paddle):
            self._paddle = paddle
        if np.isnan(self._paddle):
            return self.noop
        target = self.centre if np.isnan(ball) else ball
        if target < self._paddle - self.dead_band:  # screen rows grow downward
            return self.up
        if target > self._paddle + self.dead_band:
            return self.down
        return self.noop

    def _paddle_at_wall(self, frame: np.ndarray) -> float:
        """Where `read_pong` misses the paddle because it slid half under a wall, the green left in
        view tells which wall: the centre of that green (NaN where there is none)."""
        rows, cols = render_grid(frame[None], self.spec)
        pixels = frame[:, cols > 136].astype(np.float32)
        green = np.clip((pixels[..., 1] - pixels[..., 0]) / 94, 0, 1)
        green[green < 0.25] = 0
        mass = green.sum(axis=1)
        return float((mass * rows).sum() / mass.sum()) if mass.sum() >= 1 else np.nan


CONTROLLERS = {"cartpole": CartPoleController, "pong": PongController}


def controller_for(spec: EnvSpec) -> CartPoleController | PongController | None:
    """The scripted controller for the spec's environment, or None where there is none."""
    cls = CONTROLLERS.get(spec.name)
    return None if cls is None else cls(spec)


def _play(controller, frame: np.ndarray, step, max_steps: int) -> tuple[int, float]:
    """Steps until `terminated` or `max_steps` -> (length, return). `step(action)` gives
    (frame at the model's view, reward, terminated)."""
    controller.reset()
    total = 0.0
    for t in range(1, max_steps + 1):
        frame, reward, terminated = step(controller.act(frame))
        total += reward
        if terminated:
            return t, total
    return max_steps, total


def real_episode(
    spec: EnvSpec, controller, seed: int, max_steps: int, context_frames: int = 1
) -> tuple[int, float, list[np.ndarray]]:
    """The controller in the real environment -> (length, return, start frames at the model's
    view). With `spec.warmup_steps` (Pong: the reset screen has no court), random actions drawn
    from `seed` play the warm-up first: ALE Pong with sticky actions off plays the same game from
    every seed, so the warm-up is what makes the held-out episodes differ. The episode is scored
    from the frame after it; the start frames are the last `context_frames` of the warm-up."""
    with Simulator(spec) as sim:
        frames = [preprocess(sim.reset(seed), spec)]
        if spec.warmup_steps:
            warmup = POLICIES["random"](spec, np.random.default_rng(seed))
            for _ in range(spec.warmup_steps):
                frames.append(preprocess(sim.step(warmup.act(None))[0], spec))
        start = frames[-context_frames:]

        def step(action):
            frame, reward, terminated = sim.step(action)
            return preprocess(frame, spec), reward, terminated

        length, total = _play(controller, frames[-1], step, max_steps)
    return length, total, start


def dream_episode(env: gym.Env, controller, seed: int, max_steps: int, start: list[np.ndarray] | None):
    """The controller in the dream -> (length, return): from the real reset frame of `seed`, or
    from `start` frames (after a warm-up)."""
    if start is None:
        frame, _ = env.reset(seed=seed)
    else:
        frame, _ = env.reset(seed=seed, options={"frames": start})

    def step(action):
        frame, reward, terminated, _, _ = env.step(action)
        return frame, reward, terminated

    return _play(controller, frame, step, max_steps)


def _correlation(a: list[float], b: list[float]) -> float | None:
    """Pearson correlation of per-seed values; None where it means nothing (fewer than 3 seeds,
    or one world gives every seed the same value)."""
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _world(lengths: list[int], returns: list[float], max_steps: int) -> dict:
    return {
        "mean_length": float(np.mean(lengths)),
        "median_length": float(np.median(lengths)),
        "mean_return": float(np.mean(returns)),
        "reached_max_steps": int(sum(n >= max_steps for n in lengths)),
        "lengths": [int(n) for n in lengths],
        "returns": [float(r) for r in returns],
    }


def agent_scores(
    model: WorldModel | str, episodes: int, max_steps: int, progress: bool = True
) -> dict | None:
    """The scripted controller of the model's environment in the real environment and in the
    dream, from held-out seeds EVAL_SEED_START.. (training never used them). None where the
    environment has no controller. What is measured is reported as it is: a model that predicts
    the episode's end too early, or never, shows it here."""
    if isinstance(model, str):
        from worldsim.models.registry import load

        model = load(model)
    spec = model.spec
    controller = controller_for(spec)
    if controller is None:
        return None
    env = gym.make("worldsim/Dream-v0", model=model, disable_env_checker=True)
    seeds = list(range(EVAL_SEED_START, EVAL_SEED_START + episodes))
    real_lengths, real_returns, dream_lengths, dream_returns = [], [], [], []
    try:
        for seed in tqdm(seeds, desc=f"agent {spec.name}", unit="ep", disable=not progress):
            length, total, start = real_episode(spec, controller, seed, max_steps, model.context_frames)
            real_lengths.append(length)
            real_returns.append(total)
            length, total = dream_episode(
                env, controller, seed, max_steps, start if spec.warmup_steps else None
            )
            dream_lengths.append(length)
            dream_returns.append(total)
    finally:
        env.close()
    result = {
        "env": spec.name,
        "controller": controller.description,
        "episodes": episodes,
        "max_steps": max_steps,
        "warmup_steps": spec.warmup_steps,
        "seeds": f"{EVAL_SEED_START}..{EVAL_SEED_START + episodes - 1} "
        f"(training seeds are below {EVAL_SEED_START})",
        "outcome_head": model.capabilities.outcome,
        "real": _world(real_lengths, real_returns, max_steps),
        "dream": _world(dream_lengths, dream_returns, max_steps),
        "length_correlation": _correlation(real_lengths, dream_lengths),
        "return_correlation": _correlation(real_returns, dream_returns),
    }
    result["summary"] = summary_sentence(result, spec)
    result["markdown"] = format_agent_table(result, spec)
    return result


def summary_sentence(result: dict, spec: EnvSpec) -> str:
    """One sentence for a stakeholder: how the controller scores in the dream against reality."""
    real, dream = result["real"], result["dream"]
    n, cap = result["episodes"], result["max_steps"]
    where = f"over {n} held-out seeds, episodes capped at {cap} steps"
    if result["warmup_steps"]:
        where += f" after {result['warmup_steps']} warm-up steps"
    if not result["outcome_head"]:
        return (
            f"The model predicts no reward or episode end, so in the dream {result['controller']} "
            f"never ends and scores 0, against a mean length of {real['mean_length']:.1f} and return "
            f"{real['mean_return']:.1f} in the real {spec.gym_id} ({where})."
        )
    controller = result["controller"]
    text = controller[0].upper() + controller[1:]
    if real["reached_max_steps"] == dream["reached_max_steps"] == n:
        text += f" plays every episode to the {cap}-step cap in both the real {spec.gym_id} and the dream"
    else:
        text += (
            f" lasts {real['mean_length']:.1f} steps on average in the real {spec.gym_id} and "
            f"{dream['mean_length']:.1f} in the dream"
        )
    text += f", with a mean return of {real['mean_return']:.1f} against {dream['mean_return']:.1f}"
    if real["mean_length"] > 0 and dream["mean_length"] < 0.9 * real["mean_length"]:
        text += "; the dream ends episodes earlier than reality"
    elif dream["mean_length"] > 1.1 * real["mean_length"]:
        text += "; the dream ends episodes later than reality"
    correlations = [
        f"{name} at r = {result[f'{key}_correlation']:.2f}"
        for name, key in (("lengths", "length"), ("returns", "return"))
        if result[f"{key}_correlation"] is not None
    ]
    if correlations:
        text += "; per seed, dream and reality correlate: " + ", ".join(correlations)
    return f"{text} ({where})."


def format_agent_table(result: dict, spec: EnvSpec) -> str:
    """Markdown: a caption, one row per world, and the summary sentence."""
    warmup = result["warmup_steps"]
    caption = (
        f"{spec.name}: {result['controller']}, the same code in the real environment and in the "
        f"dream (`worldsim/Dream-v0`), {result['episodes']} held-out seeds, at most "
        f"{result['max_steps']} steps"
        + (f" from the frame after {warmup} random warm-up steps" if warmup else "")
        + ". Length: steps until the episode ended (the dream's end and rewards come from the model's "
        "outcome head); return: the sum of rewards."
    )
    lines = [
        caption,
        "",
        "| world | mean length | median length | mean return |",
        "|---|---|---|---|",
    ]
    for label, key in ((f"real ({spec.gym_id})", "real"), ("dream (model)", "dream")):
        world = result[key]
        lines.append(
            f"| {label} | {world['mean_length']:.1f} | {world['median_length']:.1f} | "
            f"{world['mean_return']:.2f} |"
        )
    return "\n".join([*lines, "", result["summary"]])
