"""The dream beside the truth: model and simulator frames side by side, with their difference.

panels = side_by_side([predicted, real, difference(predicted, real)], ["model", "simulator", "|difference|"])
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from worldsim.evaluation.metrics import psnr
from worldsim.media.video import MIN_SHORT_SIDE
from worldsim.models.base import to_float

HEADER = 28  # px of label strip above the panels
GAP = 6  # px between panels


def difference(pred: np.ndarray, true: np.ndarray, gain: float = 3.0) -> np.ndarray:
    """|pred - true| per pixel, amplified `gain` times so small errors show: white where the two
    agree, deepening to red where they differ. uint8 (..., 3)."""
    diff = np.abs(pred.astype(np.int16) - true.astype(np.int16)).max(axis=-1)
    fade = 255 - np.clip(diff * gain, 0, 255).astype(np.uint8)
    return np.stack([np.full_like(fade, 255), fade, fade], axis=-1)


def per_step_psnr(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """PSNR in dB of each frame pair: (T, h, w, 3) uint8 twice -> (T,)."""
    return psnr(to_float(torch.tensor(pred)), to_float(torch.tensor(true))).numpy()


def resize_video(video: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, h, w, 3) -> (T, height, width, 3), bilinear; the video itself when sizes agree (two
    models of one environment may see it at different resolutions)."""
    if video.shape[1:3] == (height, width):
        return video
    size = (width, height)
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR)) for f in video])


def side_by_side(panels: list[np.ndarray], labels: list[str], columns: int | None = None) -> np.ndarray:
    """Equal-size videos (T, h, w, 3) -> one video (T, H, W, 3), each panel under its label.

    Panels are upscaled with nearest-neighbour so the short side reaches the video minimum. By
    default they are stacked across the short side (wide CartPole frames one above the other,
    square ones in a row), so the result stays close to a screen's shape and the labels stay
    legible; `columns` lays them out in a grid instead (for many samples).
    """
    t, h, w, _ = panels[0].shape
    k = max(1, math.ceil(MIN_SHORT_SIDE / min(h, w)))
    tiles = []
    for panel, label in zip(panels, labels, strict=True):
        header = Image.new("RGB", (w * k, HEADER), "white")
        ImageDraw.Draw(header).text((6, 4), label, fill="black", font=ImageFont.load_default(size=18))
        tile = np.empty((t, HEADER + h * k, w * k, 3), np.uint8)
        tile[:, :HEADER] = np.asarray(header)
        tile[:, HEADER:] = panel.repeat(k, axis=1).repeat(k, axis=2)
        tiles.append(tile)
    if columns is None:
        return _join(tiles, axis=1 if w > h else 2)
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % columns)
    rows = [_join(tiles[i : i + columns], axis=2) for i in range(0, len(tiles), columns)]
    return _join(rows, axis=1)


def _join(tiles: list[np.ndarray], axis: int) -> np.ndarray:
    """Concatenate videos along an image axis (1: rows, 2: columns) with white gaps between."""
    gap_shape = list(tiles[0].shape)
    gap_shape[axis] = GAP
    gap = np.full(gap_shape, 255, np.uint8)
    joined = [tiles[0]]
    for tile in tiles[1:]:
        joined += [gap, tile]
    return np.concatenate(joined, axis=axis)


def uncertainty(samples: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """Per-pixel spread of sampled videos (S, T, h, w, 3) -> video (T, h, w, 3): white where the
    samples agree, deepening to blue where they disagree (standard deviation, amplified)."""
    spread = samples.astype(np.float32).std(axis=0).max(axis=-1)
    fade = 255 - np.clip(spread * gain, 0, 255).astype(np.uint8)
    return np.stack([fade, fade, np.full_like(fade, 255)], axis=-1)
