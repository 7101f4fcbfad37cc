"""The world model: a frame autoencoder with recurrent dynamics in its latent space.

Design (World Models / Dreamer, small enough for 2 CPU cores):

    frame --encoder--> z  (latent_dim; the first pose_dims of z are trained to be the simulator's
                           visible state, e.g. cart position and pole angle, normalised)
    K context latents --init--> h           (GRU state: what one frame cannot show, e.g. velocity)
    (z_t, a_t, h_t) --GRUCell--> h_{t+1};  z_{t+1} = z_t + delta(h_{t+1})
    (z, z_ref) --decoder--> colours + mask;  frame = mask * colours + (1 - mask) * reference frame

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
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldsim.envs.spec import EnvSpec, get_spec, preprocess

CONFIG_FORMAT_VERSION = 2
# Frames decoded per pass when imagining a whole sequence. Batching the decoder over time is the
# biggest CPU speed-up (CartPole, batch 1: 186 -> 440 frames/s); much larger passes get slower
# again (memory bound), see docs/performance.md.
RENDER_FRAMES = 64


@dataclass
class WorldModelConfig:
    """Everything needed to rebuild a model; saved as config.json beside the weights."""

    env: str  # environment spec name, e.g. "cartpole"
    height: int  # frame size the model reads and draws; multiples of 16
    width: int
    action_kind: str  # "discrete" | "continuous"
    num_actions: int  # discrete: number of actions; continuous: action dimensions
    kind: str = "latent"  # model family, a key of MODEL_KINDS
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
    format_version: int = CONFIG_FORMAT_VERSION

    def __post_init__(self):
        self.channels = tuple(self.channels)
        get_spec(self.env)  # unknown environment: KeyError naming the known ones
        sizes = {
            "height": self.height,
            "width": self.width,
            "latent_dim": self.latent_dim,
            "hidden_dim": self.hidden_dim,
            "context_frames": self.context_frames,
            "num_actions": self.num_actions,
            "action_embed_dim": self.action_embed_dim,
        }
        for name, value in sizes.items():
            if not isinstance(value, int) or not 0 < value <= 4096:
                raise ValueError(f"{name} must be an integer in 1..4096, got {value!r}")
        if self.height % 16 or self.width % 16:
            raise ValueError(f"height and width must be multiples of 16, got {self.height}x{self.width}")
        if self.dynamics not in DYNAMICS_KINDS:
            raise ValueError(f"dynamics must be one of {sorted(DYNAMICS_KINDS)}, got {self.dynamics!r}")
        if self.dynamics == "state" and not (
            0 < self.state_dims == len(self.state_mean) == len(self.state_std)
        ):
            raise ValueError(
                "state dynamics need state_dims > 0 and a state_mean and state_std of that length"
            )

    @classmethod
    def for_env(cls, spec: EnvSpec, **overrides) -> WorldModelConfig:
        return cls(
            env=spec.name,
            height=spec.height,
            width=spec.width,
            action_kind=spec.action_kind,
            num_actions=spec.num_actions,
            **overrides,
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> WorldModelConfig:
        """Upgrades older formats, then validates field names and values before anything is built."""
        version = data.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"config.json format_version must be a positive integer, got {version!r}")
        if version > CONFIG_FORMAT_VERSION:
            raise ValueError(
                f"config.json format_version {version} was written by a newer worldsim; this one reads "
                f"versions up to {CONFIG_FORMAT_VERSION}: upgrade worldsim to load it."
            )
        while version < CONFIG_FORMAT_VERSION:  # each step rewrites one format into the next
            data = CONFIG_UPGRADES[version](data)
            version = data["format_version"]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"config.json has unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


# format_version N -> a function turning an N config dict into an N+1 one. Version 1 is the first.
CONFIG_UPGRADES: dict[int, Callable[[dict], dict]] = {
    1: lambda data: {**data, "format_version": 2},  # 2 added state dynamics; 1 was all GRU
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

    def next(self, z: torch.Tensor, h: torch.Tensor) -> LatentState:
        return LatentState(z=z, h=h, ref_z=self.ref_z, ref=self.ref, offset=self.offset)


class ConvEncoder(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, latent_dim). Pixel-unshuffle first: 4x cheaper convolutions."""

    def __init__(self, config: WorldModelConfig):
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


class ConvDecoder(nn.Module):
    """(B, 2 * latent_dim) -> (B, 4, H, W): colours and mask logit, from target and reference z."""

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        c0, c1, c2 = config.channels
        self.grid = (c2, config.height // 16, config.width // 16)
        self.project = nn.Linear(2 * config.latent_dim, math.prod(self.grid))
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

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, *self.grid))


def action_embedding(config: WorldModelConfig) -> nn.Module:
    """A lookup table for discrete actions, a linear map for continuous ones."""
    if config.action_kind == "discrete":
        return nn.Embedding(config.num_actions, config.action_embed_dim)
    return nn.Linear(config.num_actions, config.action_embed_dim)


def embed_actions(embedding: nn.Module, actions: torch.Tensor) -> torch.Tensor:
    """(B,) int64 discrete or (B, D) continuous actions -> (B, action_embed_dim)."""
    return embedding(actions if isinstance(embedding, nn.Embedding) else actions.float())


class LatentDynamics(nn.Module):
    """GRU over latents: K context latents -> h; (z_t, a_t, h_t) -> (z_{t+1}, h_{t+1})."""

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        z, hidden = config.latent_dim, config.hidden_dim
        self.embed_action = action_embedding(config)
        # Context enters as the last latent plus its differences to the earlier ones (velocity).
        self.init = nn.Sequential(nn.Linear(config.context_frames * z, hidden), nn.Tanh())
        self.cell = nn.GRUCell(z + config.action_embed_dim, hidden)
        self.delta = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, z))

    def start(self, context: torch.Tensor, noise: torch.Tensor | None = None) -> LatentState:
        """context (B, K, Z), oldest first -> state at the last context frame. A GRU does not
        sample: `noise` is ignored."""
        return LatentState(z=context[:, -1], h=self.init(context_features(context)))

    def step(self, state: LatentState, actions: torch.Tensor) -> LatentState:
        """actions: (B,) int64 for discrete, (B, D) float for continuous."""
        h = self.cell(torch.cat([state.z, embed_actions(self.embed_action, actions)], dim=1), state.h)
        return state.next(z=state.z + self.delta(h), h=h)


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

    def __init__(self, config: WorldModelConfig):
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

    def start(self, context: torch.Tensor, noise: torch.Tensor | None = None) -> LatentState:
        """`noise` (B, S), standard normal, draws the start state; None takes the mean."""
        mean, log_std = self.estimate_state(context)
        state = mean if noise is None else mean + noise * log_std.exp()
        return self.start_from(context[:, -1], state)

    def start_from(self, z: torch.Tensor, state: torch.Tensor) -> LatentState:
        return LatentState(z=z, h=state, offset=z - self.readout(state))

    def step(self, state: LatentState, actions: torch.Tensor) -> LatentState:
        s = state.h + self.transition(torch.cat([state.h, embed_actions(self.embed_action, actions)], dim=1))
        return state.next(z=state.offset + self.readout(s), h=s)


DYNAMICS_KINDS = {"gru": LatentDynamics, "state": StateDynamics}


class WorldModel(nn.Module):
    """What every worldsim model is: an environment you can imagine in, batched.

    Subclasses implement three steps on float tensors in [0, 1]:
        start(context (B, K, 3, H, W), sample) -> state  from 1..K start frames, oldest first;
                                                     sample=True draws what the frames leave open
        step(state, actions (B,) or (B, D)) -> state one environment step
        render(state) -> frames (B, 3, H, W)
    and inherit `imagine` (uint8 in, uint8 out, batched) and `rollout` (any image, action text).
    """

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        self.config = config
        self.spec = get_spec(config.env)
        self.calibration: dict | None = None  # familiarity of uploads, see worldsim.evaluation.familiarity

    def start(self, context: torch.Tensor, sample: bool = False):
        raise NotImplementedError

    def step(self, state, actions: torch.Tensor):
        raise NotImplementedError

    def render(self, state) -> torch.Tensor:
        raise NotImplementedError

    def render_many(self, states: list) -> torch.Tensor:
        """Frames of several states at once: (T, B, 3, H, W). Override to batch the work."""
        return torch.stack([self.render(state) for state in states])

    def redraw(self, frames: np.ndarray) -> np.ndarray | None:
        """True frames uint8 (B, T+1, h, w, 3) as the model would draw them if it predicted their
        latents exactly, or None where that has no meaning. Evaluation compares it with the
        rollout: what the drawing costs, and what the dynamics cost."""
        return None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prepare_context(self, start: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """One frame (H, W, 3) or up to K frames (K, H, W, 3) of any size -> (K, h, w, 3) uint8."""
        frames = [start] if isinstance(start, np.ndarray) and start.ndim == 3 else list(start)
        if not frames:
            raise ValueError("No start frame given.")
        frames = frames[-self.config.context_frames :]
        return np.stack([preprocess(np.asarray(frame), self.spec) for frame in frames])

    @torch.inference_mode()
    def imagine(
        self, context: np.ndarray, actions: np.ndarray, progress=None, sample: bool = False
    ) -> np.ndarray:
        """Batched rollout: context uint8 (B, K, h, w, 3) at model resolution, actions (B, T, ...)
        -> uint8 (B, T+1, h, w, 3), frame 0 being the last context frame. With `sample`, each
        row draws its own future (torch's RNG) where the model can sample."""
        batch = torch.tensor(context, dtype=torch.uint8, device=self.device)
        action_tensor = torch.as_tensor(actions, device=self.device)
        state = self.start(to_float(batch), sample=sample)
        states = []
        for t in range(action_tensor.shape[1]):  # stepping is cheap; drawing is the work
            state = self.step(state, action_tensor[:, t])
            states.append(state)
        per_pass = max(1, RENDER_FRAMES // batch.shape[0])  # steps drawn per decoder pass
        chunks = range(0, len(states), per_pass)
        frames = [batch[:, -1][None]]
        for start in chunks if progress is None else progress(chunks):
            frames.append(to_uint8(self.render_many(states[start : start + per_pass])))
        return torch.cat(frames).transpose(0, 1).cpu().numpy()

    def rollout(
        self,
        start: np.ndarray | list[np.ndarray],
        actions,
        seed: int | None = None,
        num_samples: int = 1,
        progress=None,
    ) -> np.ndarray:
        """Imagine the future from start frame(s) under `actions` (text or a sequence).

        start: one RGB uint8 frame (H, W, 3) of any size, or up to K frames, oldest first.
        Returns uint8 (T+1, h, w, 3): frame 0 is the last start frame as the model sees it,
        frame t the prediction after t actions: the model's best guess. With num_samples > 1:
        (S, T+1, h, w, 3), sample 0 the best guess and the others drawn from what the start
        frames leave open (e.g. velocities one frame cannot show); `seed` makes them repeatable.
        A model that cannot sample returns identical samples.
        """
        from worldsim.envs.actions import parse_actions

        parsed = parse_actions(actions, self.spec)
        if seed is not None:
            torch.manual_seed(seed)
        context = np.repeat(self.prepare_context(start)[None], num_samples, axis=0)
        video = self.imagine(
            context, np.repeat(parsed[None], num_samples, axis=0), progress, sample=num_samples > 1
        )
        return video[0] if num_samples == 1 else video


class LatentWorldModel(WorldModel):
    """Autoencoder + latent dynamics (see the module docstring)."""

    def __init__(self, config: WorldModelConfig):
        super().__init__(config)
        self.encoder = ConvEncoder(config)
        self.decoder = ConvDecoder(config)
        self.dynamics = DYNAMICS_KINDS[config.dynamics](config)
        # Channels-last convolutions: 1.8x faster decoding on this CPU (docs/performance.md).
        self.to(memory_format=torch.channels_last)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder(frames)

    def decode(self, z: torch.Tensor, ref_z: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Draw the frame of latent z over the reference frame `ref` (whose latent is ref_z)."""
        return composite(*self.decode_parts(z, ref_z), ref)

    def decode_parts(self, z: torch.Tensor, ref_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's colours (B, 3, H, W) and mask in [0, 1] (B, 1, H, W) before compositing."""
        out = self.decoder(torch.cat([z, ref_z], dim=1))
        return out[:, :3], torch.sigmoid(out[:, 3:4])

    def start(self, context: torch.Tensor, sample: bool = False) -> LatentState:
        """context (B, K, 3, H, W) float in [0, 1], oldest first; K <= context_frames. With
        `sample`, rows after the first draw their start state (state dynamics only)."""
        b, k = context.shape[:2]
        z = self.encode(context.flatten(0, 1)).view(b, k, -1)
        missing = self.config.context_frames - k
        if missing > 0:  # fewer frames than the model can take: repeat the oldest (velocity unknown)
            z = torch.cat([z[:, :1].expand(b, missing, -1), z], dim=1)
        noise = None
        if sample and self.config.dynamics == "state":
            noise = torch.randn(b, self.config.state_dims, device=z.device)
            noise[0] = 0  # the first sample is the best guess
        state = self.dynamics.start(z[:, -self.config.context_frames :], noise)
        state.ref_z, state.ref = z[:, -1], context[:, -1]  # encoded once, drawn over every step
        return state

    def step(self, state: LatentState, actions: torch.Tensor) -> LatentState:
        return self.dynamics.step(state, actions)

    def render(self, state: LatentState) -> torch.Tensor:
        return self.decode(state.z, state.ref_z, state.ref).clamp(0, 1)

    @torch.inference_mode()
    def redraw(self, frames: np.ndarray) -> np.ndarray:
        """Each frame decoded from its own latent over frame 0, as a rollout draws over its start."""
        video = to_float(torch.tensor(frames, device=self.device))
        b, t = video.shape[:2]
        z = self.encode(video.flatten(0, 1)).view(b, t, -1)
        drawn = [video[:, 0]] + [self.decode(z[:, i], z[:, 0], video[:, 0]).clamp(0, 1) for i in range(1, t)]
        return to_uint8(torch.stack(drawn, dim=1)).cpu().numpy()

    def render_many(self, states: list[LatentState]) -> torch.Tensor:
        """One decoder pass for all the states: (T, B, 3, H, W)."""
        t, b = len(states), states[0].z.shape[0]
        z = torch.cat([s.z for s in states])  # (T*B, Z), time-major
        ref_z = states[0].ref_z.repeat(t, 1)
        ref = states[0].ref.repeat(t, 1, 1, 1)
        return self.decode(z, ref_z, ref).clamp(0, 1).view(t, b, *ref.shape[1:])


MODEL_KINDS = {"latent": LatentWorldModel}


def build_model(config: WorldModelConfig) -> WorldModel:
    if config.kind not in MODEL_KINDS:
        raise ValueError(f"Unknown model kind {config.kind!r}; known: {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[config.kind](config)


def composite(colours: torch.Tensor, mask: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The decoder's colours where its mask is on, the reference frame's own pixels elsewhere."""
    return mask * colours + (1 - mask) * ref


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1]."""
    return frames.movedim(-1, -3).float() / 255


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """float (..., 3, H, W) in [0, 1] -> uint8 (..., H, W, 3)."""
    return (frames.movedim(-3, -1) * 255).round().clamp(0, 255).to(torch.uint8)


def weighted_frame_loss(pred: torch.Tensor, target: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """MSE that counts pixels that changed from the reference frame (the objects) up to 20x more.

    Plain MSE on mostly static frames is dominated by background that copying gets right; the
    weight keeps the loss about the thin pole, the paddle and the ball.
    """
    weight = 1 + 19 * (target - ref).abs().amax(dim=-3, keepdim=True)
    return (weight * (pred - target) ** 2).mean()


def pose_loss(z: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """The first pose_dims of z should be the normalised visible simulator state."""
    return F.mse_loss(z[:, : pose.shape[-1]], pose)
