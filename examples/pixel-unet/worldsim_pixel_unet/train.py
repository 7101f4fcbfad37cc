"""Train a pixel-unet world model on shards that `python -m worldsim collect` wrote.

    python -m worldsim collect --env breakout --episodes 300 --out data/breakout
    python -m worldsim_pixel_unet.train --data data/breakout --out runs/breakout-unet --steps 6000

Two stages, both weighted MSE (L1 on mostly static frames collapses to copying the input), bf16
autocast and channels-last convolutions (about 3x faster than fp32 on a CPU with AVX512-BF16):

    one_step   the true last K frames -> the next frame
    self_fed   unrolls of `--unroll` steps, each fed the model's own (8-bit rounded) predictions,
               so it learns to recover from its own errors as a rollout must

The weight counts pixels that change between the previous and the target frame (the ball, the
paddle) up to `1 + change_weight` times: Breakout's 1x2-pixel ball is otherwise lost in the
background. Some windows start from one repeated frame, as a user's single screenshot does.
Writes a worldsim checkpoint (config.json, model.safetensors, training.json and the card).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from worldsim.data.collect import EpisodeData, load_episodes, read_spec
from worldsim.envs.builtin import get_spec
from worldsim.evaluation.metrics import psnr
from worldsim.models.base import to_float
from worldsim.models.checkpoint import save_checkpoint
from worldsim_pixel_unet.model import PixelUNetConfig, PixelUNetWorldModel

VAL_HORIZONS = (1, 5, 10, 30)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m worldsim_pixel_unet.train", description=__doc__.splitlines()[0]
    )
    p.add_argument("--data", required=True, help="folder of shards from `python -m worldsim collect`")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--env", default="", help="built-in env name; default: the spec stored with the data")
    p.add_argument("--steps", type=int, default=6000, help="one-step training steps")
    p.add_argument("--unroll-steps", type=int, default=600, help="self-fed fine-tune steps (0: none)")
    p.add_argument("--unroll", type=int, default=6, help="steps per self-fed unroll")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--unroll-batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--unroll-lr", type=float, default=2e-4)
    p.add_argument("--change-weight", type=float, default=19.0, help="extra loss weight on changed pixels")
    p.add_argument("--single-frame-share", type=float, default=0.25, help="windows started from one frame")
    p.add_argument("--context-frames", type=int, default=4)
    p.add_argument("--channels", default="32,64,128", help="U-Net widths at 1/2, 1/4, 1/8 resolution")
    p.add_argument("--val-fraction", type=float, default=0.05, help="episodes held out for validation")
    p.add_argument("--val-every", type=int, default=1000, help="validate every N steps")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in fp32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default="", help="a sentence for the model card")
    return p.parse_args(argv)


class Windows:
    """Samples (context, actions, targets) windows from the episodes given, as torch tensors."""

    def __init__(self, data: EpisodeData, episodes: np.ndarray, context: int, horizon: int):
        self.frames = torch.from_numpy(data.frames)  # uint8 (N, h, w, 3), shared with numpy
        self.actions = torch.from_numpy(data.actions)
        self.context, self.horizon = context, horizon
        # first targets t with a frame before them and `horizon` targets inside the episode
        firsts, starts = [], []
        for e in episodes:
            s, n = int(data.episode_starts[e]), int(data.episode_lengths[e])
            t = np.arange(s + 1, s + n - horizon + 1)
            firsts.append(t)
            starts.append(np.full_like(t, s))
        self.firsts = torch.from_numpy(np.concatenate(firsts))
        self.episode_start = torch.from_numpy(np.concatenate(starts))

    def sample(self, size: int, generator: torch.Generator, single_share: float):
        pick = torch.randint(len(self.firsts), (size,), generator=generator)
        return self.window(self.firsts[pick], self.episode_start[pick], generator, single_share)

    def window(self, first, episode_start, generator=None, single_share: float = 0.0):
        """context float (B, K, 3, h, w) oldest first (frames before the episode: its first frame),
        actions (B, H), targets float (B, H, 3, h, w), and the true frames before each target."""
        k = torch.arange(-self.context, 0)
        index = torch.maximum(first[:, None] + k, episode_start[:, None])
        if single_share > 0:
            single = torch.rand(len(first), generator=generator) < single_share
            index[single] = (first[single] - 1)[:, None]
        steps = first[:, None] + torch.arange(self.horizon)
        targets = to_float(self.frames[steps])
        before = to_float(self.frames[steps - 1])
        return to_float(self.frames[index]), self.actions[steps - 1], targets, before


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, before: torch.Tensor, weight: float):
    """MSE counting pixels that changed from the frame before (objects) up to 1 + weight times."""
    w = 1 + weight * (target - before).abs().amax(dim=-3, keepdim=True)
    return (w * (pred - target) ** 2).mean()


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8 bits as a rollout does, letting the gradient through unchanged."""
    x = x.clamp(0, 1)
    return x + ((x * 255).round() / 255 - x).detach()


def unroll_loss(model, context, actions, targets, before, weight: float) -> torch.Tensor:
    stack, loss = context, 0.0
    for h in range(targets.shape[1]):
        pred = model.predict(stack, actions[:, h])
        loss = loss + weighted_mse(pred, targets[:, h], before[:, h], weight)
        stack = torch.cat([stack[:, 1:], quantize(pred)[:, None]], dim=1)
    return loss / targets.shape[1]


@torch.inference_mode()
def validate(model: PixelUNetWorldModel, windows: Windows, batch: int = 32) -> dict:
    """Roll out through the contract (uint8 in and out) from held-out windows: PSNR at each of
    VAL_HORIZONS, model and copy-the-last-context-frame."""
    model.eval()
    generator = torch.Generator().manual_seed(1234)  # the same windows every time
    pick = torch.randint(len(windows.firsts), (batch,), generator=generator)
    context, actions, targets, _ = windows.window(windows.firsts[pick], windows.episode_start[pick])
    to_uint8_frames = (context * 255).round().to(torch.uint8).movedim(-3, -1)
    state = model.start(to_uint8_frames)
    result = {}
    for h in range(1, max(VAL_HORIZONS) + 1):
        state = model.step(state, actions[:, h - 1])
        if h in VAL_HORIZONS:
            pred = to_float(model.render(state))
            result[f"psnr_h{h}"] = psnr(pred, targets[:, h - 1]).mean().item()
            result[f"copy_h{h}"] = psnr(context[:, -1], targets[:, h - 1]).mean().item()
    model.train()
    return result


def run_stage(name, model, windows, val, steps, batch, lr, args, generator) -> dict:
    """One stage: AdamW with a short warm-up and cosine decay; returns its training record."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warmup = min(200, steps // 10)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    record = {"steps": steps, "batch_size": batch, "lr": lr, "validation": []}
    started, validating, smooth = time.perf_counter(), 0.0, None
    progress = tqdm(range(steps), desc=name, unit="step")
    model.train()
    for step in progress:
        context, actions, targets, before = windows.sample(batch, generator, args.single_frame_share)
        context = context.contiguous()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = unroll_loss(model, context, actions, targets, before, args.change_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        progress.set_postfix(loss=f"{smooth:.2e}")
        if (step + 1) % args.val_every == 0 or step + 1 == steps:
            before_validation = time.perf_counter()
            result = {**validate(model, val), "step": step + 1, "loss": smooth}
            validating += time.perf_counter() - before_validation  # not training time
            record["validation"].append(result)
            tqdm.write(
                f"{name} step {step + 1}: "
                + ", ".join(
                    f"h={h} {result[f'psnr_h{h}']:.1f} (copy {result[f'copy_h{h}']:.1f})"
                    for h in VAL_HORIZONS
                )
            )
    progress.close()
    elapsed = time.perf_counter() - started - validating
    record["validation_minutes"] = validating / 60
    record["minutes"] = elapsed / 60
    record["samples_per_second"] = steps * batch / elapsed  # windows per second
    return record


def main(argv: list[str] | None = None) -> PixelUNetWorldModel:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    began = time.perf_counter()
    spec = get_spec(args.env) if args.env else read_spec(args.data)
    if spec is None:
        raise SystemExit(f"{args.data} does not record its environment: pass --env")
    data = load_episodes(args.data, spec)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(data.num_episodes)
    held = max(1, round(args.val_fraction * data.num_episodes))
    val_eps, train_eps = np.sort(order[:held]), np.sort(order[held:])
    config = PixelUNetConfig(
        env=spec,
        context_frames=args.context_frames,
        channels=tuple(int(c) for c in args.channels.split(",")),
    )
    model = PixelUNetWorldModel(config)
    params = sum(p.numel() for p in model.parameters())
    print(f"{spec.name}: {len(data.frames):,} frames, {data.num_episodes} episodes; {params:,} parameters")
    generator = torch.Generator().manual_seed(args.seed)
    val = Windows(data, val_eps, args.context_frames, max(VAL_HORIZONS))
    record = {
        "command": "python -m worldsim_pixel_unet.train " + shlex.join(argv),
        "config": vars(args),
        "frames": len(data.frames),
        "episodes": int(data.num_episodes),
        "parameters": params,
        "validation_episodes": len(val_eps),
    }
    train_windows = Windows(data, train_eps, args.context_frames, 1)
    record["one_step"] = run_stage(
        "one_step", model, train_windows, val, args.steps, args.batch_size, args.lr, args, generator
    )
    if args.unroll_steps > 0:
        unroll_windows = Windows(data, train_eps, args.context_frames, args.unroll)
        record["self_fed"] = run_stage(
            "self_fed",
            model,
            unroll_windows,
            val,
            args.unroll_steps,
            args.unroll_batch_size,
            args.unroll_lr,
            args,
            generator,
        )
    record["minutes"] = (time.perf_counter() - began) / 60
    if args.note:
        record["note"] = args.note
    model.eval()
    save_checkpoint(model, Path(args.out), training=record)
    print(f"{args.out}: {record['minutes']:.1f} minutes")
    return model


if __name__ == "__main__":
    main()
