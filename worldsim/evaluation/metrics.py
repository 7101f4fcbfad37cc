"""Frame metrics: PSNR and SSIM between predicted and true frames (float tensors (..., 3, H, W)
in [0, 1], one value per frame), and per horizon over a batch of rollouts, with the objects read
back from the frames (`per_step_metrics`, which `eval` and the app's examples report).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from worldsim.envs.objects import object_errors, read_objects
from worldsim.envs.spec import EnvSpec
from worldsim.models.base import to_float

# Ball recall (issue 15's bar): in at least 80% of the frames h=5..60 where the simulator shows the
# ball, the model shows one within 3 of its own pixels; Breakout's is reported at h=30 too.
BALL_RADIUS = 3.0
BALL_HORIZONS = (5, 60)
BALL_BAR = 0.8
MSE_FLOOR = 1e-10  # identical frames score 100 dB instead of infinity, so means stay finite


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per frame."""
    mse = ((pred.float() - target.float()) ** 2).mean(dim=(-3, -2, -1))
    return -10 * torch.log10(mse.clamp_min(MSE_FLOOR))


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) with a Gaussian window, averaged over channels."""
    shape = pred.shape[:-3]
    x = pred.float().reshape(-1, *pred.shape[-3:])
    y = target.float().reshape(-1, *target.shape[-3:])
    channels = x.shape[1]
    coords = torch.arange(window, dtype=torch.float32) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.device)
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, window, window).contiguous()

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, kernel, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(-3, -2, -1)).reshape(shape)


def edge_energy(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute spatial gradient per frame: falls when predictions blur or fade to the mean."""
    dx = (frames[..., :, 1:] - frames[..., :, :-1]).abs().mean(dim=(-3, -2, -1))
    dy = (frames[..., 1:, :] - frames[..., :-1, :]).abs().mean(dim=(-3, -2, -1))
    return dx + dy


def per_step_metrics(
    pred: np.ndarray, true: np.ndarray, spec: EnvSpec, redrawn: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """pred, true: uint8 (B, T+1, h, w, 3) -> metric name -> (T+1,) mean over episodes, for the
    model and for the copy-the-start-frame baseline; with `redrawn` (the true frames as the model
    draws them, `WorldModel.redraw`) also the PSNR of that drawing: what predicting the true
    latents would reach."""
    pred_t, true_t = to_float(torch.from_numpy(pred)), to_float(torch.from_numpy(true))
    copy_t = true_t[:, :1].expand_as(true_t)
    out = {
        "psnr": psnr(pred_t, true_t).mean(0).numpy(),
        "psnr_copy": psnr(copy_t, true_t).mean(0).numpy(),
        "ssim": ssim(pred_t, true_t).mean(0).numpy(),
        "ssim_copy": ssim(copy_t, true_t).mean(0).numpy(),
        "edge_ratio": (edge_energy(pred_t) / edge_energy(true_t).clamp_min(1e-8)).mean(0).numpy(),
    }
    if redrawn is not None:
        out["psnr_redraw"] = psnr(to_float(torch.from_numpy(redrawn)), true_t).mean(0).numpy()
    b, t = pred.shape[:2]
    true_objects = read_objects(true.reshape(b * t, *true.shape[2:]), spec)
    if true_objects is not None:
        pred_objects = read_objects(pred.reshape(b * t, *pred.shape[2:]), spec)
        copy_objects = {
            k: np.repeat(v.reshape(b, t)[:, :1], t, axis=1).ravel() for k, v in true_objects.items()
        }
        for name, errors in (
            ("", object_errors(pred_objects, true_objects)),
            ("_copy", object_errors(copy_objects, true_objects)),
        ):
            for key, error in errors.items():
                with warnings.catch_warnings():  # all-NaN horizons (cart off screen) stay NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    out[f"{key}_error{name}"] = np.nanmean(error.reshape(b, t), axis=0)
        # Share of the frames showing an object in which the prediction shows it too; the worst
        # object counts (a Breakout model that keeps the paddle but loses the ball fails).
        shares = []
        for key, true_values in true_objects.items():
            visible = ~np.isnan(true_values).reshape(b, t)
            found = ~np.isnan(pred_objects[key]).reshape(b, t)
            seen = visible.sum(0)
            shares.append(np.where(seen > 0, (found & visible).sum(0) / np.maximum(seen, 1), np.nan))
        with warnings.catch_warnings():  # horizons where no object is in view stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            out["objects_found"] = np.nanmin(shares, axis=0)
        if "ball_x" in true_objects and "ball_y" in true_objects:
            out |= ball_recall(pred_objects, true_objects, copy_objects, spec, b, t)
    return out


def ball_recall(
    pred: dict[str, np.ndarray],
    true: dict[str, np.ndarray],
    copy: dict[str, np.ndarray],
    spec: EnvSpec,
    episodes: int,
    steps: int,
) -> dict[str, np.ndarray]:
    """Per horizon, among the episodes whose simulator frame shows the ball, the share whose
    predicted frame shows a ball within BALL_RADIUS model pixels of it (`ball_recall`; the copy
    baseline's in `ball_recall_copy`), and how many episodes showed it (`ball_seen`, to pool
    horizons). A ball that is gone, or drawn in the wrong place, is a miss; NaN where no episode
    shows the ball. Also per episode, over h=BALL_HORIZONS, the frames showing the ball and the
    model's hits among them (`ball_episode_seen`, `ball_episode_hits`: how much the pooled recall
    owes to which episodes, `ball_recall_spread`). Readouts are flat (episodes * steps,) arrays of
    screen pixels."""
    *_, row_px, col_px = spec.view_in_render()
    visible = (~np.isnan(true["ball_x"]) & ~np.isnan(true["ball_y"])).reshape(episodes, steps)
    seen = visible.sum(0)
    out = {"ball_seen": seen.astype(float)}
    for suffix, objects in (("", pred), ("_copy", copy)):
        distance = np.hypot(
            (objects["ball_x"] - true["ball_x"]) / col_px, (objects["ball_y"] - true["ball_y"]) / row_px
        ).reshape(episodes, steps)
        with np.errstate(invalid="ignore"):
            hits = (distance <= BALL_RADIUS) & visible  # NaN (no ball drawn) is a miss
        out[f"ball_recall{suffix}"] = np.where(seen > 0, hits.sum(0) / np.maximum(seen, 1), np.nan)
        if not suffix:
            pooled = slice(BALL_HORIZONS[0], BALL_HORIZONS[1] + 1)
            out["ball_episode_hits"] = hits[:, pooled].sum(1).astype(float)
            out["ball_episode_seen"] = visible[:, pooled].sum(1).astype(float)
    return out


def ball_recall_spread(m: dict, draws: int = 10_000) -> tuple[float, float] | None:
    """5% and 95% of the pooled ball recall over `draws` resamples of the episodes (with
    replacement, a fixed seed): how far another set of as many episodes would likely put it. None
    where the per-episode counts were not recorded or the ball never showed."""
    if "ball_episode_hits" not in m:
        return None
    hits, seen = np.asarray(m["ball_episode_hits"]), np.asarray(m["ball_episode_seen"])
    if seen.sum() == 0:
        return None
    picks = np.random.default_rng(0).integers(0, len(hits), (draws, len(hits)))
    shares = hits[picks].sum(1) / np.maximum(seen[picks].sum(1), 1)
    low, high = np.percentile(shares, [5, 95])
    return float(low), float(high)


def pooled_ball_recall(
    m: dict, first: int = BALL_HORIZONS[0], last: int = BALL_HORIZONS[1], suffix: str = ""
) -> float | None:
    """Recall over all frames h=first..last pooled (each frame where the simulator shows the ball
    counts once, whatever its horizon); None where it never shows the ball or was not read."""
    if "ball_recall" not in m:
        return None
    seen = np.asarray(m["ball_seen"][first : last + 1], dtype=float)
    recall = np.nan_to_num(np.asarray(m["ball_recall" + suffix][first : last + 1], dtype=float))
    return float((recall * seen).sum() / seen.sum()) if seen.sum() > 0 else None
