"""Objects read back from frames: PSNR is dominated by background, so evaluation also asks where
the things are. One reader per environment where that is simple; each returns named arrays with
NaN where the object is not in the frame (a cart driven off screen).

    >>> readout = read_objects(frames, get_spec("cartpole"))   # frames (N, 64, 160, 3) uint8
    >>> readout["cart_x"], readout["pole_angle_deg"]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from worldsim.envs import EnvSpec

# CartPole-v1's renderer: 600 px for 4.8 track units, axle 107.5 px above the bottom of a 400 px
# screen (cart top 115 minus a quarter of its 30 px height).
_CARTPOLE_PX_PER_UNIT = 600 / 4.8
_CARTPOLE_AXLE_ROW = 400 - 107.5


def read_cartpole(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """Cart position (track units) and pole angle (degrees, + leans right) per frame (N, h, w, 3)."""
    frames = frames.astype(np.float32)
    h, w = frames.shape[1:3]
    scale = (spec.crop.right - spec.crop.left) * 600 / w  # render pixels per model pixel
    top = spec.crop.top * 400
    rows = (np.arange(h) + 0.5) * scale + top  # pixel centres in render coordinates
    cols = (np.arange(w) + 0.5) * scale + spec.crop.left * 600
    # Cart: black; pixels blended with white keep brightness in proportion to coverage.
    cart = np.clip(1 - frames.max(axis=-1) / 255, 0, 1)
    cart[cart < 0.5] = 0  # the 1 px track line is light grey at this scale
    # Pole: the only colour with red well above blue (202, 152, 101); coverage from r - b.
    pole = np.clip((frames[..., 0] - frames[..., 2]) / 101, 0, 1)
    pole[pole < 0.2] = 0
    cart_mass = cart.sum(axis=(1, 2))
    pole_mass = pole.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        cart_col = (cart.sum(axis=1) * cols).sum(axis=1) / cart_mass
        pole_col = (pole.sum(axis=1) * cols).sum(axis=1) / pole_mass
        pole_row = (pole.sum(axis=2) * rows).sum(axis=1) / pole_mass
    # A cart partly off screen has a biased centre; call it missing unless mostly visible.
    full_cart = (50 * 30) / scale**2
    found = (cart_mass > 0.6 * full_cart) & (pole_mass > 3)
    cart_x = np.where(found, (cart_col - 300) / _CARTPOLE_PX_PER_UNIT, np.nan)
    angle = np.degrees(np.arctan2(pole_col - cart_col, _CARTPOLE_AXLE_ROW - pole_row))
    return {"cart_x": cart_x, "pole_angle_deg": np.where(found, angle, np.nan)}


OBJECT_READERS: dict[str, Callable[[np.ndarray, EnvSpec], dict[str, np.ndarray]]] = {
    "cartpole": read_cartpole,
}

# How to compare two readouts: angles wrap around.
ANGLE_KEYS = {"pole_angle_deg"}


def read_objects(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray] | None:
    """Named object positions per frame, or None where no reader exists for the environment."""
    reader = OBJECT_READERS.get(spec.name)
    return None if reader is None else reader(frames, spec)


def object_errors(pred: dict[str, np.ndarray], true: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Absolute error per key and frame; NaN where either frame lacks the object."""
    errors = {}
    for key in true:
        diff = pred[key] - true[key]
        if key in ANGLE_KEYS:
            diff = (diff + 180) % 360 - 180
        errors[key] = np.abs(diff)
    return errors
