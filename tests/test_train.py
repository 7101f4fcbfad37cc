"""What the dynamics stage trains on and what its losses measure."""

from dataclasses import replace

import numpy as np
import torch


def _windows(config, share: float, at_reset: bool):
    from worldsim.train import window_batch

    latents = torch.arange(100, dtype=torch.float32)[:, None].repeat(1, 3)  # frame i has latent i
    actions = torch.arange(100)
    anchors = np.array([12, 15, 40, 55, 70])
    firsts = np.array([10, 10, 30, 50, 50])  # the episode each anchor lies in starts there
    config = replace(config, single_frame_share=share, single_frame_at_reset=at_reset)
    return window_batch(latents, actions, anchors, firsts, config, np.random.default_rng(0))


def test_single_frame_windows_can_start_at_their_episode_start():
    from worldsim.train import TrainConfig

    config = TrainConfig(env="cartpole", context_frames=2, unroll=4)
    anchors, context, actions, targets = _windows(config, share=1.0, at_reset=True)
    assert anchors.tolist() == [10, 10, 30, 50, 50]
    assert context[:, :, 0].tolist() == [[10, 10], [10, 10], [30, 30], [50, 50], [50, 50]]  # one frame
    assert actions[0].tolist() == [10, 11, 12, 13] and targets[0, :, 0].tolist() == [11, 12, 13, 14]
    anchors, context, _, _ = _windows(config, share=1.0, at_reset=False)  # anywhere in the episode
    assert anchors.tolist() == [12, 15, 40, 55, 70] and context[:, 0, 0].tolist() == [12, 15, 40, 55, 70]
    anchors, context, _, _ = _windows(config, share=0.0, at_reset=True)  # 1 or 2 frames: not moved
    assert anchors.tolist() == [12, 15, 40, 55, 70] and context[:, -1, 0].tolist() == [12, 15, 40, 55, 70]


def test_log_step_loss_counts_each_step_relative_to_its_own_error():
    from worldsim.train import Windows

    windows = Windows.__new__(Windows)
    windows.scale = torch.ones(4)
    targets = torch.zeros(8, 3, 4)
    small, large = torch.full((8, 1, 4), 0.01), torch.full((8, 1, 4), 10.0)
    predicted = torch.cat([small, large, large], dim=1)
    base = windows.latent_loss(predicted, targets, log_steps=True)
    tenfold_small = windows.latent_loss(torch.cat([10 * small, large, large], 1), targets, log_steps=True)
    tenfold_large = windows.latent_loss(torch.cat([small, 10 * large, large], 1), targets, log_steps=True)
    # Ten times the error is log(100) / 3 more on any step, however small or large its error was;
    # a plain mean would barely notice the small step.
    assert torch.isclose(tenfold_small - base, tenfold_large - base, rtol=1e-4)
    assert torch.isclose(tenfold_small - base, torch.tensor(np.log(100) / 3, dtype=torch.float32), rtol=1e-4)
    plain = windows.latent_loss(predicted, targets)
    assert windows.latent_loss(torch.cat([10 * small, large, large], 1), targets) / plain < 1.001
