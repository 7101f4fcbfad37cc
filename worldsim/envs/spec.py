"""Environment specs: everything worldsim needs to know about a gymnasium environment.

One `EnvSpec` per model name. A spec says how to make the environment, what its actions are
called, how a rendered frame becomes the model's input (crop, then resize), and how fast the real
thing runs. Adding an environment means adding one entry to `ENV_SPECS`; nothing else branches on
the environment's name.

    >>> spec = get_spec("cartpole")
    >>> spec.action_names
    ('left', 'right')
    >>> preprocess(np.zeros((400, 600, 3), np.uint8), spec).shape
    (64, 160, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

ActionKind = Literal["discrete", "continuous"]


@dataclass(frozen=True)
class Crop:
    """A crop box as fractions of the rendered frame, so screenshots of any size map the same way."""

    top: float = 0.0
    bottom: float = 1.0
    left: float = 0.0
    right: float = 1.0

    def pixels(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) in pixels of a frame of this size."""
        return (
            round(self.top * height),
            round(self.bottom * height),
            round(self.left * width),
            round(self.right * width),
        )


@dataclass(frozen=True)
class EnvSpec:
    """How worldsim makes, drives and sees one gymnasium environment."""

    name: str  # short lower-case model name, e.g. "cartpole"
    gym_id: str  # gymnasium id, e.g. "CartPole-v1"
    action_kind: ActionKind
    fps: float  # real-time step rate of the environment: videos play at this speed
    height: int  # model resolution after crop + resize
    width: int
    crop: Crop = field(default_factory=Crop)  # region of the rendered frame the model sees
    make_kwargs: dict[str, Any] = field(default_factory=dict)
    render_size: tuple[int, int] = (400, 600)  # (H, W) gymnasium renders at; for documentation
    render_mode: str = "rgb_array"  # what env.render() returns: the frames worldsim records
    action_names: tuple[str, ...] = ()  # discrete: one name per action index
    action_low: tuple[float, ...] = ()  # continuous: per-dimension bounds
    action_high: tuple[float, ...] = ()
    action_labels: tuple[str, ...] = ()  # continuous: what each dimension means
    # Simulator state vector: `env.unwrapped.<state_attr>`, if the env has one. Recorded with the
    # frames so evaluation can compare objects, not only pixels.
    state_attr: str | None = None
    # What one frame shows of the state (positions, angles as sin/cos since a pole at theta and
    # theta + 2 pi look the same): (N, S) states -> (N, P). Training supervises the first P latent
    # dims with it; None means no such help.
    visible_pose: Callable[[np.ndarray], np.ndarray] | None = None
    # The full simulator state as smooth features (angles as sin/cos, velocities as they are):
    # (N, S) states -> (N, F). Models with state dynamics step these; None: the env has none.
    dynamics_state: Callable[[np.ndarray], np.ndarray] | None = None
    # Steps past `terminated` that collection keeps stepping, so models learn what follows
    # (CartPole: the pole falls over and the cart drives off), since users will ask for it.
    steps_after_termination: int = 0
    # Collection policies (names in data.POLICIES) and each one's share of the episodes.
    collect_policies: tuple[tuple[str, float], ...] = (("random", 1.0),)
    collect_episodes: int = 600  # episodes `collect` gathers by default: ~100k frames
    episode_steps: int = 0  # collection cuts episodes at this many steps; 0: the env's own limit
    # Steps played before a second kind of evaluation start, where the reset screen differs from
    # play (Pong's court appears at step 1, CarRacing zooms in); 0: reset frames only.
    warmup_steps: int = 0
    # TrainConfig fields this environment trains with by default (`train --env NAME` reproduces the
    # shipped checkpoint); sized so that training takes under an hour on 2 CPU cores.
    train_defaults: dict[str, Any] = field(default_factory=dict)
    example_actions: str = ""  # a sequence that shows the dynamics off, for docs and the app
    # Live play: which action each key stands for. Keys are the roles "left", "right", "up",
    # "down" (arrows or WASD) and "space"; values are action text, e.g. "fire" or "[0,1,0]".
    play_keys: dict[str, str] = field(default_factory=dict)

    @property
    def num_actions(self) -> int:
        """Discrete: number of actions. Continuous: action dimensions."""
        return len(self.action_names) if self.action_kind == "discrete" else len(self.action_low)

    @property
    def action_dim(self) -> int:
        """Width of one action as the model reads it (1 index, or N continuous values)."""
        return 1 if self.action_kind == "discrete" else len(self.action_low)

    def make(self, render: bool = True, **overrides: Any):
        """A gymnasium env rendering RGB arrays (`render_mode`; ale-py registers the ALE ids on import)."""
        import gymnasium as gym

        if self.gym_id.startswith("ALE/"):
            import ale_py

            gym.register_envs(ale_py)
        kwargs = {**self.make_kwargs, **overrides}
        return gym.make(self.gym_id, render_mode=self.render_mode if render else None, **kwargs)


# Training for envs whose rollouts start from a reset frame, as evaluation and most uploads do: one
# frame cannot show velocity, and dynamics trained on single frames from anywhere in an episode
# learn the velocity seen there on average (mid-episode, a leaning pole is usually falling).
# Single-frame windows start at episode starts instead, where the velocity is a reset's (at rest
# for CartPole, Acrobot and MountainCar, uniform in +-1 rad/s for Pendulum); and every horizon
# counts alike. This alone cut CartPole's pole angle error at h=10 by 37-47%.
FROM_RESET = {"single_frame_at_reset": True, "log_step_loss": True}


def _angles(*columns: int) -> Callable[[np.ndarray], np.ndarray]:
    """Pose = sin and cos of the given state columns (angles)."""

    def pose(states: np.ndarray) -> np.ndarray:
        angles = states[..., list(columns)]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)

    return pose


def _cartpole_pose(states: np.ndarray) -> np.ndarray:
    """Cart position, and the pole angle as sin/cos."""
    theta = states[..., 2:3]
    return np.concatenate([states[..., 0:1], np.sin(theta), np.cos(theta)], axis=-1)


def _mountaincar_pose(states: np.ndarray) -> np.ndarray:
    return states[..., 0:1]


def _with_angles(*angle_columns: int) -> Callable[[np.ndarray], np.ndarray]:
    """State features: each angle column becomes its sin and cos (no jump where it wraps, and
    no drift when a pole spins round), the other columns stay as they are."""

    def features(states: np.ndarray) -> np.ndarray:
        parts = []
        for column in range(states.shape[-1]):
            value = states[..., column : column + 1]
            parts += [np.sin(value), np.cos(value)] if column in angle_columns else [value]
        return np.concatenate(parts, axis=-1)

    return features


ENV_SPECS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in [
        EnvSpec(
            name="cartpole",
            gym_id="CartPole-v1",
            action_kind="discrete",
            action_names=("left", "right"),
            fps=50,  # tau = 0.02 s per step
            # Rows 160..400 of the 400x600 render hold the cart, the upright pole (top at row 172)
            # and a pole fallen below the track; full width is the whole track. 240x600 -> 64x160
            # keeps the aspect ratio: 1 track unit = 33 px, so a moving cart shifts visibly.
            crop=Crop(top=0.4, bottom=1.0),
            height=64,
            width=160,
            state_attr="state",
            visible_pose=_cartpole_pose,
            dynamics_state=_with_angles(2),  # x, x velocity, pole angle, angular velocity
            steps_after_termination=40,
            collect_policies=(("random", 0.35), ("sticky", 0.15), ("balance", 0.5)),
            # More windows from resets: h=5 +1.6 dB balancing, +5.1 random (0.5 gave +0.9, +3.4).
            # The pixels stage then took balancing h=5 from +1.6 to +3.4 dB. Decoding steps from the
            # first 10 only gave +3.9 there, but 2 dB less at h=60 (the decoder forgot far frames).
            train_defaults={
                **FROM_RESET,
                "single_frame_share": 0.8,
                "pixel_steps": 1500,
                "pixel_horizon": 40,
            },
            example_actions="right*10 left*10 right*10",
            play_keys={"left": "left", "right": "right"},
        ),
        EnvSpec(
            name="acrobot",
            gym_id="Acrobot-v1",
            action_kind="discrete",
            action_names=("left", "none", "right"),  # torque -1, 0, +1 on the joint
            fps=15,
            render_size=(500, 500),
            height=64,
            width=64,
            state_attr="state",
            visible_pose=_angles(0, 1),
            dynamics_state=_with_angles(0, 1),  # two joint angles and their velocities
            collect_episodes=200,  # most run the full 500 steps
            collect_policies=(("random", 0.5), ("sticky", 0.5)),
            train_defaults=FROM_RESET,
            example_actions="left*10 right*10 left*10",
            play_keys={"left": "left", "right": "right", "space": "none"},
        ),
        EnvSpec(
            name="pendulum",
            gym_id="Pendulum-v1",
            action_kind="continuous",
            action_low=(-2.0,),
            action_high=(2.0,),
            action_labels=("torque",),
            fps=20,
            render_size=(500, 500),
            crop=Crop(top=0.2, bottom=0.8, left=0.2, right=0.8),  # the rod (113 px) and its pivot
            height=64,
            width=64,
            state_attr="state",
            visible_pose=_angles(0),
            dynamics_state=_with_angles(0),  # angle and angular velocity
            collect_policies=(("random", 0.5), ("sticky", 0.5)),
            # From one frame the velocity is unknown: a GRU averaged the futures into a blur, while state
            # dynamics keep a sharp rod and sample the velocity (docs/eval_pendulum.md).
            train_defaults={
                "autoencoder_steps": 3000,
                "dynamics_steps": 4000,
                "dynamics": "state",
                **FROM_RESET,
            },
            example_actions="2*10 -2*10 0*10",
            play_keys={"left": "2", "right": "-2", "space": "0"},  # +torque turns anticlockwise
        ),
        EnvSpec(
            name="mountaincar",
            gym_id="MountainCar-v0",
            action_kind="discrete",
            action_names=("left", "none", "right"),
            fps=30,
            height=64,
            width=96,
            state_attr="state",
            visible_pose=_mountaincar_pose,
            dynamics_state=_with_angles(),  # position and velocity, as they are
            collect_policies=(("random", 0.3), ("sticky", 0.7)),  # held pushes climb the hills
            # The pixels stage: h=5 +5.7 -> +10.0 dB over copy, h=10 +13.8 -> +19.7.
            train_defaults={**FROM_RESET, "pixel_steps": 1500},
            example_actions="left*20 right*40",
            play_keys={"left": "left", "right": "right", "space": "none"},
        ),
        EnvSpec(
            name="breakout",
            gym_id="ALE/Breakout-v5",
            action_kind="discrete",
            action_names=("noop", "fire", "right", "left"),
            make_kwargs={"repeat_action_probability": 0.0, "frameskip": 4},
            fps=15,
            render_size=(210, 160),
            # The playfield: top wall to below the paddle, side walls trimmed (the score is left
            # out). 163x144 -> 96x80 keeps the 2x4 px ball at about 1x2 px.
            crop=Crop(top=0.15, bottom=0.93, left=0.05, right=0.95),
            height=96,
            width=80,
            collect_episodes=500,  # random play loses its 5 lives in ~180 steps
            train_defaults={
                "autoencoder_steps": 3000,
                "dynamics_steps": 4000,
                "colour_weight": 0.2,
                "frame_poses": True,
                # h=10 41.2 -> 49.3 dB; the ball found at h=10 in 89% of frames, was 39%.
                "pixel_steps": 1500,
                "pixel_horizon": 40,
            },
            example_actions="fire right*10 left*10",
            play_keys={"left": "left", "right": "right", "space": "fire", "down": "noop"},
        ),
        EnvSpec(
            name="pong",
            gym_id="ALE/Pong-v5",
            action_kind="discrete",
            action_names=("noop", "fire", "right", "left", "rightfire", "leftfire"),
            make_kwargs={"repeat_action_probability": 0.0, "frameskip": 4},
            fps=15,
            render_size=(210, 160),
            # Between the white bars above and below the court, rows 34-193 (the score is left
            # out): 160x160 -> 80x80 keeps the 2x4 px ball at 1x2 px.
            crop=Crop(top=0.162, bottom=0.922),
            height=80,
            width=80,
            warmup_steps=50,  # the reset screen has no court yet: also start from a frame in play
            collect_episodes=100,  # random play loses 21-0 in ~850 steps
            train_defaults={
                "autoencoder_steps": 3000,
                "dynamics_steps": 4000,
                "colour_weight": 0.2,
                "frame_poses": True,
            },
            example_actions="noop*10 right*10 left*10",
            # Pong's "right" moves the paddle up the screen, "left" down.
            play_keys={"up": "right", "down": "left", "space": "noop"},
        ),
        EnvSpec(
            name="carracing",
            gym_id="CarRacing-v3",
            action_kind="continuous",
            action_low=(-1.0, 0.0, 0.0),
            action_high=(1.0, 1.0, 1.0),
            action_labels=("steer", "gas", "brake"),
            fps=50,
            # The 96x96 top-down view the agent sees (World Models' input). It is the same picture
            # as the 600x400 window, scaled from one 1000x800 canvas, so either screenshot works;
            # rendering it is 2x cheaper than the window.
            render_mode="state_pixels",
            render_size=(96, 96),
            height=64,
            width=64,
            warmup_steps=50,  # the reset view zooms in from the whole track for ~50 steps
            collect_policies=(("drive", 0.8), ("sticky", 0.2)),
            collect_episodes=200,
            episode_steps=300,  # shorter episodes, more tracks: 200 tracks in 60k frames
            train_defaults={
                "autoencoder_steps": 3000,
                "dynamics_steps": 4000,
                "colour_weight": 0.2,
                # After 50 steps: h=5 +0.2 -> +2.1 dB, h=10 +2.2 -> +3.7; from the reset zoom h=60
                # -2.8 dB. Decoding only the first 10 steps lost the road at h=60 from the reset.
                "pixel_steps": 1500,
                "pixel_horizon": 40,
            },
            example_actions="[0,1,0]*20 [-1,0.5,0]*10",
            play_keys={
                "left": "[-1,0.3,0]",
                "right": "[1,0.3,0]",
                "up": "[0,1,0]",
                "down": "[0,0,0.8]",
                "space": "[0,0,0]",
            },
        ),
    ]
}


def get_spec(name: str) -> EnvSpec:
    """The spec registered under `name` (case-insensitive); a clear error listing the names otherwise."""
    key = name.strip().lower()
    if key not in ENV_SPECS:
        raise KeyError(f"Unknown environment {name!r}. Known: {', '.join(sorted(ENV_SPECS))}.")
    return ENV_SPECS[key]


def preprocess(frame: np.ndarray, spec: EnvSpec) -> np.ndarray:
    """Rendered RGB frame of any size (H0, W0, 3) uint8 -> model input (h, w, 3) uint8.

    Crops the spec's region (fractions of the frame, so a 300x200 screenshot crops like the 600x400
    render), then resizes with PIL's antialiased bilinear filter. A frame already at the model's
    resolution is taken as it is.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"Expected an RGB uint8 frame (H, W, 3); got {frame.dtype} {frame.shape}.")
    if frame.shape[:2] == (spec.height, spec.width):
        return np.ascontiguousarray(frame)  # already what the model sees, e.g. an exported frame
    top, bottom, left, right = spec.crop.pixels(*frame.shape[:2])
    cropped = frame[top:bottom, left:right]
    image = Image.fromarray(cropped).resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    return np.asarray(image)


def simulator_state(env, spec: EnvSpec) -> np.ndarray | None:
    """The simulator's state vector (float32), or None for envs without one."""
    if spec.state_attr is None:
        return None
    return np.asarray(getattr(env.unwrapped, spec.state_attr), dtype=np.float32)
