"""The world model: a frame autoencoder with recurrent dynamics in its latent space.

Design (World Models / Dreamer, small enough for 2 CPU cores):

    frame --encoder--> z  (latent_dim; the first pose_dims of z are trained to be the simulator's
                           visible state, e.g. cart position and pole angle, normalised)
    K context latents --init--> h           (GRU state: what one frame cannot show, e.g. velocity)
    (z_t, a_t, h_t) --GRUCell--> h_{t+1};  z_{t+1} = z_t + delta(h_{t+1})
    (z, z_ref) --decoder--> colours + mask;  frame = mask * colours + (1 - mask) * reference frame
                            (optionally the reference moved by a smooth flow the decoder draws)

The decoder sees the latent of the frame to draw and of the reference (the last start frame), so
it knows where objects are and where they were: it paints those places and copies every other
pixel of the reference exactly. A static background is therefore perfect, and all capacity goes
to the moving objects: on CartPole the copy-the-start-frame baseline scores 40-50 dB at short
horizons, which no decoder that redraws the whole frame reaches.

Why not a next-frame pixel predictor: on CartPole a pixel model sees sub-pixel motion per step
and learns to copy its input (see shared/WORLD-MODELS.md). Here the objects can only move by the
dynamics moving the latent. Rolling out costs one small decoder pass per frame, so it runs many
times faster than real time on a CPU.

Tensors inside are float (B, C, H, W) in [0, 1]; uint8 (B, H, W, 3) frames only at the edges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldsim.envs.spec import EnvSpec
from worldsim.models.base import (
    Capabilities,
    Outcome,
    PretrainedWorldModel,
    config_from_fields,
    to_float,
    to_uint8,
)

CONFIG_FORMAT_VERSION = 16
OUTCOME_INPUTS = ("latents", "frame")


@dataclass
class LatentConfig:
    """Everything needed to rebuild a model; saved as config.json beside the weights, after the
    `kind` ("latent") and `format_version` that every worldsim config starts with."""

    env: EnvSpec  # the environment: its actions, fps and the view (crop, height x width)
    latent_dim: int = 32  # size of z: small, since the dynamics must carry it for 60+ steps
    hidden_dim: int = 256  # GRU state: velocities and whatever one frame does not show
    context_frames: int = 2  # K: start frames the model can take (fewer are padded by repeating)
    channels: tuple[int, int, int] = (64, 128, 128)  # conv widths at 1/4, 1/8, 1/16 resolution
    action_embed_dim: int = 32
    pose_dims: int = 0  # leading latent dims supervised by the simulator's visible state
    pose_mean: list[float] = field(default_factory=list)  # normalisation of those state dims
    pose_std: list[float] = field(default_factory=list)
    # "gru": a GRU steps the latent (any env). "state": an MLP steps the simulator's state,
    # estimated from the start frames, and the latent is read out from it (envs with a state).
    dynamics: str = "gru"
    state_dims: int = 0  # size of the spec's dynamics_state features
    state_mean: list[float] = field(default_factory=list)  # their normalisation
    state_std: list[float] = field(default_factory=list)
    # A head that predicts each step's reward and whether the episode has ended (Dream-v0's
    # reward and terminated), from what `outcome_input` names.
    outcome: bool = False
    # "latents": the dynamics' latents before and after the step. "frame": the frame after the
    # step as the decoder draws it, encoded again. A head on the dream's latents ended CartPole's
    # balanced dreams after 100-200 steps with the pole upright in every frame: the latent dims
    # it read drift with a dream's length while the picture holds. The encoder only ever saw
    # frames, so what it reads from a drawn one is what the frame shows, for as long as the dream
    # runs. It suits ends and rewards one frame shows (a pole past 12 degrees), not those a
    # transition makes (a point scored as the ball leaves the court).
    outcome_input: str = "latents"
    # The rewards the outcome head's training data held, ascending, where they were few (a game
    # that scores in points: Pong's -1, 0, 1); the head's regressed reward is snapped to the
    # nearest of them. Empty: the regressed reward as it is (rewards of a continuous measure,
    # Pendulum's). Pong's head said -0.004 to -0.01 at steps where no point fell: summed over a
    # 300-step dream, a score of -4.3 where points are whole.
    reward_values: list[float] = field(default_factory=list)
    # The decoder also sees the action that led to the frame: some screens draw it (Pendulum's
    # torque arrow, CarRacing's steering and gas bars), and a latent stepped by physics alone
    # (state dynamics) cannot know it.
    decoder_action: bool = False
    # Objects the decoder paints where the latent says they are: each [x_dim, y_dim, seen_dim] of
    # pose dims holding a screen position (the object readers' render pixels) and a 0/1 "in
    # view". A 1x2-pixel ball is too small for a decoder drawing from a 5x5 grid of features
    # to place (Pong's ball was drawn in 3% of the frames from its true latents); a map that
    # peaks at the ball's position, one per point, lets the last convolutions draw it there.
    points: list[list[int]] = field(default_factory=list)
    # Readings the decoder paints where the latent says, as bands: each [dim, seen_dim, col_low,
    # col_high, half_height] (render pixels), a row reading (Pong's paddle) drawn between the
    # columns at its row. Without one the decoder drew Pong's paddle from the latent's other dims:
    # a row moved 20 px moved the drawn paddle 0.5-1.1 px, and the dream's paddle lagged its row.
    drawn_rows: list[list[float]] = field(default_factory=list)
    # Rods the decoder paints where the pose says, as soft lines: each [x_dim, sin_dim, cos_dim,
    # x_scale, x_offset, pivot_row, length, half_width] (`object_segments`; render pixels).
    # CartPole's decoder drew a pole past 20 degrees as a feathered smear even from its true
    # latent (a thin line at any angle, from a grid of features); with the line's map it drew the
    # fallen pole sharper (docs/experiments.md, session 23; not in the shipped model).
    drawn_segments: list[list[float]] = field(default_factory=list)
    # GRU dynamics only: each point's x and y move on by their last step's motion, and the GRU
    # predicts changes of that motion (a ball's bounces) rather than the motion itself. A GRU
    # asked for positions carried a ball's speed poorly: it fell back on the common speed.
    point_momentum: bool = False
    # With point momentum: the GRU also says, per point, whether its motion changes at this step
    # (a bounce, a serve), and only then is its change of motion applied. Trained with the true
    # changes, it keeps the change it learns for bounces off the steps in flight, where an
    # ungated change, hedged between "bounce" and "not yet", was a bias that sped balls up.
    contact_gate: bool = False
    # With point momentum: per point, the speeds its x and y keep in flight (render pixels per
    # step, read from the training data: Pong's ball moves 4 across and 4 or 8 up or down). At
    # inference a point's motion within SPEED_SNAP_TOLERANCE view pixels of one of them takes it
    # exactly, so a ball keeps the game's speed instead of the GRU's estimate of it, which was
    # off by a fraction of a pixel per step and a few pixels after ten. Larger motions (a ball
    # leaving the court or served) pass as they are.
    point_speeds: list[list[list[float]]] = field(default_factory=list)
    # With point speeds: the GRU also picks each point's next speed in x and in y as a class (one
    # of its steady speeds, or "other": its own motion, for a ball leaving or served), trained with
    # cross-entropy on the readers' motions. Where a bounce may or may not come, a class is one
    # future or the other; a regressed change of motion was their average, a slowed, turned ball.
    speed_classes: bool = False
    # With speed classes: the head reads the latent and the points' motion besides the GRU state,
    # through a hidden layer. A linear head on the GRU state never learned when Pong's paddle
    # returns the ball (a ball at the paddle's column, within its half-height of its centre):
    # even on training returns it gave a return 12%.
    speed_mlp: bool = False
    # Per pose dim, [low, high]: the range its values take in the training data (the object
    # readers' render pixels, the simulator's units; 0.1% of frames lie beyond each bound). At
    # inference the decoder draws the pose clamped into it, and each point wholly in view or not
    # at all (its seen dim snapped to 0 or 1): the dynamics carry a ball a pixel or two past the
    # last place a ball is ever seen (Pong's right edge, the bottom wall) or half out of view, a
    # paddle into a wall, and there the decoder, which never saw such a latent, drew a faint ball
    # or no paddle.
    pose_bounds: list[list[float]] = field(default_factory=list)
    # The decoder also moves the reference frame before painting over it, by a smooth flow field
    # (a coarse grid of shifts, bilinearly upsampled). Where the whole view moves (CarRacing's
    # road and grass turn and scroll under the car), the reference's texture, which a 32-d latent
    # cannot hold, is shifted into place rather than redrawn blurred.
    warp_reference: bool = False
    # With warp_reference: the reference moves by the flow drawn for the target latent minus the
    # flow drawn for the reference's own latent, so a latent that has not moved leaves the
    # reference exactly in place. CarRacing's decoder, asked to draw the start frame itself, shifted
    # it by a fraction of a pixel (39 dB where copying the frame of a stopped car scores 47-59).
    relative_flow: bool = False
    # The dynamics also start from the last N actions played into the start frame, where the start
    # knows them (a simulator's start does, an uploaded frame does not: unknown ones are masked).
    # Frames do not show what a key pressed just before them set moving: Pong's paddle moves as a
    # filter of the last few keys.
    past_actions: int = 0
    # Every N steps of a dream its latent is replaced by the encoding of the frame it draws (in
    # 8-bit colour); 0: never. The dynamics learn windows of `unroll` steps, and past them
    # CartPole's latent drifted from what the encoder gives any frame: the pole faded to a ghost
    # after 100-200 steps (objects found at h=60: 68% under random keys, 33% under scripts). A
    # drawn frame's encoding is what the frame shows, so the dream goes on from what it shows.
    # Not for every model: Pong's ball motion, carried beside the latent, no longer matched its
    # re-encoded place (ball recall 0.70 -> 0.49 with N = 40).
    reencode_every: int = 0
    # GRU with point momentum: where the (first) point is at or past a zone's edge (Pong's ball
    # at the player's paddle), its next motion is the one the nearest such moment of the training
    # data made, looked up at inference in a memory of the object readers' positions (ball place
    # and motion, its offset from the paddle's row after the step, the row's move). Empty: off;
    # else "x_low" (render px), "row_dim" (pose dim of the row reading), "max_distance" (px,
    # summed over the key; farther, the GRU's own motion stands) and "entries" (the memory's size).
    # A GRU whose speed head never learnt a return left the ball running through the paddle.
    # Optional: "key_actions", actions whose press is a key column too (Pong's fire: frames do
    # not show it, and it decides a return's speed where they leave it open), and "path_steps"
    # with "paths": where the looked-up step turned the ball back (a return), the ball's next
    # moves after it, up to path_steps, replayed as remembered (a returned ball's first steps
    # away from the paddle had no remembered neighbour, and the GRU lost it there).
    point_memory: dict = field(default_factory=dict)
    # GRU: a row reading (Pong's paddle) stepped at inference by a table of the training data:
    # from its last move, its place and the last N actions (in groups that move it alike), the
    # next move the row made most often there. The paddle moves as a filter of the keys which the
    # GRU only approximates: under random keys its row drifted 5-17 px in 60 steps (the ball then
    # met another paddle), the table's 2-4. Empty: off; else "row_dim", "actions" (N), "groups"
    # (one group number per action) and "entries" (the table's size). The state h carries the
    # row before the step and the last N action groups (-1: unknown; the table waits for N).
    row_memory: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return self.env.height

    @property
    def width(self) -> int:
        return self.env.width

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    @property
    def action_kind(self) -> str:
        return self.env.action_kind

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if not isinstance(self.env, EnvSpec):
            raise ValueError(f"env must be an environment description, got {type(self.env).__name__}")
        sizes = {
            "latent_dim": self.latent_dim,
            "hidden_dim": self.hidden_dim,
            "context_frames": self.context_frames,
            "action_embed_dim": self.action_embed_dim,
        }
        for name, value in sizes.items():
            if not isinstance(value, int) or not 0 < value <= 4096:
                raise ValueError(f"{name} must be an integer in 1..4096, got {value!r}")
        if self.height % 16 or self.width % 16:
            raise ValueError(f"height and width must be multiples of 16, got {self.height}x{self.width}")
        if self.dynamics not in DYNAMICS_KINDS:
            raise ValueError(f"dynamics must be one of {sorted(DYNAMICS_KINDS)}, got {self.dynamics!r}")
        for point in self.points:
            if len(point) != 3 or not all(isinstance(d, int) and 0 <= d < self.pose_dims for d in point):
                raise ValueError(f"each of points must be 3 pose dims (x, y, seen) below {self.pose_dims}")
        for band in self.drawn_rows:
            if not (
                len(band) == 5
                and all(float(d).is_integer() and 0 <= d < self.pose_dims for d in band[:2])
                and band[2] <= band[3]
                and band[4] > 0
            ):
                raise ValueError(
                    "each of drawn_rows must be [dim, seen_dim, col_low, col_high, half_height]: two pose "
                    f"dims below {self.pose_dims}, col_low <= col_high and half_height > 0"
                )
        for rod in self.drawn_segments:
            if not (
                len(rod) == 8
                and all(float(d).is_integer() and 0 <= d < self.pose_dims for d in rod[:3])
                and rod[6] > 0
                and rod[7] > 0
            ):
                raise ValueError(
                    "each of drawn_segments must be [x_dim, sin_dim, cos_dim, x_scale, x_offset, pivot_row, "
                    f"length, half_width]: three pose dims below {self.pose_dims}, length and half_width > 0"
                )
        if self.point_momentum and not (self.points and self.dynamics == "gru"):
            raise ValueError("point_momentum needs points and GRU dynamics")
        if self.relative_flow and not self.warp_reference:
            raise ValueError("relative_flow needs warp_reference")
        if self.contact_gate and not self.point_momentum:
            raise ValueError("contact_gate needs point_momentum")
        if self.point_speeds and not (
            self.point_momentum
            and len(self.point_speeds) == len(self.points)
            and all(len(axes) == 2 for axes in self.point_speeds)
        ):
            raise ValueError("point_speeds needs point_momentum and one [x speeds, y speeds] per point")
        if self.row_memory and not (
            self.dynamics == "gru"
            and self.action_kind == "discrete"
            and 0 <= self.row_memory.get("row_dim", -1) < self.pose_dims - 1  # then its in-view flag
            and len(self.row_memory.get("groups", ())) == self.num_actions
        ):
            raise ValueError(
                "row_memory needs GRU dynamics, discrete actions, a row_dim among the pose dims and one "
                "group per action"
            )
        if self.past_actions and self.dynamics != "gru":
            raise ValueError("past_actions needs the GRU dynamics")
        if self.outcome_input not in OUTCOME_INPUTS:
            raise ValueError(
                f"outcome_input must be one of {list(OUTCOME_INPUTS)}, got {self.outcome_input!r}"
            )
        values = self.reward_values
        if not (
            isinstance(values, list)
            and all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
            )
            and values == sorted(set(values))
        ):
            raise ValueError(
                f"reward_values must be finite numbers in ascending order without repeats, got {values!r}"
            )
        if values and not self.outcome:
            raise ValueError("reward_values needs the outcome head (outcome)")
        self.reward_values = [float(v) for v in values]
        if not isinstance(self.reencode_every, int) or self.reencode_every < 0:
            raise ValueError(
                f"reencode_every must be a whole number of steps >= 0, got {self.reencode_every!r}"
            )
        if self.reencode_every and self.dynamics != "gru":
            raise ValueError(
                "reencode_every needs the GRU dynamics (state dynamics step the simulator state)"
            )
        if self.speed_mlp and not self.speed_classes:
            raise ValueError("speed_mlp needs speed_classes")
        if self.speed_classes and not self.point_speeds:
            raise ValueError("speed_classes needs point_speeds")
        if self.pose_bounds and not (
            len(self.pose_bounds) == self.pose_dims
            and all(len(b) == 2 and b[0] <= b[1] for b in self.pose_bounds)
        ):
            raise ValueError("pose_bounds needs one [low, high] per pose dim")
        if self.dynamics == "state" and not (
            0 < self.state_dims == len(self.state_mean) == len(self.state_std)
        ):
            raise ValueError(
                "state dynamics need state_dims > 0 and a state_mean and state_std of that length"
            )

    @property
    def object_maps(self) -> int:
        """Maps the decoder reads per frame: one per point, drawn row and drawn segment."""
        return len(self.points) + len(self.drawn_rows) + len(self.drawn_segments)

    @classmethod
    def for_env(cls, spec: EnvSpec, **overrides) -> LatentConfig:
        return cls(env=spec, **overrides)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["env"] = self.env.to_dict()
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> LatentConfig:
        """Upgrades older formats, then validates field names and values before anything is built."""
        data = dict(data)
        version = data.pop("format_version", None)
        data.pop("kind", None)
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"config.json format_version must be a positive integer, got {version!r}")
        if version > CONFIG_FORMAT_VERSION:
            raise ValueError(
                f"config.json format_version {version} was written by a newer worldsim; this one reads "
                f"versions up to {CONFIG_FORMAT_VERSION}: upgrade worldsim to load it."
            )
        while version < CONFIG_FORMAT_VERSION:  # each step rewrites one format into the next
            data, version = CONFIG_UPGRADES[version](data), version + 1
        return config_from_fields(cls, data)


def _upgrade_2_to_3(data: dict) -> dict:
    """Format 3 stores the environment itself instead of the name of a built-in spec (whose view
    and action fields format 2 repeated)."""
    from worldsim.envs.builtin import get_spec

    name = data.pop("env")
    try:
        spec = get_spec(name)
    except KeyError as error:
        raise ValueError(error.args[0]) from None
    for repeated in ("height", "width", "action_kind", "num_actions"):
        data.pop(repeated, None)
    return {**data, "env": spec.to_dict()}


# format_version N -> a function turning an N config dict into an N+1 one. Version 1 is the first.
CONFIG_UPGRADES: dict[int, Callable[[dict], dict]] = {
    1: lambda data: data,  # 2 added state dynamics; 1 was all GRU
    2: _upgrade_2_to_3,
    3: lambda data: data,  # 4 added decoder_action and points (off by default)
    4: lambda data: data,  # 5 added point_momentum (off by default)
    5: lambda data: data,  # 6 added warp_reference (off by default)
    6: lambda data: data,  # 7 added contact_gate (off by default)
    7: lambda data: data,  # 8 added point_speeds and speed_classes (none, off by default)
    8: lambda data: data,  # 9 added pose_bounds (none: poses are drawn wherever they are)
    9: lambda data: data,  # 10 added relative_flow and speed_mlp (off by default)
    10: lambda data: data,  # 11 added drawn_rows (none)
    11: lambda data: data,  # 12 added past_actions (none)
    12: lambda data: data,  # 13 added outcome_input ("latents"), reencode_every (0), drawn_segments (none)
    13: lambda data: data,  # 14 added point_memory (off)
    14: lambda data: data,  # 15 added row_memory (off)
    15: lambda data: data,  # 16 added reward_values (none: the reward as regressed)
}


@dataclass
class LatentState:
    """Where a batch of imagined worlds stands: latent frame z (B, Z) and dynamics state h (GRU
    state, or the normalised simulator state), plus the reference frame (B, 3, H, W) it is drawn
    over and that frame's latent (B, Z). `offset` carries the state dynamics' start correction."""

    z: torch.Tensor
    h: torch.Tensor
    ref_z: torch.Tensor | None = None
    ref: torch.Tensor | None = None
    offset: torch.Tensor | None = None
    prev_z: torch.Tensor | None = None  # the latent before the last step (for the outcome head)
    action: torch.Tensor | None = None  # the action of the last step (None at the start)
    age: torch.Tensor | None = None  # (B,) steps since the start, where the model re-encodes
    seen: torch.Tensor | None = None  # the encoding of the frame drawn from z, where known

    def next(self, z: torch.Tensor, h: torch.Tensor, action: torch.Tensor | None = None) -> LatentState:
        return LatentState(
            z=z,
            h=h,
            ref_z=self.ref_z,
            ref=self.ref,
            offset=self.offset,
            prev_z=self.z,
            action=action,
            age=None if self.age is None else self.age + 1,
        )


class ConvEncoder(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, latent_dim). Pixel-unshuffle first: 4x cheaper convolutions."""

    def __init__(self, config: LatentConfig):
        super().__init__()
        c0, c1, c2 = config.channels
        self.net = nn.Sequential(
            nn.PixelUnshuffle(4),  # (B, 48, H/4, W/4), lossless
            nn.Conv2d(48, c0, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c0, c1, 4, stride=2, padding=1),  # H/8
            nn.SiLU(),
            nn.Conv2d(c1, c1, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1),  # H/16
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(c2 * (config.height // 16) * (config.width // 16), config.latent_dim),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames * 2 - 1)


# View pixels of reference shift per unit of the flow head's output: a few units reach the
# shifts of a scrolling view, and a step of the optimiser moves it by a fraction of a pixel.
FLOW_PIXELS = 4.0


class ConvDecoder(nn.Module):
    """(B, 2 * latent_dim [+ action features]) -> (B, 4, H, W): colours and mask logit, from
    target and reference z; with points, refined at full resolution by their position maps."""

    def __init__(self, config: LatentConfig):
        super().__init__()
        c0, c1, c2 = config.channels
        self.grid = (c2, config.height // 16, config.width // 16)
        inputs = 2 * config.latent_dim + (config.num_actions if config.decoder_action else 0)
        self.project = nn.Linear(inputs, math.prod(self.grid))
        self.net = nn.Sequential(
            nn.SiLU(),
            nn.Conv2d(c2, c2, 3, padding=1),
            nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),  # H/8
            nn.Conv2d(c2, c1, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c1, c1, 3, padding=1),
            nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),  # H/4
            nn.Conv2d(c1, c0, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c0, 64, 3, padding=1),
            nn.PixelShuffle(4),  # (B, 4, H, W): each 4x4 patch drawn from one feature vector
        )
        with torch.no_grad():  # start as "copy the reference": mask logits (channels 48..63) at -4
            self.net[-2].bias[48:].fill_(-4.0)
        # Points and drawn rows: two maps each (where the object is in the frame drawn, and in the
        # reference, to paint it over), read with the coarse output by two small full-res convs.
        self.refine = None
        if config.object_maps:
            maps = 2 * config.object_maps
            self.refine = nn.Sequential(
                nn.Conv2d(4 + maps, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 4, 3, padding=1)
            )

        # Reference warp: shifts (x, y, in view pixels) on a grid of 8x8-pixel cells, read from
        # the same inputs. The last layer starts at zero: the reference as it is.
        self.flow = None
        if config.warp_reference:
            self.flow_grid = (config.height // 8, config.width // 8)
            self.flow = nn.Sequential(
                nn.Linear(inputs, 256), nn.SiLU(), nn.Linear(256, 2 * math.prod(self.flow_grid))
            )
            with torch.no_grad():
                self.flow[-1].weight.zero_()
                self.flow[-1].bias.zero_()

    def forward(self, z: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        out = self.net(self.project(z).view(-1, *self.grid))
        if self.refine is not None:
            out = out + self.refine(torch.cat([out, maps.to(out.dtype)], dim=1))
        return out

    def flow_field(self, z: torch.Tensor) -> torch.Tensor:
        """(B, inputs) -> (B, 2, gh, gw): the reference's shift per grid cell, in view pixels."""
        return FLOW_PIXELS * self.flow(z).view(-1, 2, *self.flow_grid)


def warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """frames (B, 3, H, W) sampled where flow (B, 2, gh, gw), x and y in view pixels, upsampled
    bilinearly to (H, W), says each pixel's content comes from; edges extend past the border."""
    height, width = frames.shape[-2:]
    flow = F.interpolate(flow.float(), size=(height, width), mode="bilinear", align_corners=False)
    ys = (torch.arange(height, device=frames.device, dtype=torch.float32) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=frames.device, dtype=torch.float32) * 2 + 1) / width - 1
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2): x, y
    shift = torch.stack([flow[:, 0] * (2 / width), flow[:, 1] * (2 / height)], dim=-1)
    return F.grid_sample(
        frames.float(), base + shift, mode="bilinear", padding_mode="border", align_corners=False
    )


def action_embedding(config: LatentConfig) -> nn.Module:
    """A lookup table for discrete actions, a linear map for continuous ones."""
    if config.action_kind == "discrete":
        return nn.Embedding(config.num_actions, config.action_embed_dim)
    return nn.Linear(config.num_actions, config.action_embed_dim)


def embed_actions(embedding: nn.Module, actions: torch.Tensor) -> torch.Tensor:
    """(B,) int64 discrete or (B, D) continuous actions -> (B, action_embed_dim)."""
    return embedding(actions if isinstance(embedding, nn.Embedding) else actions.float())


def action_features(config: LatentConfig, actions: torch.Tensor | None, batch: int, device) -> torch.Tensor:
    """What the decoder sees of the action that led to a frame: one-hot for discrete actions,
    the values for continuous ones; zeros where there was none (a start frame; in a batch, a
    discrete action of -1)."""
    if actions is None:
        return torch.zeros(batch, config.num_actions, device=device)
    if config.action_kind == "discrete":
        actions = actions.long()
        return F.one_hot(actions.clamp_min(0), config.num_actions).float() * (actions >= 0)[:, None]
    return actions.float()


# Width (model pixels) of the peak each point's map has: a ball is 1-2 pixels across.
POINT_SIGMA = 0.75


def point_maps(config: LatentConfig, z: torch.Tensor) -> torch.Tensor:
    """(B, Z) latents -> (B, P + R + S, H, W): per point, a Gaussian peak at the position its
    pose dims hold; then per drawn row, a band of its height at its row between its columns; each
    scaled by how surely its object is in view (0 where it is not); then per drawn segment, its
    rod as a soft line."""
    spec = config.env
    mean = torch.tensor(config.pose_mean, device=z.device, dtype=z.dtype)
    std = torch.tensor(config.pose_std, device=z.device, dtype=z.dtype)
    pose = z[:, : config.pose_dims] * std + mean
    top, left, row_step, col_step = spec.view_in_render()
    rows = torch.arange(config.height, device=z.device, dtype=z.dtype)[None, :, None]
    cols = torch.arange(config.width, device=z.device, dtype=z.dtype)[None, None, :]
    maps = []
    for x_dim, y_dim, seen_dim in config.points:
        col = ((pose[:, x_dim] - left) / col_step - 0.5)[:, None, None]
        row = ((pose[:, y_dim] - top) / row_step - 0.5)[:, None, None]
        seen = pose[:, seen_dim].clamp(0, 1)[:, None, None]
        maps.append(seen * torch.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * POINT_SIGMA**2)))
    for dim, seen_dim, col_low, col_high, half in config.drawn_rows:
        row = ((pose[:, int(dim)] - top) / row_step - 0.5)[:, None, None]
        seen = pose[:, int(seen_dim)].clamp(0, 1)[:, None, None]
        band = torch.sigmoid((half / row_step - (rows - row).abs()) / 0.5)
        centres = (cols + 0.5) * col_step + left  # each view column's centre in render pixels
        maps.append(seen * band * ((centres >= col_low) & (centres <= col_high)).to(z.dtype))
    if config.drawn_segments:  # each view pixel's centre in render pixels
        across, down = (cols + 0.5) * col_step + left, (rows + 0.5) * row_step + top
    for x_dim, sin_dim, cos_dim, x_scale, x_offset, pivot_row, length, half in config.drawn_segments:
        direction = torch.stack([pose[:, int(sin_dim)], -pose[:, int(cos_dim)]], dim=1)
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-6)
        dx, dy = direction[:, 0, None, None], direction[:, 1, None, None]
        u = across - (pose[:, int(x_dim)] * x_scale + x_offset)[:, None, None]
        v = down - pivot_row
        along = torch.minimum((u * dx + v * dy).clamp_min(0), torch.full_like(u, length))  # nearest point
        distance = torch.sqrt((u - along * dx) ** 2 + (v - along * dy) ** 2 + 1e-6)
        maps.append(torch.sigmoid((half - distance) / (0.5 * col_step)))  # soft by half a pixel
    return torch.stack(maps, dim=1)


def point_pixel_units(config: LatentConfig) -> torch.Tensor:
    """(latent_dim,): one view pixel in the normalised units of each point's x and y dims; 0 on
    every other dim."""
    _, _, row_step, col_step = config.env.view_in_render()
    units = torch.zeros(config.latent_dim)
    for x_dim, y_dim, _ in config.points:
        units[x_dim] = col_step / config.pose_std[x_dim]
        units[y_dim] = row_step / config.pose_std[y_dim]
    return units


def point_dim_map(config: LatentConfig) -> torch.Tensor:
    """(P, Z): row p is 1 on point p's x and y dims."""
    dims = torch.zeros(len(config.points), config.latent_dim)
    for p, (x_dim, y_dim, _) in enumerate(config.points):
        dims[p, [x_dim, y_dim]] = 1
    return dims


# View pixels by which the GRU must change a point's motion in one step for it to change at all:
# a bounce changes it by 2-8, while the GRU's unconditioned output wobbles by about one.
MOTION_DEAD_ZONE = 1.0


# View pixels within which a point's motion takes the nearest of its steady speeds (point_speeds).
# Pong's lie 2 view pixels apart; a ball leaving the court or served jumps much further, and a
# tolerance of 2.5 or more snapped some of those jumps too (Pong's ball recall h=5..60 after 50
# random / scripted steps, 20 seeds, snapping in view or not: 1.0 0.36 / 0.22, 1.5 0.36 / 0.29,
# 2.5 0.36 / 0.28).
SPEED_SNAP_TOLERANCE = 1.5
_NO_SPEED = 1e6  # pads the speed table: no motion is near it


def speed_table(config: LatentConfig) -> dict[str, torch.Tensor]:
    """What snapping needs, per latent dim (Z,): `speeds` (Z, K), each point's x and y speeds
    (point_speeds) in normalised units, padded far off; `tolerance`, the snap tolerance in those
    units, 0 off the points' dims; and where to read whether the point is in view: `seen_dim`,
    with the normalised value `seen_level` that means "half in view"."""
    _, _, row_step, col_step = config.env.view_in_render()
    width = max(len(axis) for axes in config.point_speeds for axis in axes)
    table = {
        "speeds": torch.full((config.latent_dim, width), _NO_SPEED),
        "tolerance": torch.zeros(config.latent_dim),
        "seen_dim": torch.zeros(config.latent_dim, dtype=torch.int64),
        "seen_level": torch.zeros(config.latent_dim),
    }
    for (x_dim, y_dim, seen_dim), axes in zip(config.points, config.point_speeds, strict=True):
        for dim, speeds, pixel in ((x_dim, axes[0], col_step), (y_dim, axes[1], row_step)):
            table["speeds"][dim, : len(speeds)] = torch.tensor(speeds) / config.pose_std[dim]
            table["tolerance"][dim] = SPEED_SNAP_TOLERANCE * pixel / config.pose_std[dim]
            table["seen_dim"][dim] = seen_dim
            table["seen_level"][dim] = (0.5 - config.pose_mean[seen_dim]) / config.pose_std[seen_dim]
    return table


# A point memory's key, in render pixels: the point's x and y, its motion into the step in x and
# y, its y minus the row's after the step, and the row's move in the step. The row's move counts
# half: a paddle's motion shapes a return less than where on it the ball lands.
MEMORY_KEY_SIZE = 6
MEMORY_KEY_WEIGHTS = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.5])
# With key_actions, a seventh column: 1 where the step's action is one of them. A mismatch costs
# 5 px of the 6 px reach: Pong's fire decided 10 of the 13 contacts the frames left open.
KEY_ACTION_WEIGHT = 5.0


def memory_key(
    x: torch.Tensor,
    y: torch.Tensor,
    vx: torch.Tensor,
    vy: torch.Tensor,
    row: torch.Tensor,
    row_next: torch.Tensor,
) -> torch.Tensor:
    """(N, MEMORY_KEY_SIZE) point memory keys from (N,) render-pixel readings: the point's place
    and its motion into the step, the row now and after the step. Training stores them, a dream
    looks them up."""
    return torch.stack([x, y, vx, vy, y - row_next, row_next - row], dim=1)


# A row memory's nearest entry by |move difference| + ROW_PLACE_WEIGHT * |place difference| (render
# px), used within ROW_MEMORY_REACH. Both count: Pong's table keyed without the place gave 75% of
# held-out moves right, with it 98% (the weight itself was not tuned).
ROW_PLACE_WEIGHT = 0.5
ROW_MEMORY_REACH = 3.0


def action_history_code(groups: torch.Tensor, base: int) -> torch.Tensor:
    """(N, K) action groups, oldest first, each below `base` -> (N,) one number per history (a
    row memory's key)."""
    places = base ** torch.arange(groups.shape[1] - 1, -1, -1, dtype=groups.dtype, device=groups.device)
    return (groups * places).sum(dim=1)


class LatentDynamics(nn.Module):
    """GRU over latents: K context latents -> h; (z_t, a_t, h_t) -> (z_{t+1}, h_{t+1}).

    With point momentum the state h also carries the points' last motion (B, Z), zero outside
    their x and y dims: z_{t+1} = z_t + v_{t+1} there, with v_{t+1} = v_t + delta where delta
    passes a dead zone, so a ball in flight keeps its speed exactly and the GRU has only its
    bounces to learn. With point speeds, at inference, that motion is also snapped to the game's
    nearest steady speed, from the start frames' motion on; with speed classes a head picks the
    next speed among those."""

    def __init__(self, config: LatentConfig):
        super().__init__()
        z, hidden = config.latent_dim, config.hidden_dim
        self.hidden_dim = hidden
        self.embed_action = action_embedding(config)
        # Context enters as the last latent plus its differences to the earlier ones (velocity).
        self.init = nn.Sequential(nn.Linear(config.context_frames * z, hidden), nn.Tanh())
        # The actions played into the start frame, each embedded (zeros where unknown) with a
        # known flag, add to the initial state before its tanh; zero at first, so that a model
        # continued from one without them starts as it was.
        self.past_actions = config.past_actions
        self.init_past = None
        if config.past_actions:
            self.init_past = nn.Linear(config.past_actions * (config.action_embed_dim + 1), hidden)
            nn.init.zeros_(self.init_past.weight)
            nn.init.zeros_(self.init_past.bias)
        # With point momentum the GRU also sees the motion it carries: whether a ball already
        # moves (two start frames) or must be set moving (one).
        self.cell = nn.GRUCell(z * (2 if config.point_momentum else 1) + config.action_embed_dim, hidden)
        self.delta = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, z))
        moving = still = None  # (Z,): 1 on the points' x and y dims; their dead zones
        if config.point_momentum:
            pixel = point_pixel_units(config)
            moving, still = (pixel > 0).float(), MOTION_DEAD_ZONE * pixel
        self.register_buffer("moving", moving, persistent=False)
        self.register_buffer("still", still, persistent=False)
        # With a contact gate: one logit per point ("its motion changes now"), and (P, Z) maps
        # from points to their x and y dims.
        self.contact = nn.Linear(hidden, len(config.points)) if config.contact_gate else None
        point_dims = point_dim_map(config) if config.contact_gate else None
        self.register_buffer("point_dims", point_dims, persistent=False)
        self.snapping = bool(config.point_speeds)
        for name, value in speed_table(config).items() if self.snapping else ():
            self.register_buffer(f"snap_{name}", value, persistent=False)
        # With speed classes: per point axis (x0, y0, x1, ...), logits over its speeds and "other".
        self.speed_head = None
        self.speed_mlp = config.speed_mlp
        if config.speed_classes:
            axes = torch.tensor([d for x_dim, y_dim, _ in config.points for d in (x_dim, y_dim)])
            codes = self.snap_speeds[axes]  # (D, K)
            classes = codes.numel() + len(axes)
            self.speed_head = (
                _mlp(hidden + 2 * z, hidden, classes) if config.speed_mlp else nn.Linear(hidden, classes)
            )
            self.register_buffer("speed_axes", axes, persistent=False)
            self.register_buffer("speed_codes", F.pad(codes, (0, 1)), persistent=False)  # "other": 0
            # padded classes (an axis with fewer speeds) are never picked
            self.register_buffer("speed_mask", F.pad((codes == _NO_SPEED) * -1e4, (0, 1)), persistent=False)
            self.register_buffer("speed_onto", F.one_hot(axes, z).float(), persistent=False)  # (D, Z)
        self.memory = dict(config.point_memory)
        self.path_state_size = 0  # h's very last dims: the replayed path's number and step
        if self.memory:  # the entries are weights (saved), filled by `with_point_memory`
            entries, key_actions = int(self.memory["entries"]), self.memory.get("key_actions", [])
            weights = (
                MEMORY_KEY_WEIGHTS
                if not key_actions
                else F.pad(MEMORY_KEY_WEIGHTS, (0, 1), value=KEY_ACTION_WEIGHT)
            )
            self.register_buffer("memory_keys", torch.zeros(entries, len(weights)))
            self.register_buffer("memory_moves", torch.zeros(entries, 2))
            self.register_buffer("memory_weights", weights.clone(), persistent=False)
            if key_actions:  # (discrete: `point_memory` refuses them for continuous actions)
                pressed = torch.zeros(config.num_actions)
                pressed[list(key_actions)] = 1.0
                self.register_buffer("memory_pressed", pressed, persistent=False)
            self.path_steps = int(self.memory.get("path_steps", 0))
            if self.path_steps:
                paths = int(self.memory["paths"])
                self.register_buffer("memory_path_of", torch.zeros(entries, dtype=torch.int64))  # -1: none
                self.register_buffer("memory_paths", torch.zeros(paths, self.path_steps, 2))
                self.register_buffer("memory_path_lengths", torch.zeros(paths, dtype=torch.int64))
                self.path_state_size = 2
            x_dim, y_dim, seen_dim = config.points[0]
            dims = [x_dim, y_dim, seen_dim, int(self.memory["row_dim"])]
            self.memory_dims = dims
            self.register_buffer(
                "memory_mean", torch.tensor([config.pose_mean[d] for d in dims]), persistent=False
            )
            self.register_buffer(
                "memory_std", torch.tensor([config.pose_std[d] for d in dims]), persistent=False
            )
        self.row_memory = dict(config.row_memory)
        self.row_state_size = 0  # h's last dims: the row before the step, the last action groups
        if self.row_memory:  # the entries are weights (saved), filled by `with_row_memory`
            entries, count = int(self.row_memory["entries"]), int(self.row_memory["actions"])
            self.row_state_size = 1 + count
            self.register_buffer("row_codes", torch.zeros(entries))
            self.register_buffer("row_keys", torch.zeros(entries, 2))  # the row's last move, its place
            self.register_buffer("row_moves", torch.zeros(entries))
            groups = torch.tensor(self.row_memory["groups"], dtype=torch.float32)
            self.register_buffer("row_groups", groups, persistent=False)
            self.row_base = max(self.row_memory["groups"]) + 1
            dim = int(self.row_memory["row_dim"])
            self.row_scale = (config.pose_mean[dim], config.pose_std[dim])
            self.row_seen_scale = (config.pose_mean[dim + 1], config.pose_std[dim + 1])  # its in-view flag

    def start(
        self, context: torch.Tensor, noise: torch.Tensor | None = None, past: torch.Tensor | None = None
    ) -> LatentState:
        """context (B, K, Z), oldest first -> state at the last context frame. `past`: the actions
        played into it, oldest first (see `past_action_features`), or None. A GRU does not sample:
        `noise` is ignored."""
        h = self.init[0](context_features(context))
        if self.init_past is not None:
            h = h + self.init_past(self.past_action_features(past, len(context)))
        h = self.init[1](h)
        if self.moving is not None:  # the points' motion between the last two context frames
            motion = context[:, -1] - context[:, -min(2, context.shape[1])]  # one frame: none
            h = torch.cat([h, self.snap(self.moving * motion, context[:, -1])], dim=1)
        if self.row_memory:
            h = torch.cat([h, self.row_start(context, past)], dim=1)
        if self.path_state_size:  # no path replayed: path 0, past its end
            h = torch.cat([h, h.new_tensor([0.0, self.path_steps]).expand(len(h), 2)], dim=1)
        return LatentState(z=context[:, -1], h=h)

    def row_start(self, context: torch.Tensor, past: torch.Tensor | None) -> torch.Tensor:
        """A row memory's part of the start state (B, 1 + N): the row in the frame before the
        last context frame (the last one where there is one frame), then the groups of the N
        actions played into the start, oldest first, -1 where unknown."""
        count, dim = int(self.row_memory["actions"]), int(self.row_memory["row_dim"])
        mean, std = self.row_scale
        history = torch.full((len(context), count), -1.0, device=context.device)
        if past is not None and past.shape[1]:
            past = past[:, -count:].to(context.device).long()
            groups = torch.where(past >= 0, self.row_groups[past.clamp_min(0)], -1.0)
            history = torch.cat([history[:, : count - past.shape[1]], groups], dim=1)
        previous = context[:, -min(2, context.shape[1]), dim] * std + mean
        return torch.cat([previous[:, None], history], dim=1)

    def past_action_features(self, past: torch.Tensor | None, batch: int) -> torch.Tensor:
        """The last `past_actions` actions into the start frame, (B, N) int64 or (B, N, D) float,
        oldest first, -1 (discrete) or NaN (continuous) where unknown; None: all unknown.
        -> (B, N * (embed + 1)): each embedded, zeros where unknown, then the known flags."""
        n, device = self.past_actions, self.init_past.weight.device
        discrete = isinstance(self.embed_action, nn.Embedding)
        each = () if discrete else (self.embed_action.in_features,)  # one action's shape
        dtype, unknown = (torch.int64, -1) if discrete else (torch.float32, float("nan"))
        past = torch.zeros(batch, 0, *each, dtype=dtype) if past is None else past.to(dtype)
        past = past[:, -n:].to(device)
        if past.shape[1] < n:  # fewer given: the earlier ones are unknown
            pad = torch.full((batch, n - past.shape[1], *each), unknown, dtype=dtype, device=device)
            past = torch.cat([pad, past], dim=1)
        if discrete:
            known = past >= 0
            embedded = self.embed_action(past.clamp_min(0))
        else:
            known = ~past.isnan().any(dim=-1)
            embedded = self.embed_action(past.nan_to_num().float())
        embedded = embedded * known[..., None]
        return torch.cat([embedded.flatten(1), known.to(embedded.dtype)], dim=1)

    def step(self, state: LatentState, actions: torch.Tensor) -> LatentState:
        """actions: (B,) int64 for discrete, (B, D) float for continuous."""
        return self.step_with_heads(state, actions)[0]

    def step_with_heads(
        self,
        state: LatentState,
        actions: torch.Tensor,
        contacts: torch.Tensor | None = None,
        speeds: torch.Tensor | None = None,
    ) -> tuple[LatentState, dict[str, torch.Tensor]]:
        """A step, and the logits its heads predicted: "contact" (B, P) with a contact gate,
        "speed" (B, D, K + 1) with speed classes. Training says what truly happens instead:
        `contacts` (B, P) of 0/1 opens the gate (None: where its logit is positive), and `speeds`
        (B, D) picks each point axis's class (None: the likeliest, where the point is in view)."""
        core = state.h.shape[1] - self.row_state_size - self.path_state_size  # the memories' state last
        hidden, motion = state.h[:, : self.hidden_dim], state.h[:, self.hidden_dim : core]
        path_state = state.h[:, state.h.shape[1] - self.path_state_size :]
        carried = motion  # the points' motion into this step
        seen = [state.z, motion] if self.moving is not None else [state.z]
        hidden = self.cell(torch.cat([*seen, embed_actions(self.embed_action, actions)], dim=1), hidden)
        delta = self.delta(hidden)
        heads: dict[str, torch.Tensor] = {}
        if self.moving is None:
            z = state.z + delta
            z, row_state = self.step_row(state, z, actions)
            h = torch.cat([hidden, row_state, path_state], dim=1)  # (a point memory needs point motion)
            return state.next(z=z, h=h, action=actions), heads
        if self.contact is not None:
            heads["contact"] = logits = self.contact(hidden)
            gate = (logits > 0).to(delta.dtype) if contacts is None else contacts.to(delta.dtype)
            change = (gate @ self.point_dims) * delta
        else:  # a change of motion smaller than the dead zone is the GRU's noise, not a bounce
            change = torch.sign(delta) * F.relu(delta.abs() - self.still)
        motion = motion + self.moving * change
        if self.speed_head is not None:
            read = torch.cat([hidden, state.z, carried], dim=1) if self.speed_mlp else hidden
            heads["speed"] = logits = self.speed_head(read).view(len(motion), *self.speed_mask.shape)
            logits = logits + self.speed_mask
            told = speeds is not None
            speeds = speeds if told else logits.argmax(dim=2)
            picked = speeds < self.speed_codes.shape[1] - 1  # the last class, "other": its own motion
            if not told:  # the head's pick counts where the ball is in view
                picked = picked & self.in_view(state.z)[:, self.speed_axes]
            code = torch.gather(self.speed_codes.expand(len(motion), -1, -1), 2, speeds[:, :, None])[:, :, 0]
            own = motion[:, self.speed_axes]
            motion = motion + (torch.where(picked, code, own) - own) @ self.speed_onto
        motion = self.snap(motion, state.z)
        z = state.z + (1 - self.moving) * delta + motion
        z, row_state = self.step_row(state, z, actions)  # first: the point memory keys on the row
        if self.memory and not self.training:
            z, motion, path_state = self.recall(state.z, carried, z, motion, actions, path_state)
        h = torch.cat([hidden, motion, row_state, path_state], dim=1)
        return state.next(z=z, h=h, action=actions), heads

    def step_row(
        self, state: LatentState, z_next: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Row memory (LatentConfig.row_memory): the step's latent `z_next` with the row moved as
        the table says where the row is in view, the last N action groups are known and an entry
        lies within reach (at inference), and the row memory's next state (B, 1 + N); without a
        row memory (z_next, (B, 0))."""
        if not self.row_memory:
            return z_next, state.h[:, :0]
        dim, (mean, std) = int(self.row_memory["row_dim"]), self.row_scale
        end = state.h.shape[1] - self.path_state_size
        row_state = state.h[:, end - self.row_state_size : end]
        previous, history = row_state[:, 0], row_state[:, 1:]
        history = torch.cat([history[:, 1:], self.row_groups[actions.long()][:, None]], dim=1)
        row = state.z[:, dim] * std + mean
        if not self.training:
            distance = (self.row_keys[:, 0] - (row - previous)[:, None]).abs()
            distance = distance + ROW_PLACE_WEIGHT * (self.row_keys[:, 1] - row[:, None]).abs()
            code = action_history_code(history, self.row_base)
            distance = torch.where(self.row_codes == code[:, None], distance, torch.inf)
            nearest, index = distance.min(dim=1)
            seen = state.z[:, dim + 1] * self.row_seen_scale[1] + self.row_seen_scale[0] > 0.5
            use = seen & (history >= 0).all(dim=1) & (nearest < ROW_MEMORY_REACH)
            moved = (row + self.row_moves[index] - mean) / std
            z_next = z_next.clone()
            z_next[:, dim] = torch.where(use, moved, z_next[:, dim])
        return z_next, torch.cat([row[:, None], history], dim=1)

    def recall(
        self,
        z: torch.Tensor,
        carried: torch.Tensor,
        z_next: torch.Tensor,
        motion: torch.Tensor,
        actions: torch.Tensor,
        path_state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Point memory (LatentConfig.point_memory): from latent `z` with the motion `carried`
        into it, where the point is in view in the zone and a remembered moment lies within reach,
        the step's result `z_next` and its `motion` (B, Z) with the point moved as that moment's
        ball moved; with paths, a return's next moves replayed after it (`path_state` (B, 2): the
        path's number and step, carried in h, returned stepped)."""
        x_dim, y_dim, seen_dim, row_dim = self.memory_dims
        mean, std = self.memory_mean, self.memory_std
        x, y, seen, row = (z[:, [x_dim, y_dim, seen_dim, row_dim]] * std + mean).unbind(1)
        in_zone = (x >= self.memory["x_low"]) & (seen > 0.5)
        replaying = torch.zeros_like(in_zone)
        if self.path_state_size:
            path, step = path_state.long().unbind(1)
            replaying = (step < self.memory_path_lengths[path]) & (seen > 0.5)
        if not torch.onnx.is_in_onnx_export() and not bool((in_zone | replaying).any()):  # most steps
            if self.path_state_size:  # a path whose ball left the view ends (see below)
                path_state = torch.stack([path, torch.full_like(step, self.path_steps)], 1).to(
                    path_state.dtype
                )
            return z_next, motion, path_state
        row_next = z_next[:, row_dim] * std[3] + mean[3]
        vx, vy = carried[:, x_dim] * std[0], carried[:, y_dim] * std[1]
        key = memory_key(x, y, vx, vy, row, row_next)
        if self.memory_keys.shape[1] > MEMORY_KEY_SIZE:  # key_actions: whether one was pressed
            pressed = self.memory_pressed[actions.long().view(-1)]
            key = torch.cat([key, pressed[:, None]], dim=1)
        distance = ((key[:, None] - self.memory_keys).abs() * self.memory_weights).sum(dim=2)
        nearest, index = distance.min(dim=1)
        use = in_zone & (nearest < self.memory["max_distance"]) & ~replaying
        move = self.memory_moves[index]
        if self.path_state_size:  # a path replayed goes on; a return looked up starts its own
            replayed = self.memory_paths[path, step.clamp(max=self.path_steps - 1)]
            move = torch.where(replaying[:, None], replayed, move)
            starts = use & (self.memory_path_of[index] >= 0)
            # a path ends where its ball left the view too: a later serve is not its return
            step = torch.where(starts, 0, torch.where(replaying, step + 1, self.path_steps))
            path = torch.where(starts, self.memory_path_of[index], path)
            path_state = torch.stack([path, step], dim=1).to(path_state.dtype)
            use = use | replaying
        move = move / std[:2]  # (B, 2) normalised
        z_next, motion = z_next.clone(), motion.clone()
        for column, dim in enumerate((x_dim, y_dim)):
            z_next[:, dim] = torch.where(use, z[:, dim] + move[:, column], z_next[:, dim])
            motion[:, dim] = torch.where(use, move[:, column], motion[:, dim])
        return z_next, motion, path_state

    def snap(self, motion: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(B, Z) motions -> the same, where a point is in view in `z` (the latent it moves from)
        and its motion within the tolerance of one of its steady speeds, that speed. Out of view a
        point has no speed (the readers' fill holds still, then a serve jumps). Only at
        inference: the GRU was trained on its own motion."""
        if not self.snapping or self.training:
            return motion
        nearest, index = (motion[:, :, None] - self.snap_speeds).abs().min(dim=2)
        speed = torch.gather(self.snap_speeds.expand(len(motion), -1, -1), 2, index[:, :, None])[:, :, 0]
        return torch.where(self.in_view(z) & (nearest < self.snap_tolerance), speed, motion)

    def in_view(self, z: torch.Tensor) -> torch.Tensor:
        """(..., Z) latents or normalised poses -> (..., Z) bool: per point dim, whether its
        point's "in view" dim says so (with point speeds; meaningless off the points' dims)."""
        return z[..., self.snap_seen_dim] > self.snap_seen_level


def context_features(context: torch.Tensor) -> torch.Tensor:
    """(B, K, Z) -> (B, K*Z): the last latent and its differences to the earlier ones (motion;
    zeros when the context is one repeated frame)."""
    last = context[:, -1]
    return torch.cat([last, (last[:, None] - context[:, :-1]).flatten(1)], dim=1)


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, outputs)
    )


class StateDynamics(nn.Module):
    """Dynamics in the simulator's own state space (CartPole: position, velocity, angle, angular
    velocity), learned from recorded states:

        K context latents --estimate--> s_0 ~ N(mean, std)   (one frame hides the velocities:
                                                               the spread says how much)
        s_{t+1} = s_t + transition(s_t, a_t)                  (smooth physics, an MLP learns it
                                                               far more precisely than a GRU
                                                               learns it through pixels)
        z_t = z_0 + readout(s_t) - readout(s_0)               (the frame's latent, anchored on
                                                               the start frame's own latent)

    Sampling draws s_0 from the estimate: different velocities, different plausible futures.
    """

    def __init__(self, config: LatentConfig):
        super().__init__()
        z, hidden, s = config.latent_dim, config.hidden_dim, config.state_dims
        self.embed_action = action_embedding(config)
        self.estimate = _mlp(config.context_frames * z, hidden, 2 * s)  # mean and log std
        self.transition = _mlp(s + config.action_embed_dim, hidden, s)
        self.readout = _mlp(s, hidden, z)

    def estimate_state(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """context (B, K, Z) -> mean and log std (B, S) of the normalised state at the last frame."""
        mean, log_std = self.estimate(context_features(context)).chunk(2, dim=1)
        return mean, log_std.clamp(-7, 2)

    def start(
        self, context: torch.Tensor, noise: torch.Tensor | None = None, past: torch.Tensor | None = None
    ) -> LatentState:
        """`noise` (B, S), standard normal, draws the start state; None takes the mean. `past` is
        ignored: state dynamics take no past actions (LatentConfig refuses them)."""
        mean, log_std = self.estimate_state(context)
        state = mean if noise is None else mean + noise * log_std.exp()
        return self.start_from(context[:, -1], state)

    def start_from(self, z: torch.Tensor, state: torch.Tensor) -> LatentState:
        return LatentState(z=z, h=state, offset=z - self.readout(state))

    def step(self, state: LatentState, actions: torch.Tensor) -> LatentState:
        s = state.h + self.transition(torch.cat([state.h, embed_actions(self.embed_action, actions)], dim=1))
        return state.next(z=state.offset + self.readout(s), h=s, action=actions)


DYNAMICS_KINDS = {"gru": LatentDynamics, "state": StateDynamics}


class LatentWorldModel(PretrainedWorldModel):
    """Autoencoder + latent dynamics (see the module docstring)."""

    kind = "latent"
    config_class = LatentConfig
    format_version = CONFIG_FORMAT_VERSION

    def __init__(self, config: LatentConfig):
        super().__init__(config)
        self.encoder = ConvEncoder(config)
        self.decoder = ConvDecoder(config)
        self.dynamics = DYNAMICS_KINDS[config.dynamics](config)
        # reward and episode end from the latents before and after a step, or from the drawn frame
        head_inputs = config.latent_dim * (2 if config.outcome_input == "latents" else 1)
        self.outcome_head = _mlp(head_inputs, config.hidden_dim, 2) if config.outcome else None
        # Kept out of the weights file: the config holds them, and older weights load as they were.
        self.register_buffer("reward_values", torch.tensor(config.reward_values), persistent=False)
        for name, value in drawing_limits(config).items() if config.pose_bounds else ():
            self.register_buffer(f"draw_{name}", value, persistent=False)
        # Channels-last convolutions: 1.8x faster decoding on this CPU (docs/performance.md).
        self.to(memory_format=torch.channels_last)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            sampling=self.config.dynamics == "state",
            outcome=self.config.outcome,
            encoder=True,
            redraw=True,
            onnx=True,
        )

    def export_onnx(self, folder) -> list:
        """start.onnx and step.onnx in `folder` (worldsim.models.onnx_export describes them)."""
        from worldsim.models.onnx_export import export_latent

        return export_latent(self, folder)

    def with_dynamics(
        self,
        dynamics: str,
        states: np.ndarray | None,
        point_momentum: bool = False,
        contact_gate: bool = False,
        point_speeds: list[list[list[float]]] | None = None,
        speed_classes: bool = False,
        speed_mlp: bool = False,
        past_actions: int = 0,
    ) -> LatentWorldModel:
        """A model with this one's autoencoder (shared) and new, untrained dynamics of kind
        `dynamics`, normalised for the state features `states` (N, S) where they step those."""
        config = replace(
            self.config,
            dynamics=dynamics,
            point_momentum=point_momentum,
            contact_gate=contact_gate,
            point_speeds=point_speeds or [],
            speed_classes=speed_classes,
            speed_mlp=speed_mlp,
            past_actions=past_actions,
            # state dynamics read their latent out of the simulator state: nothing to re-encode
            reencode_every=self.config.reencode_every if dynamics == "gru" else 0,
            state_dims=0 if states is None else states.shape[1],
            state_mean=[] if states is None else states.mean(0).tolist(),
            state_std=[] if states is None else (states.std(0) + 1e-6).tolist(),
        )
        model = LatentWorldModel(config).to(self.device)
        model.encoder, model.decoder, model.outcome_head = self.encoder, self.decoder, self.outcome_head
        return model

    def with_point_memory(
        self,
        memory: dict,
        keys: torch.Tensor,
        moves: torch.Tensor,
        paths: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> LatentWorldModel:
        """This model with a point memory (LatentConfig.point_memory: `memory` without its size)
        of `keys` (M, MEMORY_KEY_SIZE, + 1 with key_actions) and the point's `moves` (M, 2) in
        render pixels; with memory["path_steps"], `paths`: each entry's path number (M,), -1
        where none, the paths (R, path_steps, 2) and their lengths (R,)."""
        entries = {"memory_keys": keys, "memory_moves": moves}
        if paths is not None:
            path_of, steps, lengths = paths
            entries.update(memory_path_of=path_of, memory_paths=steps, memory_path_lengths=lengths)
            memory = {**memory, "paths": len(steps)}
        return self._with_memory("point_memory", memory, entries)

    def with_row_memory(
        self, memory: dict, codes: torch.Tensor, keys: torch.Tensor, moves: torch.Tensor
    ) -> LatentWorldModel:
        """This model with a row memory (LatentConfig.row_memory: `memory` without its size): per
        entry its action history's code (`action_history_code`), key (M, 2: the row's last move and
        its place) and the row's next move, in render pixels."""
        entries = {"row_codes": codes, "row_keys": keys, "row_moves": moves}
        return self._with_memory("row_memory", memory, entries)

    def _with_memory(self, name: str, memory: dict, entries: dict[str, torch.Tensor]) -> LatentWorldModel:
        """This model with config field `name` set to `memory` and its size, and the dynamics'
        buffers filled with `entries` (buffer name -> values); the other parts are this model's."""
        config = replace(self.config, **{name: {**memory, "entries": len(next(iter(entries.values())))}})
        model = LatentWorldModel(config).to(self.device)
        # the same parts but the memory, which is new (its size may differ from this model's)
        kept = {k: v for k, v in self.state_dict().items() if k.removeprefix("dynamics.") not in entries}
        model.load_state_dict(kept, strict=False)
        for buffer, values in entries.items():
            getattr(model.dynamics, buffer).copy_(values)
        return model

    def with_outcome_head(self, outcome_input: str = "latents") -> LatentWorldModel:
        """A model sharing all of this one's parts, plus a new, untrained outcome head reading
        `outcome_input` (LatentConfig)."""
        config = replace(self.config, outcome=True, outcome_input=outcome_input)
        model = LatentWorldModel(config).to(self.device)
        model.encoder, model.decoder, model.dynamics = self.encoder, self.decoder, self.dynamics
        model.calibration = self.calibration
        return model

    def with_reward_values(self, values: list[float]) -> LatentWorldModel:
        """This model (the same weights) snapping its predicted rewards to `values`
        (LatentConfig.reward_values; empty: not snapped)."""
        model = LatentWorldModel(replace(self.config, reward_values=values)).to(self.device)
        model.load_state_dict(self.state_dict())
        model.calibration = self.calibration
        return model.train(self.training)  # a model at inference stays there (it draws differently)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder(frames)

    def decode(
        self, z: torch.Tensor, ref_z: torch.Tensor, ref: torch.Tensor, action: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Draw the frame of latent z over the reference frame `ref` (whose latent is ref_z);
        `action` is the one that led to the frame (models with decoder_action draw it)."""
        return composite(*self.decode_parts(z, ref_z, ref, action))

    def decode_parts(
        self, z: torch.Tensor, ref_z: torch.Tensor, ref: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The decoder's colours (B, 3, H, W), mask in [0, 1] (B, 1, H, W) and the background
        (B, 3, H, W) they are composited over: the reference, moved where warp_reference says."""
        config = self.config
        if config.pose_bounds and not self.training:
            z = self.drawable_pose(z)
        inputs = [z, ref_z]
        if config.decoder_action:
            inputs.append(action_features(config, action, len(z), z.device).to(z.dtype))
        maps = None
        if config.object_maps:
            maps = torch.cat([point_maps(config, z.float()), point_maps(config, ref_z.float())], dim=1)
        features = torch.cat(inputs, dim=1)
        out = self.decoder(features, maps)
        background = ref
        if self.decoder.flow is not None:
            flow = self.decoder.flow_field(features)
            if config.relative_flow:  # minus the flow of the reference drawn as itself
                unmoved = ref_z if not config.pose_bounds or self.training else self.drawable_pose(ref_z)
                flow = flow - self.decoder.flow_field(torch.cat([unmoved, *inputs[1:]], dim=1))
            background = warp(ref, flow)
        return out[:, :3], torch.sigmoid(out[:, 3:4]), background

    def drawable_pose(self, z: torch.Tensor) -> torch.Tensor:
        """(B, Z) latents with the pose moved into its bounds and each point wholly in view or out
        of it (LatentConfig.pose_bounds): what the decoder draws at inference."""
        pose = z[:, : self.config.pose_dims]
        pose = torch.minimum(torch.maximum(pose, self.draw_low), self.draw_high)
        flags = torch.where(pose > self.draw_seen_level, self.draw_seen, self.draw_unseen)
        pose = torch.where(self.draw_seen_dims, flags, pose)
        return torch.cat([pose, z[:, self.config.pose_dims :]], dim=1)

    def start(
        self, frames: torch.Tensor, sample: bool = False, past: torch.Tensor | None = None
    ) -> LatentState:
        """frames uint8 (B, K, h, w, 3), oldest first; K <= context_frames. `past`: see the contract."""
        return self.start_float(to_float(frames), sample, past)

    def start_float(
        self, context: torch.Tensor, sample: bool = False, past: torch.Tensor | None = None
    ) -> LatentState:
        """context (B, K, 3, H, W) float in [0, 1], oldest first; K <= context_frames. With
        `sample`, rows after the first draw their start state (state dynamics only). `past`, the
        actions played into the last frame, reaches dynamics that take them (past_actions)."""
        b, k = context.shape[:2]
        z = self.encode(context.flatten(0, 1)).view(b, k, -1)
        missing = self.config.context_frames - k
        if missing > 0:  # fewer frames than the model can take: repeat the oldest (velocity unknown)
            z = torch.cat([z[:, :1].expand(b, missing, -1), z], dim=1)
        noise = None
        if sample and self.config.dynamics == "state":
            noise = torch.randn(b, self.config.state_dims, device=z.device)
            noise[0] = 0  # the first sample is the best guess
        state = self.dynamics.start(z[:, -self.config.context_frames :], noise, past)
        state.ref_z, state.ref = z[:, -1], context[:, -1]  # encoded once, drawn over every step
        if self.config.reencode_every:
            state.age = torch.zeros(b, device=z.device)
        return state

    def step(self, state: LatentState, actions: torch.Tensor) -> LatentState:
        every = self.config.reencode_every
        if every and state.age is not None:  # every N steps, go on from the frame last drawn
            due = (state.age > 0) & (state.age % every == 0)
            if torch.onnx.is_in_onnx_export() or bool(due.any()):  # a graph takes both ways
                state = replace(state, z=torch.where(due[:, None], self.seen(state), state.z))
        return self.dynamics.step(state, actions)

    def seen_latent(self, drawn: torch.Tensor) -> torch.Tensor:
        """(B, Z): the encoding of drawn frames (B, 3, H, W) in [0, 1], as a player sees them
        (in 8-bit colour): what the frames show, as the encoder reads any frame."""
        return self.encode((drawn * 255).round() / 255).float()

    def seen(self, state: LatentState) -> torch.Tensor:
        """`seen_latent` of the frame drawn from the state: kept on it where it was drawn already."""
        return self.seen_latent(self.render_float(state)) if state.seen is None else state.seen

    @property
    def reads_frames(self) -> bool:
        """Whether every step's outcome reads the frame drawn (so drawing it encodes it too)."""
        return self.outcome_head is not None and self.config.outcome_input == "frame"

    def render(self, state: LatentState) -> torch.Tensor:
        drawn = self.render_float(state)
        if self.reads_frames:
            state.seen = self.seen_latent(drawn)  # drawn once: the outcome reads it from here
        return to_uint8(drawn)

    def render_float(self, state: LatentState) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1]: what training scores."""
        return self.decode(state.z, state.ref_z, state.ref, state.action).clamp(0, 1)

    def render_many(self, states: list[LatentState]) -> torch.Tensor:
        """One decoder pass for all the states: uint8 (T, B, h, w, 3)."""
        t, b = len(states), states[0].z.shape[0]
        z = torch.cat([s.z for s in states])  # (T*B, Z), time-major
        ref_z = states[0].ref_z.repeat(t, 1)
        ref = states[0].ref.repeat(t, 1, 1, 1)
        stepped = all(s.action is not None for s in states)
        action = torch.cat([s.action for s in states]) if stepped else None
        drawn = self.decode(z, ref_z, ref, action).clamp(0, 1)
        if self.reads_frames:
            for state, seen in zip(states, self.seen_latent(drawn).view(t, b, -1), strict=True):
                state.seen = seen
        return to_uint8(drawn.view(t, b, *ref.shape[1:]))

    def outcome_logits(
        self, prev_z: torch.Tensor, z: torch.Tensor, seen: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(reward (B,), episode-ended logit (B,)) of the step from prev_z to z; a head reading the
        frame takes `seen`, the `seen_latent` of the frame drawn from z."""
        inputs = seen if self.config.outcome_input == "frame" else torch.cat([prev_z, z], dim=1)
        reward, ended = self.outcome_head(inputs).unbind(dim=1)
        return reward, ended

    def outcome(self, state: LatentState) -> Outcome:
        if self.outcome_head is None:
            return super().outcome(state)
        prev_z = state.z if state.prev_z is None else state.prev_z
        seen = self.seen(state) if self.reads_frames else None
        reward, ended = self.outcome_logits(prev_z, state.z, seen)
        return Outcome(reward=self.snap_reward(reward.float()), terminated=ended > 0)

    def snap_reward(self, reward: torch.Tensor) -> torch.Tensor:
        """(B,) regressed rewards -> each the nearest of the config's reward_values (as they are
        where there are none). The ONNX step graph runs it too (via `outcome`)."""
        if not self.config.reward_values:
            return reward
        nearest = (reward[:, None] - self.reward_values[None, :]).abs().argmin(dim=1)  # (B,)
        return self.reward_values[nearest]

    @torch.inference_mode()
    def reconstruct(self, frames: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (B, h, w, 3) frames encoded and drawn again over `reference` (h, w, 3), by
        default the first frame."""
        x = to_float(frames)
        ref = x[:1] if reference is None else to_float(reference[None])
        recon = self.decode(
            self.encode(x), self.encode(ref).expand(len(x), -1), ref.expand(len(x), -1, -1, -1)
        )
        return to_uint8(recon.clamp(0, 1))

    @torch.inference_mode()
    def redraw(self, frames: np.ndarray) -> np.ndarray:
        """Each frame decoded from its own latent over frame 0, as a rollout draws over its start
        (with no action: where a model draws the action, the frames alone do not say it)."""
        video = to_float(torch.tensor(frames, device=self.device))
        b, t = video.shape[:2]
        z = self.encode(video.flatten(0, 1)).view(b, t, -1)
        drawn = [video[:, 0]] + [self.decode(z[:, i], z[:, 0], video[:, 0]).clamp(0, 1) for i in range(1, t)]
        return to_uint8(torch.stack(drawn, dim=1)).cpu().numpy()


def drawing_limits(config: LatentConfig) -> dict[str, torch.Tensor]:
    """What `LatentWorldModel.drawable_pose` needs, per pose dim (pose_dims,), in normalised
    units: `low` and `high` bounds, `seen_dims` (True on the points' seen dims), and there the
    values `seen` and `unseen` mean and the `seen_level` between."""
    mean, std = torch.tensor(config.pose_mean), torch.tensor(config.pose_std)
    low, high = (torch.tensor(config.pose_bounds).T - mean) / std
    seen_dims = torch.zeros_like(mean, dtype=torch.bool)
    seen_dims[[seen_dim for *_, seen_dim in config.points]] = True
    seen, unseen = (1 - mean) / std, -mean / std
    return {
        "low": low,
        "high": high,
        "seen_dims": seen_dims,
        "seen": seen,
        "unseen": unseen,
        "seen_level": (seen + unseen) / 2,
    }


def composite(colours: torch.Tensor, mask: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """The decoder's colours where its mask is on, the (moved) reference frame's pixels elsewhere."""
    return mask * colours + (1 - mask) * background


def weighted_frame_loss(pred: torch.Tensor, target: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """MSE that counts pixels that changed from the reference frame (the objects) up to 20x more.

    Plain MSE on mostly static frames is dominated by background that copying gets right; the
    weight keeps the loss about the thin pole, the paddle and the ball.
    """
    weight = 1 + 19 * (target - ref).abs().amax(dim=-3, keepdim=True)
    return (weight * (pred - target) ** 2).mean()


def pose_loss(z: torch.Tensor, pose: torch.Tensor, weight: torch.Tensor | float = 1.0) -> torch.Tensor:
    """The first pose_dims of z should be the normalised visible simulator state (weighted per
    dim, or per frame and dim)."""
    return (weight * (z[:, : pose.shape[-1]] - pose) ** 2).mean()
