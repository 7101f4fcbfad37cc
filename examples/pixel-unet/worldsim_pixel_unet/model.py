"""A pixel-space world model: a small U-Net that predicts the next frame from the last K frames.

    state   = the last K frames, uint8, oldest first (what the model sees; nothing hidden)
    step    : frames, action --U-Net--> residual;  next = round(last frame + residual)
    render  = the newest frame of the stack

No encoder, no latent, no recurrent state: the frame stack *is* the state, so the velocity of
the ball is whatever the last frames show. The network sees the newest frame and its differences
to the older ones, rearranged losslessly by pixel-unshuffle (2x2 pixels -> 12 channels, 4x fewer
positions), and goes down to 1/8 resolution and back up with additive skips. The action enters
every residual block by FiLM (a per-channel scale and shift). The output is a residual added to
the last frame, initialised at zero, so the untrained model copies its input, and the static
background costs nothing to learn. Each predicted frame is rounded to 8 bits, as a real frame is:
a small error in the background is rounded away instead of growing over a long rollout.

Compare worldsim.models.latent (the built-in kind): an autoencoder with a GRU stepping a 32-number
latent. That one rolls out for the cost of a decoder pass; this one pays a U-Net pass per step,
but it keeps every pixel it does not move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldsim.envs.spec import EnvSpec
from worldsim.models.base import Capabilities, PretrainedWorldModel, config_from_fields, to_float, to_uint8

FORMAT_VERSION = 1


@dataclass
class PixelUNetConfig:
    """Everything needed to rebuild the network; config.json holds it after `kind` and
    `format_version`."""

    env: EnvSpec  # the environment: actions, fps, the view (crop, height x width)
    context_frames: int = 4  # K: frames in the state; fewer start frames are padded with the oldest
    channels: tuple[int, int, int] = (32, 64, 128)  # widths at 1/2, 1/4 and 1/8 resolution
    middle_blocks: int = 2  # residual blocks at 1/8 resolution
    action_embed_dim: int = 64

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if not isinstance(self.env, EnvSpec):
            raise ValueError(f"env must be an environment description, got {type(self.env).__name__}")
        if not isinstance(self.context_frames, int) or not 1 <= self.context_frames <= 16:
            raise ValueError(f"context_frames must be an integer in 1..16, got {self.context_frames!r}")
        if len(self.channels) != 3 or not all(isinstance(c, int) and 1 <= c <= 1024 for c in self.channels):
            raise ValueError(f"channels must be three integers in 1..1024, got {list(self.channels)}")
        for name in ("middle_blocks", "action_embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 1024:
                raise ValueError(f"{name} must be an integer in 1..1024, got {value!r}")
        if self.env.height % 8 or self.env.width % 8:
            raise ValueError(
                f"height and width must be multiples of 8, got {self.env.height}x{self.env.width}"
            )

    def to_dict(self) -> dict:
        return {**asdict(self), "env": self.env.to_dict(), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict) -> PixelUNetConfig:
        """Validate names and values before anything is built (worldsim calls this on load)."""
        data = dict(data)
        data.pop("kind", None)
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(
                f"pixel-unet config format_version must be {FORMAT_VERSION}, got {version!r} "
                "(a newer one needs a newer worldsim-pixel-unet)"
            )
        return config_from_fields(cls, data)


@dataclass
class FrameStack:
    """The state: K uint8 frames (B, h, w, 3) each, oldest first. Frames are shared between
    successive states (a step makes one new frame), so keeping every state of a game is cheap."""

    frames: tuple[torch.Tensor, ...]


class FiLMBlock(nn.Module):
    """x + conv(silu(conv(silu(x)) * (1 + scale) + shift)), scale and shift from the action."""

    def __init__(self, channels: int, embed_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
        h = self.conv1(F.silu(x)) * (1 + scale) + shift
        return x + self.conv2(F.silu(h))


class UNet(nn.Module):
    """(B, K, 3, H, W) in [0, 1] and an action embedding -> residual (B, 3, H, W)."""

    def __init__(self, config: PixelUNetConfig):
        super().__init__()
        c0, c1, c2 = config.channels
        e = config.action_embed_dim
        self.inp = nn.Conv2d(12 * config.context_frames, c0, 3, padding=1)  # after pixel-unshuffle(2)
        self.enc0 = FiLMBlock(c0, e)
        self.down1 = nn.Conv2d(c0, c1, 4, stride=2, padding=1)  # 1/4
        self.enc1 = FiLMBlock(c1, e)
        self.down2 = nn.Conv2d(c1, c2, 4, stride=2, padding=1)  # 1/8
        self.middle = nn.ModuleList(FiLMBlock(c2, e) for _ in range(config.middle_blocks))
        self.up1 = nn.Conv2d(c2, c1, 3, padding=1)
        self.dec1 = FiLMBlock(c1, e)
        self.up0 = nn.Conv2d(c1, c0, 3, padding=1)
        self.dec0 = FiLMBlock(c0, e)
        self.out = nn.Conv2d(c0, 12, 3, padding=1)  # pixel-shuffled back to (3, H, W)
        nn.init.zeros_(self.out.weight)  # the untrained model copies the last frame
        nn.init.zeros_(self.out.bias)

    def forward(self, frames: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        last = frames[:, -1]
        # the newest frame and what changed since each older one (motion), centred on zero
        x = torch.cat([last * 2 - 1, (last[:, None] - frames[:, :-1]).flatten(1, 2)], dim=1)
        x = self.inp(F.pixel_unshuffle(x.contiguous(memory_format=torch.channels_last), 2))
        s0 = self.enc0(x, embedding)
        s1 = self.enc1(self.down1(s0), embedding)
        x = self.down2(s1)
        for block in self.middle:
            x = block(x, embedding)
        x = self.dec1(self.up1(F.interpolate(x, scale_factor=2.0, mode="nearest")) + s1, embedding)
        x = self.dec0(self.up0(F.interpolate(x, scale_factor=2.0, mode="nearest")) + s0, embedding)
        return F.pixel_shuffle(self.out(F.silu(x)), 2)


class PixelUNetWorldModel(PretrainedWorldModel):
    """The `pixel-unet` kind (see the module docstring)."""

    kind = "pixel-unet"
    config_class = PixelUNetConfig
    format_version = FORMAT_VERSION
    capabilities = Capabilities()  # start, step and render only: no sampling, outcome or encoder

    def __init__(self, config: PixelUNetConfig):
        super().__init__(config)
        spec = config.env
        self.embed_action = (
            nn.Embedding(spec.num_actions, config.action_embed_dim)
            if spec.action_kind == "discrete"
            else nn.Linear(spec.num_actions, config.action_embed_dim)
        )
        self.unet = UNet(config)
        self.to(memory_format=torch.channels_last)

    # --- the float core: training calls these ---------------------------------------------------

    def embed(self, actions: torch.Tensor) -> torch.Tensor:
        return self.embed_action(actions if isinstance(self.embed_action, nn.Embedding) else actions.float())

    def predict(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """frames float (B, K, 3, H, W) in [0, 1], oldest first -> the next frame, float
        (B, 3, H, W), not clamped or rounded."""
        return frames[:, -1] + self.unet(frames, self.embed(actions)).float()

    # --- the contract ----------------------------------------------------------------------------

    def start(self, frames: torch.Tensor, sample: bool = False) -> FrameStack:
        """frames uint8 (B, K, h, w, 3), 1 <= K <= context_frames; the oldest is repeated to fill
        the stack (a single start frame shows no motion). `sample` is ignored: no sampling."""
        frames = frames.to(self.device)
        k = frames.shape[1]
        if not 1 <= k <= self.context_frames:
            raise ValueError(f"start takes 1 to {self.context_frames} frames, got {k}")
        stack = [frames[:, 0]] * (self.context_frames - k) + list(frames.unbind(1))
        return FrameStack(tuple(stack))

    def step(self, state: FrameStack, actions: torch.Tensor) -> FrameStack:
        frames = to_float(torch.stack(state.frames, dim=1))
        with torch.inference_mode():
            nxt = to_uint8(self.predict(frames, actions.to(self.device)).clamp(0, 1))
        return FrameStack((*state.frames[1:], nxt))

    def render(self, state: FrameStack) -> torch.Tensor:
        return state.frames[-1]
