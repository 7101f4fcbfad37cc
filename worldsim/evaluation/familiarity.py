"""Does an upload look like the frames a model was trained on?

A model's autoencoder redraws a frame over a fixed reference frame from its training data. Frames
like the training data come back almost exactly; anything else (another game, a photo, a
different colour scheme) does not, because the decoder only knows how to paint this
environment's objects. The reconstruction PSNR is the score, and calibration on held-out episodes
sets the threshold: the PSNR that `coverage` (99%) of held-out frames reach.

The calibration lives beside the weights as calibration.json (written at the end of training, or
by `python -m worldsim calibrate --model NAME`), with the reference frame as a base64 PNG.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from worldsim.evaluation.metrics import psnr
from worldsim.models.base import WorldModel, to_float

CALIBRATION_FILE = "calibration.json"
COVERAGE = 0.99  # share of held-out frames that count as familiar


@dataclass(frozen=True)
class Familiarity:
    psnr: float  # the frame's reconstruction PSNR over the reference, dB
    threshold: float  # the PSNR that `coverage` of held-out frames reach
    coverage: float

    @property
    def familiar(self) -> bool:
        return self.psnr >= self.threshold


@torch.inference_mode()
def reconstruction_psnr(model: WorldModel, frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """uint8 frames (N, h, w, 3) at model resolution -> PSNR (N,) of their reconstruction by the
    model's encoder (capability `encoder`), drawn over `reference` (h, w, 3)."""
    out = []
    ref = torch.from_numpy(reference).to(model.device)
    for chunk in np.array_split(frames, max(1, len(frames) // 256)):
        x = torch.from_numpy(chunk).to(model.device)
        out.append(psnr(to_float(model.reconstruct(x, ref)), to_float(x)).cpu().numpy())
    return np.concatenate(out)


def calibrate(model: WorldModel, held_out: np.ndarray, reference: np.ndarray) -> dict:
    """Calibration from held-out frames (N, h, w, 3) and a reference training frame."""
    scores = reconstruction_psnr(model, held_out, reference)
    buffer = io.BytesIO()
    Image.fromarray(reference).save(buffer, format="PNG")
    return {
        "threshold_psnr": float(np.quantile(scores, 1 - COVERAGE)),
        "coverage": COVERAGE,
        "median_psnr": float(np.median(scores)),
        "frames": len(held_out),
        "reference_png": base64.b64encode(buffer.getvalue()).decode("ascii"),
    }


def save_calibration(calibration: dict, folder: str | Path) -> None:
    (Path(folder) / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=1))


def read_calibration(folder: str | Path) -> dict | None:
    """The folder's calibration (reference decoded to an array), or None if it has none or it is
    unreadable: familiarity is advice, never a reason to refuse a model."""
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file() or path.stat().st_size > 1_000_000:
        return None
    try:
        data = json.loads(path.read_text())
        png = base64.b64decode(data["reference_png"], validate=True)
        reference = np.array(Image.open(io.BytesIO(png)).convert("RGB"))  # writable, for torch
        return {**data, "reference": reference, "threshold_psnr": float(data["threshold_psnr"])}
    except (ValueError, KeyError, TypeError, OSError):
        return None


def familiarity(model: WorldModel, frame: np.ndarray) -> Familiarity | None:
    """How a start frame (at model resolution) scores; None for a model without calibration."""
    calibration = model.calibration if model.capabilities.encoder else None
    if calibration is None or calibration["reference"].shape != frame.shape:
        return None
    score = float(reconstruction_psnr(model, frame[None], calibration["reference"])[0])
    return Familiarity(score, calibration["threshold_psnr"], float(calibration["coverage"]))
