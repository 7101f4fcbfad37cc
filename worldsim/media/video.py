"""Video: browser-playable H.264 MP4 (and GIF) from uint8 frames, every frame kept.

Frames are upscaled with nearest-neighbour to at least 256 px on the short side first: at 64 px,
H.264's 4:2:0 chroma subsampling smears a 2-pixel pole or a 1-pixel ball into the background.

MP4s go through moviepy's ffmpeg writer frame by frame, not through ImageSequenceClip: the clip
derives frames from float timestamps and, in moviepy 2.2, drops the last frame (12 frames at
50 fps became 11) or repeats one (61 at 15 fps). A world model's video must show every step.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

MIN_SHORT_SIDE = 256


def upscale(frames: np.ndarray, min_short_side: int = MIN_SHORT_SIDE) -> np.ndarray:
    """(T, H, W, 3) -> (T, kH, kW, 3) with the smallest integer k reaching min_short_side, and
    even sizes (H.264 with yuv420p needs them)."""
    h, w = frames.shape[1:3]
    k = max(1, math.ceil(min_short_side / min(h, w)))
    frames = frames.repeat(k, axis=1).repeat(k, axis=2)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def write_video(frames: np.ndarray, path: str | Path, fps: float) -> Path:
    """Write uint8 frames (T, H, W, 3) as .mp4 (H.264, yuv420p) or .gif at `fps`."""
    from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter

    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"Expected uint8 frames (T, H, W, 3); got {frames.dtype} {frames.shape}.")
    big = upscale(frames)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        images = [Image.fromarray(frame) for frame in big]
        duration_ms = round(1000 / fps)
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    elif suffix == ".mp4":
        height, width = big.shape[1:3]
        with FFMPEG_VideoWriter(
            str(path),
            size=(width, height),
            fps=fps,
            codec="libx264",
            preset="fast",
            pixel_format="yuv420p",  # what browsers play
            ffmpeg_params=["-crf", "18", "-movflags", "+faststart"],
        ) as writer:
            for frame in big:
                writer.write_frame(frame)
    else:
        raise ValueError(f"Unsupported video type {path.suffix!r}; use .mp4 or .gif.")
    return path
