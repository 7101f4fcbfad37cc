"""Environment specs: everything worldsim needs to know about a gymnasium environment, as data.

A spec says how to make the environment, what its actions are called and which keys play them,
how a rendered frame becomes the model's input (crop, then resize), and how fast the real thing
runs. It is plain data: `to_dict()` is stored in every checkpoint's config.json, so a model of any
gymnasium environment carries its own description and loads without code that names it.

    >>> spec = get_spec("cartpole")          # a built-in spec (worldsim/envs/builtin.py)
    >>> spec = derive_spec("Acrobot-v1")      # or one read off any gymnasium env that renders
    >>> EnvSpec.from_dict(spec.to_dict()) == spec
    True
    >>> preprocess(np.zeros((400, 600, 3), np.uint8), get_spec("cartpole")).shape
    (64, 160, 3)
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

ActionKind = Literal["discrete", "continuous"]
STATE_TERM = re.compile(r"(s|sin|cos)(\d+)")


@dataclass(frozen=True)
class StateFeatures:
    """Features of a simulator state vector, as data: each term is `s<i>` (column i as it is),
    `sin<i>` or `cos<i>` (column i is an angle: no jump where it wraps). CartPole's visible pose
    is ("s0", "sin2", "cos2"): the cart position and the pole angle."""

    terms: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "terms", tuple(self.terms))
        bad = [term for term in self.terms if not STATE_TERM.fullmatch(term)]
        if bad or not self.terms:
            raise ValueError(f"state feature terms must be s<i>, sin<i> or cos<i>, got {list(self.terms)}")

    def __call__(self, states: np.ndarray) -> np.ndarray:
        """(N, S) states -> (N, len(terms))."""
        parts = []
        for term in self.terms:
            op, column = STATE_TERM.fullmatch(term).groups()
            value = states[..., int(column) : int(column) + 1]
            parts.append(value if op == "s" else np.sin(value) if op == "sin" else np.cos(value))
        return np.concatenate(parts, axis=-1)

    @classmethod
    def all_columns(cls, size: int) -> StateFeatures:
        return cls(tuple(f"s{i}" for i in range(size)))


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
    modules: tuple[str, ...] = ()  # imported before gymnasium.make: they register the id (ale_py)
    action_names: tuple[str, ...] = ()  # discrete: one name per action index
    action_low: tuple[float, ...] = ()  # continuous: per-dimension bounds
    action_high: tuple[float, ...] = ()
    action_labels: tuple[str, ...] = ()  # continuous: what each dimension means
    # Simulator state vector, recorded with the frames so evaluation can compare objects, not only
    # pixels: "attr:<name>" reads `env.unwrapped.<name>`, "observation" takes the observation
    # itself (a flat Box of numbers, as Box2D envs give), None: the env has none.
    state_source: str | None = None
    # What one frame shows of the state (positions; angles as sin/cos, since a pole at theta and
    # theta + 2 pi look the same). Training supervises the first latent dims with it; None: no help.
    visible_pose: StateFeatures | None = None
    # The full simulator state as smooth features (angles as sin/cos, velocities as they are).
    # Models with state dynamics step these; None: the env has none.
    dynamics_state: StateFeatures | None = None
    # Reads objects back from frames for evaluation (a key of worldsim.envs.objects.OBJECT_READERS).
    object_reader: str | None = None
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

    def view_in_render(
        self, height: int | None = None, width: int | None = None
    ) -> tuple[float, float, float, float]:
        """(top, left, row_step, col_step): where the model's view (height x width, by default the
        spec's) lies in the rendered frame: the crop's top-left corner in render pixels, and the
        render pixels one view pixel spans. Object readers speak render pixels (Atari screen
        pixels); the model and the bars on it speak view pixels."""
        render_h, render_w = self.render_size
        return (
            self.crop.top * render_h,
            self.crop.left * render_w,
            (self.crop.bottom - self.crop.top) * render_h / (height or self.height),
            (self.crop.right - self.crop.left) * render_w / (width or self.width),
        )

    @property
    def num_actions(self) -> int:
        """Discrete: number of actions. Continuous: action dimensions."""
        return len(self.action_names) if self.action_kind == "discrete" else len(self.action_low)

    @property
    def action_dim(self) -> int:
        """Width of one action as the model reads it (1 index, or N continuous values)."""
        return 1 if self.action_kind == "discrete" else len(self.action_low)

    def make(self, render: bool = True, **overrides: Any):
        """A gymnasium env rendering RGB arrays (`render_mode`)."""
        import importlib

        import gymnasium as gym

        for module in self.modules:  # e.g. ale_py registers the ALE/ ids on import
            importlib.import_module(module)
        kwargs = {**self.make_kwargs, **overrides}
        if render and self.render_mode == "rgb_array":
            render_headless()
        return gym.make(self.gym_id, render_mode=self.render_mode if render else None, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: what config.json stores."""
        data = dataclasses.asdict(self)
        for name in ("visible_pose", "dynamics_state"):
            data[name] = None if data[name] is None else list(data[name]["terms"])
        return _lists(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvSpec:
        """Validates names and types before anything is built; errors name the field."""
        if not isinstance(data, dict):
            raise ValueError(f"an environment description must be a JSON object, got {data!r:.60}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"environment description has unknown field(s) {unknown}; known: {sorted(known)}"
            )
        values = dict(data)
        try:
            if "crop" in values:
                values["crop"] = Crop(**values["crop"])
            for name in ("visible_pose", "dynamics_state"):
                if values.get(name) is not None:
                    values[name] = StateFeatures(tuple(values[name]))
            for name in (
                "render_size",
                "action_names",
                "action_low",
                "action_high",
                "action_labels",
                "modules",
            ):
                if name in values:
                    values[name] = tuple(values[name])
            if "collect_policies" in values:
                values["collect_policies"] = tuple((str(p), float(w)) for p, w in values["collect_policies"])
            return cls(**values)
        except TypeError as error:
            raise ValueError(f"environment description: {error}") from None

    def __post_init__(self):
        if self.action_kind not in ("discrete", "continuous"):
            raise ValueError(f"action_kind must be 'discrete' or 'continuous', got {self.action_kind!r}")
        if not (isinstance(self.height, int) and isinstance(self.width, int)) or not (
            16 <= self.height <= 512 and 16 <= self.width <= 512
        ):
            raise ValueError(
                f"height and width must be whole numbers in 16..512, got {self.height}x{self.width}"
            )
        if not 0 < float(self.fps) <= 1000:
            raise ValueError(f"fps must be in (0, 1000], got {self.fps!r}")
        if self.num_actions < 1:
            raise ValueError("an environment needs at least one action (names, or low/high bounds)")


def _lists(value):
    """Tuples -> lists, recursively, so that a dict round-trips through JSON unchanged."""
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(item) for item in value]
    return value


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


def simulator_state(env, spec: EnvSpec, observation=None) -> np.ndarray | None:
    """The simulator's state vector (float32), or None for envs without one."""
    if spec.state_source is None:
        return None
    if spec.state_source == "observation":
        return np.asarray(observation, dtype=np.float32).reshape(-1)
    return np.asarray(getattr(env.unwrapped, spec.state_source.removeprefix("attr:")), dtype=np.float32)


# Frames whose pixels change by more than this (of 255) count as moving, when a view is derived.
MOVING_PIXEL = 8
VIEW_PIXELS = 10_000  # a derived view's size: CartPole's 160x64 trains in minutes on 2 cores


def spec_name(gym_id: str) -> str:
    """A model name for a gymnasium id: "MountainCarContinuous-v0" -> "mountaincarcontinuous"."""
    return re.sub(r"[^a-z0-9]+", "", gym_id.split("/")[-1].rsplit("-v", 1)[0].lower())


def render_headless() -> None:
    """Frames rendered to arrays need no display: SDL (pygame, which draws the classic-control
    and Box2D envs) gets its dummy video driver unless the user chose one. Looking for a display
    on a server or a Space, it printed "XDG_RUNTIME_DIR is invalid" at every env's close; the
    frames are the same either way."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def derive_spec(gym_id: str, name: str | None = None, seed: int = 0, **overrides: Any) -> EnvSpec:
    """A spec for any gymnasium environment that renders `rgb_array`, read off the environment:

    - fps from `metadata["render_fps"]` (the speed its own viewer plays at);
    - actions from the action space: Discrete names from `get_action_meanings()` where the env
      has it (Atari), else the indices "0".."n-1"; Box bounds per dimension;
    - play keys in the conventional order (two actions: left, right; three: left, space, right;
      more: space, left, up, right, down for actions 0..4, the order Box2D landers number them);
    - a view that keeps the moving parts: the box around every pixel that changes under random
      actions in six episodes, plus a margin, resized to about VIEW_PIXELS pixels in the crop's
      aspect ratio (sides multiples of 16);
    - a state vector where the observation is a flat Box of numbers (recorded for evaluation and
      used as the latent's pose supervision).
    `overrides` replace any derived field, e.g. action_names=("noop", "left", "main", "right").
    """
    import gymnasium as gym

    render_headless()
    env = gym.make(gym_id, render_mode="rgb_array", **overrides.get("make_kwargs", {}))
    try:
        space = env.action_space
        fields: dict[str, Any] = {
            "name": name or spec_name(gym_id),
            "gym_id": gym_id,
            "fps": float(env.metadata.get("render_fps") or 30),
        }
        if isinstance(space, gym.spaces.Discrete):
            meanings = getattr(env.unwrapped, "get_action_meanings", None)
            names = [m.lower() for m in meanings()] if meanings else [str(i) for i in range(int(space.n))]
            fields |= {
                "action_kind": "discrete",
                "action_names": tuple(names),
                "play_keys": _discrete_keys(names),
            }
            fields["example_actions"] = " ".join(f"{n}*10" for n in (names[1:4] if len(names) > 3 else names))
        elif isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            low, high = np.asarray(space.low, float), np.asarray(space.high, float)
            fields |= {
                "action_kind": "continuous",
                "action_low": tuple(low.tolist()),
                "action_high": tuple(high.tolist()),
                "action_labels": tuple(f"a{i}" for i in range(len(low))),
                "play_keys": _continuous_keys(low, high),
            }
            fields["example_actions"] = " ".join(f"{fields['play_keys'][k]}*10" for k in ("left", "right"))
        else:
            raise ValueError(
                f"{gym_id} has a {type(space).__name__} action space; worldsim models Discrete "
                "actions and flat Box actions."
            )
        observation = env.observation_space
        if (
            isinstance(observation, gym.spaces.Box)
            and len(observation.shape) == 1
            and observation.shape[0] <= 64
        ):
            features = StateFeatures.all_columns(observation.shape[0])
            fields |= {"state_source": "observation", "visible_pose": features, "dynamics_state": features}
        frames = _random_frames(env, space, seed)
    finally:
        env.close()
    crop, (height, width) = _moving_view(frames)
    fields |= {"crop": crop, "height": height, "width": width, "render_size": frames[0][0].shape[:2]}
    fields |= {"collect_policies": (("random", 0.5), ("sticky", 0.5))}
    return EnvSpec(**{**fields, **overrides})


def _discrete_keys(names: list[str]) -> dict[str, str]:
    roles = {2: ("left", "right"), 3: ("left", "space", "right")}.get(
        len(names), ("space", "left", "up", "right", "down")
    )
    return {role: name for role, name in zip(roles, names, strict=False)}


def _continuous_keys(low: np.ndarray, high: np.ndarray) -> dict[str, str]:
    def vector(values: np.ndarray) -> str:
        return "[" + ",".join(f"{v:g}" for v in values) + "]"

    rest = np.clip(np.zeros_like(low), low, high)  # zero where allowed: no push
    keys = {"space": vector(rest)}
    for role, dim, bound in (("left", 0, low), ("right", 0, high), ("down", 1, low), ("up", 1, high)):
        if dim < len(low):
            pushed = rest.copy()
            pushed[dim] = bound[dim]
            keys[role] = vector(pushed)
    return keys


def _random_frames(env, space, seed: int, episodes: int = 6, steps: int = 150) -> list[list[np.ndarray]]:
    """Rendered frames of a few episodes under random actions, one list per episode."""
    space.seed(seed)
    out = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        frames = [env.render()]
        for _ in range(steps):
            *_, terminated, truncated, _ = env.step(space.sample())
            frames.append(env.render())
            if terminated or truncated:
                break
        out.append(frames)
    return out


def _moving_view(episodes: list[list[np.ndarray]]) -> tuple[Crop, tuple[int, int]]:
    """The crop around every pixel that moves within an episode (the static scenery of each
    episode, e.g. a terrain drawn anew per seed, does not count), and a model size for it."""
    height, width = episodes[0][0].shape[:2]
    moving = np.zeros((height, width), bool)
    for frames in episodes:
        stack = np.stack(frames).astype(np.int16)
        moving |= (np.abs(stack - stack[:1]).max(axis=-1) > MOVING_PIXEL).any(axis=0)
    if not moving.any():
        crop = Crop()
    else:
        rows, cols = np.flatnonzero(moving.any(axis=1)), np.flatnonzero(moving.any(axis=0))
        margin = 0.05
        crop = Crop(
            top=float(max(0.0, round(rows[0] / height - margin, 2))),
            bottom=float(min(1.0, round((rows[-1] + 1) / height + margin, 2))),
            left=float(max(0.0, round(cols[0] / width - margin, 2))),
            right=float(min(1.0, round((cols[-1] + 1) / width + margin, 2))),
        )
    top, bottom, left, right = crop.pixels(height, width)
    aspect = (right - left) / max(bottom - top, 1)
    size_h = max(16 * round(np.sqrt(VIEW_PIXELS / aspect) / 16), 32)
    size_w = max(16 * round(np.sqrt(VIEW_PIXELS * aspect) / 16), 32)
    return crop, (int(size_h), int(size_w))
