"""Frame metrics: PSNR and SSIM between predicted and true frames.

Both take float tensors (..., 3, H, W) in [0, 1] and return one value per frame (...,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
