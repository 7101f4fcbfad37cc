"""Training: first the frame autoencoder, then the latent dynamics on frozen latents, then both
dynamics and decoder on what the rollouts draw.

Two main stages, as in World Models: the autoencoder is the expensive part (convolutions on
pixels) and trains on single frames; the dynamics then train on pre-computed latents, where a
40-step unroll costs almost nothing, so long-horizon rollouts are trained for directly. A short
third stage (`pixel_steps`; on by default for CartPole, MountainCar, Breakout and CarRacing)
decodes predictions and fine-tunes the dynamics and decoder for pixel error, which is what a user
sees and what evaluation measures.

    python -m worldsim train --env cartpole                 # defaults reproduce the shipped model
    python -m worldsim train --env cartpole --autoencoder-steps 50 --dynamics-steps 50   # smoke run
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from worldsim.data.collect import EpisodeData, read_spec
from worldsim.data.dataset import load_any_episodes
from worldsim.envs.builtin import get_spec
from worldsim.envs.objects import (
    drawn_rows,
    object_points,
    object_pose,
    object_segments,
    point_memory,
    row_memory,
)
from worldsim.envs.spec import EnvSpec, spec_name
from worldsim.evaluation.familiarity import calibrate, save_calibration
from worldsim.evaluation.metrics import psnr
from worldsim.models.checkpoint import save_checkpoint
from worldsim.models.latent import (
    DYNAMICS_KINDS,
    OUTCOME_INPUTS,
    LatentConfig,
    LatentWorldModel,
    action_history_code,
    composite,
    embed_actions,
    memory_key,
    point_pixel_units,
    pose_loss,
    to_float,
    weighted_frame_loss,
)
from worldsim.models.registry import load

STAGES = ("autoencoder", "dynamics", "pixels", "memory", "outcome")


@dataclass
class TrainConfig:
    """What `python -m worldsim train` does; the defaults reproduce the shipped checkpoints."""

    env: str = "cartpole"  # built-in environment name (worldsim.envs.builtin)
    # Any gymnasium id instead of --env: the environment is read from the data, as `collect
    # --env-id` recorded it; data and out default to data/<name> and checkpoints/<name>.
    env_id: str = ""
    data: str = ""  # shard folder, Parquet export or hf://datasets/owner/name; default data/<env>
    out: str = ""  # checkpoint folder; default checkpoints/<env>
    device: str = "cpu"  # cpu, cuda, cuda:1, ...
    seed: int = 0  # seeds torch and the sampling of batches
    val_fraction: float = 0.05  # episodes held out for validation
    # stage 1: autoencoder
    autoencoder_steps: int = 5000  # optimizer steps of stage 1
    batch_size: int = 64  # frames drawn per step (each with its reference frame)
    lr: float = 1e-3  # peak learning rate, cosine decay
    pose_weight: float = 1.0  # weight of the visible-state supervision of z
    # The decoder's colours must then draw the whole frame, so the mask cannot settle on copying
    # the reference: Breakout's autoencoder did, without it (its 2-px ball changes too little).
    colour_weight: float = 0.0  # weight of a loss on the decoder's colours before the mask
    # Without a simulator state, a 32-d latent learned from pixels alone did not encode Breakout's
    # paddle at all (the decoder drew the mean frame); the positions read from the frames do.
    frame_poses: bool = False  # supervise z with object positions read from frames (worldsim.objects)
    max_reference_gap: int = 60  # steps between the frame drawn and the reference it is drawn over
    # The decoder sees the action that led to each frame (screens that draw it: Pendulum's torque
    # arrow, CarRacing's bars), and paints objects read as positions where their pose dims say
    # (Pong's ball); see LatentConfig.decoder_action and .points.
    decoder_action: bool = False
    object_points: bool = False  # needs frame_poses: the positions are the object readers'
    warp_reference: bool = False  # the decoder moves the reference it draws over (LatentConfig)
    relative_flow: bool = False  # with warp_reference: by a flow relative to the reference's own
    # stage 2: latent dynamics
    dynamics_steps: int = 6000  # optimizer steps of stage 2
    dynamics_batch_size: int = 64  # windows per step
    dynamics_lr: float = 1e-3  # peak learning rate, cosine decay
    dynamics_pose_weight: float = 10.0  # loss weight of the pose dims of z against the others
    # A point's coordinates read the mean position where the object is out of view, so a ball
    # that leaves (a point scored) jumps to the court's centre in the targets: a jump no model
    # can predict, which an MSE answers by pulling every ball towards the centre. With a weight,
    # a point's x and y count only where the target shows the object, that much more: in the
    # dynamics' loss, and (pose_point_weight) in the encoder's pose supervision, where a precise
    # ball position makes the velocity between two frames usable.
    point_weight: float = 0.0  # 0: points count like the other pose dims
    pose_point_weight: float = 0.0  # the same, for the autoencoder's pose loss
    # With frame_poses, every other reading (a paddle's row) counts this many times in the
    # autoencoder's pose loss where its object is in view. Normalised by its spread like every
    # pose dim, Pong's player paddle (spread 54 px) counted for little: the encoder placed it to
    # 3.4 px (median; the opponent's paddle 0.3 px), and no dynamics can return a ball from that.
    pose_reading_weight: float = 0.0
    # With frame_poses, the in-view flags are normalised by at least this spread. A paddle almost
    # always in view had a spread of 0.03, so each frame that missed it was an error of 30
    # spreads, outweighing every position in the pose losses.
    flag_spread_floor: float = 0.0
    # With frame_poses: row readings the decoder paints as bands, "name col_low col_high
    # half_height" in render pixels, comma-separated ("paddle_y 140 144 8"): LatentConfig.drawn_rows.
    drawn_rows: str = ""
    # The decoder paints the rods the pose describes (`object_segments`: CartPole's pole) as lines,
    # where the pose says: LatentConfig.drawn_segments.
    drawn_segments: bool = False
    point_momentum: bool = False  # GRU: points keep their motion (LatentConfig.point_momentum)
    # Where a ball may bounce or not, the mean of its futures is a slowed ball, which is what a
    # squared error teaches a deterministic model. Beyond this many view pixels a point's error
    # counts linearly (Huber), so the model keeps the likeliest path rather than the mean one.
    point_huber: float = 0.0  # view pixels; 0: squared error everywhere
    # With point momentum: a gate says when a point's motion changes (LatentConfig.contact_gate),
    # trained on the steps where the encoded ball's motion changed by over CONTACT_PIXELS.
    contact_gate: bool = False
    # With point momentum: store the speeds each point keeps in flight in the training data
    # (steady_speeds), which its motion snaps to at inference (LatentConfig.point_speeds).
    snap_speeds: bool = False
    # With snap_speeds: the least share of a point's steady steps a speed must make to be kept
    # (steady_speeds). Pong's paddle sends a ball back at 12 pixels a step in half a percent of
    # them, a speed worth keeping.
    steady_share: float = 0.01
    # With snap_speeds: the GRU picks each point's next speed as a class (LatentConfig.speed_classes),
    # trained with cross-entropy on the readers' motions (true_speeds).
    speed_classes: bool = False
    speed_mlp: bool = False  # with speed classes: a head that reads the latent too (LatentConfig)
    dynamics: str = "gru"  # "gru" (any env), "state" (step the simulator state: samples), "auto"
    # The GRU also starts from the last N actions played into the start frame (LatentConfig);
    # in training a window knows them (within its episode) in `past_known_share` of windows and
    # none in the rest, as a start from an uploaded frame knows none.
    past_actions: int = 0
    past_known_share: float = 0.5
    # Dreams re-encode their latent from the frame they draw every N steps (LatentConfig; GRU
    # dynamics; 0: never). It changes no weights: a continued run sets it anew.
    reencode_every: int = 0
    # stage "memory" (after the dynamics; seconds): a point memory of the training episodes'
    # readings, "row_reading x_low max_distance" (LatentConfig.point_memory; "" skips the stage).
    point_memory: str = ""
    # stage "memory" too: a row memory (LatentConfig.row_memory), "row_reading actions [group ...]",
    # e.g. "paddle_y 4 noop,fire right,rightfire left,leftfire" ("" none).
    row_memory: str = ""
    # More episodes for the memory stage alone, a shard folder (e.g. branches from `collect
    # --branch`): the point memory's entries come from the training episodes and all of these.
    # Pong's first serve, 10,000 times from 200 states, is a return the memory then knows.
    memory_data: str = ""
    unroll: int = 40  # predicted steps per training window: errors must stay small for this long
    single_frame_share: float = 0.5  # windows whose context is one frame (what users upload)
    # One frame cannot show velocity, so from one frame the dynamics learn the velocity their
    # single-frame windows had on average. Mid-episode, a leaning pole is usually falling; at a
    # reset it is at rest. Starting those windows at episode starts makes "one frame" mean "a
    # reset, with a reset's velocity", which is what evaluation and most uploads start from.
    single_frame_at_reset: bool = False
    # Errors grow with the horizon, so a plain MSE over the unroll is about the far steps. The mean
    # of log(MSE) per step weighs every horizon's error relative to its size, as dB do.
    log_step_loss: bool = False
    # stage 3: pixels (after the dynamics; 0 steps skips it)
    # A latent loss teaches the mean future latent, and the decoder draws that latent sharp, in
    # one place, when the future is uncertain (CartPole: has the cart crossed a pixel yet?). This
    # stage decodes one predicted step per window and scores it in pixels, the latent loss still
    # on, so the dynamics learn the latents, and the decoder the drawing, that are closest to the
    # truth on average. Its loss is the mean log MSE per frame: mean PSNR, as evaluation measures.
    pixel_steps: int = 0  # optimizer steps of stage 3; the dynamics continue from stage 2
    pixel_lr: float = 3e-4  # peak learning rate of the dynamics in stage 3
    decoder_lr: float = 1e-4  # peak learning rate of the decoder in stage 3 (0: frozen)
    pixel_horizon: int = 10  # the decoded step is one of the first this many of the unroll
    # stage 4: outcome (reward and episode end, for Dream-v0 and Play's game over; 0 steps skips it)
    # The head reads the dynamics' own open-loop predictions (frozen), so it learns from the
    # latents a dream produces, not from the encoder's.
    outcome_steps: int = 1500  # optimizer steps of stage 4
    outcome_lr: float = 1e-3  # peak learning rate of the head
    # What the head reads (LatentConfig.outcome_input): "latents", the open-loop predictions above;
    # or "frame", each frame as the decoder draws it from its own latent, encoded again (up to
    # OUTCOME_FRAMES of them, drawn once before the stage), which is what a dream's frames are.
    outcome_input: str = "latents"
    # model
    latent_dim: int = 32  # size of a frame's latent
    hidden_dim: int = 256  # GRU state size
    context_frames: int = 2  # most start frames the model takes
    # speed
    bf16: bool = True  # bf16 autocast for the convolutions: ~2x faster training on this CPU
    channels_last: bool = True  # NHWC convolutions: faster on CPU
    threads: int = 0  # torch threads; 0 keeps torch's default (one per core)
    val_every: int = 500  # steps between validations
    # resuming
    init_from: str = ""  # checkpoint folder to continue from (its weights and training record)
    stages: str = ",".join(STAGES)  # which stages to run, in order

    def __post_init__(self):
        name = spec_name(self.env_id) if self.env_id else self.env
        self.data = self.data or f"data/{name}"
        self.out = self.out or f"checkpoints/{name}"
        if self.speed_classes and not self.snap_speeds:
            raise ValueError("--speed-classes needs --snap-speeds: the classes are the steady speeds.")
        if self.snap_speeds and not self.point_momentum:
            raise ValueError("--snap-speeds needs --point-momentum: they are speeds of the points' motion.")

    @classmethod
    def for_env(cls, env: str, **overrides) -> TrainConfig:
        """The config `train --env ENV` uses: the spec's training defaults, then `overrides`."""
        defaults = {} if overrides.get("env_id") else get_spec(env).train_defaults
        return cls(env=env, **{**defaults, **overrides})


def training_spec(config: TrainConfig) -> EnvSpec:
    """The environment to train on: as the data recorded it (`collect` stores its spec in every
    shard), else the built-in spec of --env."""
    recorded = read_spec(config.data) if Path(config.data).is_dir() else None
    if config.env_id:
        if recorded is None:
            raise ValueError(
                f"No collected data for {config.env_id} in {config.data}: "
                f"run python -m worldsim collect --env-id {config.env_id} first."
            )
        if recorded.gym_id != config.env_id:
            raise ValueError(f"{config.data} holds {recorded.gym_id}, not {config.env_id}.")
        return recorded
    return recorded if recorded is not None and recorded.name == config.env else get_spec(config.env)


def train(config: TrainConfig, command: str | None = None) -> LatentWorldModel:
    """Run the training stages and save a checkpoint folder with config, weights and record.

    With `init_from`, start from that checkpoint's weights and training record and run only the
    listed `stages`; the record then lists every command that made the checkpoint, in order.
    """
    torch.manual_seed(config.seed)
    # Tiny values (a near-certain state estimate, Adam's moments) turn into denormal floats that
    # x86 CPUs compute 10-100x slower; flushing them to zero changes no result that matters.
    torch.set_flush_denormal(True)
    if config.threads:
        torch.set_num_threads(config.threads)
    rank, world = _join_process_group(config.device)
    rng = np.random.default_rng(config.seed)
    spec = training_spec(config)
    stages = [stage.strip() for stage in config.stages.split(",") if stage.strip()]
    if unknown := sorted(set(stages) - set(STAGES)):
        raise ValueError(f"Unknown training stage(s) {unknown}; stages are {', '.join(STAGES)}.")
    if config.outcome_input not in OUTCOME_INPUTS:  # said now, not after the other stages
        raise ValueError(
            f"--outcome-input must be one of {', '.join(OUTCOME_INPUTS)}, got {config.outcome_input!r}."
        )
    memory = point_memory(spec, config.point_memory)  # refused now, not after the other stages
    local = config.memory_data and not config.memory_data.startswith("hf://")
    if memory and local and "memory" in stages and not Path(config.memory_data).exists():
        raise ValueError(
            f"--memory-data {config.memory_data}: no such folder. Collect it first, e.g. "
            f"python -m worldsim collect --env {spec.name} --out {config.memory_data} --episodes 200 "
            "--branch '52 50 12' (the model card says the command its memory was made with), or "
            "train with --memory-data ''."
        )
    if memory and "dynamics" in stages and not (config.point_momentum and config.dynamics != "state"):
        raise ValueError("--point-memory needs GRU dynamics with --point-momentum.")
    rows = row_memory(spec, config.row_memory)
    if rows and "dynamics" in stages and config.dynamics == "state":
        raise ValueError("--row-memory needs GRU dynamics.")
    skipped = {
        "pixels": "--pixel-steps is 0" if not config.pixel_steps else "",
        "memory": "--point-memory and --row-memory are empty" if not (memory or rows) else "",
        "outcome": "--outcome-steps is 0" if not config.outcome_steps else "",
    }
    for stage, why in skipped.items():
        if why and stage in stages:
            stages.remove(stage)
            if not stages:
                raise ValueError(f"Nothing to train: the {stage} stage is skipped where {why}.")
    data = load_any_episodes(config.data, spec)
    train_eps, val_eps = split_episodes(data.num_episodes, config.val_fraction, rng)
    if rank:  # every rank holds the same split and initial weights, and draws its own batches
        rng = np.random.default_rng([config.seed, rank])
    poses = visible_poses(spec, data, from_frames=config.frame_poses)
    pose_spread = None if poses is None else poses.std(0) + 1e-6
    if config.frame_poses and pose_spread is not None:  # readings and their flags alternate
        pose_spread[1::2] = np.maximum(pose_spread[1::2], config.flag_spread_floor)
    states = state_features(spec, data)
    dynamics_kind = config.dynamics if config.dynamics != "auto" else ("gru" if states is None else "state")
    if dynamics_kind not in DYNAMICS_KINDS:
        raise ValueError(
            f"--dynamics must be one of {', '.join(DYNAMICS_KINDS)} or auto, got {config.dynamics!r}."
        )
    if dynamics_kind == "state" and states is None:
        raise ValueError(f"{spec.name} data has no simulator states: use --dynamics gru.")
    command = command or "python -m worldsim train " + shlex.join(sys.argv[1:])
    if config.init_from:
        model = load(config.init_from, config.device)
        previous = json.loads(Path(config.init_from, "training.json").read_text())
        record = {**previous, "commands": [*previous.get("commands", [previous["command"]]), command]}
        reencode = config.reencode_every if model.config.dynamics == "gru" else 0
        model.config = model_config = replace(model.config, reencode_every=reencode)
    else:
        points = object_points(spec) if config.object_points and config.frame_poses else []
        model_config = LatentConfig.for_env(
            spec,
            latent_dim=config.latent_dim,
            hidden_dim=config.hidden_dim,
            context_frames=config.context_frames,
            pose_dims=0 if poses is None else poses.shape[1],
            pose_mean=[] if poses is None else poses.mean(0).tolist(),
            pose_std=[] if poses is None else pose_spread.tolist(),
            decoder_action=config.decoder_action,
            warp_reference=config.warp_reference,
            relative_flow=config.relative_flow,
            points=points,
            drawn_rows=drawn_rows(spec, config.drawn_rows) if config.frame_poses else [],
            drawn_segments=object_segments(spec) if config.drawn_segments and poses is not None else [],
            pose_bounds=[] if poses is None else pose_bounds(poses),
            reencode_every=config.reencode_every,
        )
        model = LatentWorldModel(model_config).to(config.device)
        record = {"commands": [command]}
    record.update(command=" && ".join(record["commands"]), config=asdict(config))
    if not config.init_from:  # a continued run keeps the record of the data it started from
        record.update(frames=len(data.frames), episodes=int(data.num_episodes))
    point_speeds = (
        steady_speeds(poses, data, model_config.points, config.steady_share) if config.snap_speeds else []
    )
    if poses is not None:
        poses = normalised_poses(model_config, poses)
    print(
        f"{spec.name}: {len(data.frames):,} frames in {data.num_episodes} episodes "
        f"({len(train_eps)} train, {len(val_eps)} validation); "
        f"{sum(p.numel() for p in model.parameters()):,} parameters; stages: {', '.join(stages)}"
    )

    latents = None  # every frame's latent, once the autoencoder is trained
    for stage in stages:
        stage_started = time.time()
        if stage == "autoencoder":
            train_frames = np.concatenate([_episode_indices(data, e) for e in train_eps])
            result = train_autoencoder(model, data, poses, train_frames, val_eps, config, rng)
        else:
            reads_latents = stage != "memory" and not (stage == "outcome" and config.outcome_input == "frame")
            if latents is None and reads_latents:
                latents = encode_all(model, data.frames, config)
            if stage == "dynamics":  # new dynamics, from scratch
                model = model.with_dynamics(
                    dynamics_kind,
                    states if dynamics_kind == "state" else None,
                    config.point_momentum,
                    config.contact_gate,
                    point_speeds,
                    config.speed_classes,
                    config.speed_mlp,
                    config.past_actions,
                )
            if stage == "memory":
                if memory and not (model.config.dynamics == "gru" and model.config.point_momentum):
                    raise ValueError("--point-memory needs GRU dynamics with --point-momentum.")
                if rows and model.config.dynamics != "gru":
                    raise ValueError("--row-memory needs GRU dynamics.")
                result = {}
                if memory:
                    entries = [memory_entries(model.config, poses, data, train_eps, memory)]
                    if config.memory_data:
                        more = load_any_episodes(config.memory_data, spec)
                        more_poses = visible_poses(spec, more, from_frames=config.frame_poses)
                        more_poses = normalised_poses(model.config, more_poses)
                        episodes = np.arange(more.num_episodes)
                        entries.append(memory_entries(model.config, more_poses, more, episodes, memory))
                        result["memory_data_episodes"] = int(more.num_episodes)
                    keys, moves, paths = (torch.cat(parts) for parts in zip(*entries, strict=True))
                    keys, moves, paths = memory_tables(keys, moves, paths, bool(memory.get("path_steps")))
                    model = model.with_point_memory(memory, keys, moves, paths)
                    result["entries"] = len(keys)
                    if paths is not None:
                        result["paths"] = len(paths[1])
                if rows:
                    model = model.with_row_memory(
                        rows, *row_memory_entries(model.config, poses, data, train_eps, rows)
                    )
                    result["row_entries"] = model.config.row_memory["entries"]
            elif stage == "outcome":
                if model.outcome_head is None or model.config.outcome_input != config.outcome_input:
                    model = model.with_outcome_head(config.outcome_input)
                if config.outcome_input == "frame":
                    result = train_outcome_on_frames(model, data, train_eps, val_eps, config, rng)
                else:
                    result = train_outcome(model, data, latents, train_eps, val_eps, config, rng)
                model = model.with_reward_values(reward_values(data))
            else:
                normalised = None
                if model.config.dynamics == "state" and states is not None:
                    mean, std = np.array(model.config.state_mean), np.array(model.config.state_std)
                    normalised = torch.from_numpy(((states - mean) / std).astype(np.float32)).to(
                        config.device
                    )
                result = train_dynamics(
                    model,
                    data,
                    latents,
                    normalised,
                    poses,
                    train_eps,
                    val_eps,
                    config,
                    rng,
                    pixels=stage == "pixels",
                )
        record[stage] = {**result, "minutes": (time.time() - stage_started) / 60, "frames": len(data.frames)}
        record["minutes"] = sum(record[s]["minutes"] for s in STAGES if s in record)
        if world > 1:
            record["distributed"] = {"world_size": world, "ranks_identical": _ranks_identical(model)}
        if rank == 0:
            save_checkpoint(model, config.out, training=record)
    if rank == 0 and set(stages) - {"outcome"}:  # the outcome head alone draws nothing new
        save_calibration(calibrate_on(model, data, train_eps, val_eps), config.out)
    if rank == 0:
        print(f"saved {config.out}: {record['minutes']:.1f} minutes of training in all")
    if world > 1:  # leave together: no rank closes its connections while rank 0 still saves
        dist.barrier()
        dist.destroy_process_group()
    return model


def _join_process_group(device: str) -> tuple[int, int]:
    """(rank, world size): under torchrun, join the process group (gloo on CPU, nccl on CUDA);
    alone, (0, 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.device(device).type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _average_gradients(params: list[torch.Tensor]) -> None:
    """What DistributedDataParallel does after backward: every rank ends with the mean gradient,
    so identical weights stay identical. (Done on the parameter list, since each stage trains
    part of the model through its methods rather than one forward().) One flat all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _ranks_identical(model: torch.nn.Module) -> bool:
    """Whether every rank holds exactly the same weights (the point of averaging gradients)."""
    flat = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def calibrate_on(
    model: LatentWorldModel, data: EpisodeData, train_eps, val_eps, max_frames: int = 2000
) -> dict:
    """Familiarity calibration: held-out frames scored over the first training episode's first
    frame (a reset frame, what most uploads resemble)."""
    held_out = np.concatenate([_episode_indices(data, e) for e in (val_eps if len(val_eps) else train_eps)])
    held_out = held_out[np.linspace(0, len(held_out) - 1, min(max_frames, len(held_out))).astype(int)]
    reference = data.frames[data.episode_starts[train_eps[0]]]
    return calibrate(model, data.frames[held_out], reference)


def split_episodes(num_episodes: int, val_fraction: float, rng: np.random.Generator):
    order = rng.permutation(num_episodes)
    num_val = max(1, round(num_episodes * val_fraction)) if num_episodes > 1 else 0
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def state_features(spec, data: EpisodeData) -> np.ndarray | None:
    """The spec's smooth simulator-state features of every frame, if the data recorded states."""
    if spec.dynamics_state is None or data.states is None:
        return None
    return spec.dynamics_state(data.states).astype(np.float64)


def visible_poses(spec, data: EpisodeData, from_frames: bool = False) -> np.ndarray | None:
    """What the first latent dims learn to be: the simulator's visible state, or with
    `from_frames` the objects read from the frames (Atari has no state vector), or None."""
    if from_frames:
        return object_pose(data.frames, spec)
    if spec.visible_pose is None or data.states is None:
        return None
    return spec.visible_pose(data.states).astype(np.float64)


# A point's steady speeds (LatentConfig.point_speeds) are the per-step motions it keeps this many
# steps running, in view, that make at least a share of such steps (TrainConfig.steady_share): a
# ball half hidden by a wall or paddle moves by odd amounts for a step, and a rare speed is not
# worth snapping to.
STEADY_STEPS = 3


def steady_speeds(
    poses: np.ndarray, data: EpisodeData, points: list[list[int]], share: float
) -> list[list[list[float]]]:
    """Per point, [x speeds, y speeds]: the steady per-step motions (render pixels, to half a
    pixel) of the object readers' positions `poses` (N, D, not normalised) that make at least
    `share` of its steady steps, sorted."""
    speeds = []
    for x_dim, y_dim, seen_dim in points:
        axes = []
        for dim in (x_dim, y_dim):
            steady = []
            for episode in range(data.num_episodes):
                frames = _episode_indices(data, episode)
                step = np.round(np.diff(poses[frames, dim]) * 2) / 2
                seen = (poses[frames, seen_dim] > 0.5)[1:] & (poses[frames, seen_dim] > 0.5)[:-1]
                starts = len(step) - STEADY_STEPS + 1
                if starts <= 0:
                    continue
                held = np.ones(starts, dtype=bool)
                for k in range(STEADY_STEPS):
                    held &= seen[k : k + starts] & (step[k : k + starts] == step[:starts])
                steady.append(step[:starts][held])
            values, counts = np.unique(np.concatenate(steady or [np.zeros(0)]), return_counts=True)
            axes.append([float(v) for v in values[counts >= share * counts.sum()]])
        speeds.append(axes)
    return speeds


# Share of the frames whose pose may lie beyond each of its bounds (LatentConfig.pose_bounds): a
# reader's odd reading (a ball half behind the paddle) does not widen them.
BOUND_SHARE = 0.001


def pose_bounds(poses: np.ndarray) -> list[list[float]]:
    """Per pose dim, [low, high]: where the poses (N, D, not normalised) lie, but for BOUND_SHARE
    of them each side."""
    return np.quantile(poses, [BOUND_SHARE, 1 - BOUND_SHARE], axis=0).T.tolist()


def _episode_indices(data: EpisodeData, episode: int) -> np.ndarray:
    start = data.episode_starts[episode]
    return np.arange(start, start + data.episode_lengths[episode])


def _autocast(config: TrainConfig):
    if not config.bf16:
        return nullcontext()
    return torch.autocast(device_type=torch.device(config.device).type, dtype=torch.bfloat16)


def _cosine(step: int, total: int, warmup: int = 200) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_autoencoder(
    model: LatentWorldModel,
    data: EpisodeData,
    poses: torch.Tensor | None,
    train_frames: np.ndarray,
    val_eps: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
) -> dict:
    """Stage 1: encoder + decoder on single frames; weighted MSE plus visible-state supervision."""
    device = torch.device(config.device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.encoder.to(memory_format=memory_format)
    model.decoder.to(memory_format=memory_format)
    val_frames = (
        np.concatenate([_episode_indices(data, e) for e in val_eps]) if len(val_eps) else train_frames
    )
    val_target = rng.choice(val_frames, size=min(512, len(val_frames)), replace=False)
    val_pairs = (val_target, reference_frames(data, val_target, config.max_reference_gap, rng))
    incoming = incoming_actions(model, data)
    pose_weight = None if poses is None else torch.ones(poses.shape[1], device=device)

    def batch_loss() -> torch.Tensor:
        target = rng.choice(train_frames, size=config.batch_size)
        index = np.concatenate([target, reference_frames(data, target, config.max_reference_gap, rng)])
        frames = to_float(torch.from_numpy(data.frames[index])).to(device, memory_format=memory_format)
        with _autocast(config):
            z = model.encode(frames)  # targets, then references: one batch
            z_target, z_ref = z.chunk(2)
            ref = frames[len(target) :]
            colours, mask, background = model.decode_parts(z_target, z_ref, ref, incoming(target))
            recon = composite(colours, mask, background)
        target_frames = frames[: len(target)]
        loss = weighted_frame_loss(recon.float(), target_frames, ref)
        if config.colour_weight:
            loss = loss + config.colour_weight * weighted_frame_loss(colours.float(), target_frames, ref)
        if poses is not None:
            pose = poses[index].to(device)
            weight = point_weights(model.config, pose, pose_weight, config.pose_point_weight)
            weight = reading_weights(model.config, pose, weight, config.pose_reading_weight)
            loss = loss + config.pose_weight * pose_loss(z.float(), pose, weight)
        return loss

    params = [*model.encoder.parameters(), *model.decoder.parameters()]
    return fit(
        "autoencoder",
        params,
        batch_loss,
        lambda: evaluate_autoencoder(model, data, poses, val_pairs, incoming, config),
        steps=config.autoencoder_steps,
        lr=config.lr,
        samples_per_step=config.batch_size,
        val_every=config.val_every,
    )


def fit(
    name: str,
    params: list,
    batch_loss,
    validate,
    steps: int,
    lr: float,
    samples_per_step: int,
    val_every: int,
):
    """AdamW with warm-up and cosine decay, gradient clipping, progress bar and periodic validation.
    `params`: tensors, or AdamW's parameter groups. Returns throughput and the validation history."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _cosine(s, steps))
    history = []
    quiet = dist.is_initialized() and dist.get_rank() > 0  # one progress bar per run, not per rank
    progress = tqdm(range(steps), desc=name, unit="step", disable=quiet)
    started = time.time()
    for step in progress:
        loss = batch_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if dist.is_initialized():
            _average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        if (step + 1) % val_every == 0 or step + 1 == steps:
            val = {**validate(), "step": step + 1}
            history.append(val)
            progress.set_postfix(loss=f"{loss.item():.4g}")
            if not quiet:
                tqdm.write(f"{name} step {step + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in val.items()))
    return {"samples_per_second": steps * samples_per_step / (time.time() - started), "validation": history}


def reference_frames(
    data: EpisodeData, target: np.ndarray, max_gap: int, rng: np.random.Generator
) -> np.ndarray:
    """For each target frame, an earlier frame of its episode (0..max_gap steps back) to draw over,
    as a rollout draws every predicted frame over its start frame."""
    episode = np.searchsorted(data.episode_starts, target, side="right") - 1
    gap = rng.integers(0, max_gap + 1, size=len(target))
    return np.maximum(target - gap, data.episode_starts[episode])


def incoming_actions(model: LatentWorldModel, data: EpisodeData):
    """frame indices -> the actions that led to those frames, as `model.decode` takes them (an
    episode's first frame has none: -1 for discrete actions, zeros for continuous ones), or None
    for models that do not draw actions."""
    if not model.config.decoder_action:
        return lambda index: None
    actions = torch.from_numpy(data.actions).to(next(model.parameters()).device)
    none = -1 if model.config.action_kind == "discrete" else 0
    before = torch.cat([torch.full_like(actions[:1], none), actions[:-1]])  # frame t: action t-1
    before[torch.from_numpy(data.episode_starts)] = none
    return lambda index: before[torch.as_tensor(index, device=before.device)]


@torch.no_grad()
def evaluate_autoencoder(model, data, poses, pairs, incoming, config) -> dict:
    """Reconstruction PSNR over the reference, next to the PSNR of the reference itself (copy);
    `incoming` gives the actions that led to frames (`incoming_actions`)."""
    target, reference = pairs
    frames = to_float(torch.from_numpy(data.frames[target])).to(config.device)
    ref = to_float(torch.from_numpy(data.frames[reference])).to(config.device)
    with _autocast(config):
        z_target, z_ref = model.encode(torch.cat([frames, ref])).chunk(2)
        recon = model.decode(z_target, z_ref, ref, incoming(target)).float().clamp(0, 1)
    result = {"psnr": float(psnr(recon, frames).mean()), "copy_psnr": float(psnr(ref, frames).mean())}
    if poses is not None:
        result["pose_rmse"] = float(pose_loss(z_target.float(), poses[target].to(z_target.device)).sqrt())
    return result


@torch.no_grad()
def encode_all(
    model: LatentWorldModel, frames: np.ndarray, config: TrainConfig, batch: int = 512
) -> torch.Tensor:
    """Latents of every frame (N, Z), in float32 (the dynamics train on exact latents)."""
    out = []
    for start in tqdm(range(0, len(frames), batch), desc="encode frames", unit="batch", leave=False):
        chunk = to_float(torch.from_numpy(frames[start : start + batch])).to(config.device)
        out.append(model.encode(chunk).float())
    return torch.cat(out)


def dynamics_windows(data: EpisodeData, episodes: np.ndarray, unroll: int) -> tuple[np.ndarray, np.ndarray]:
    """(anchor, first) pairs: an anchor frame with `unroll` frames after it in the same episode,
    and its episode's first frame (context before the anchor is clipped there, like a reset)."""
    anchors, firsts = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for e in episodes:
        start, length = data.episode_starts[e], data.episode_lengths[e]
        count = length - unroll
        if count > 0:
            anchors.append(np.arange(start, start + count))
            firsts.append(np.full(count, start))
    return np.concatenate(anchors), np.concatenate(firsts)


def window_batch(
    latents: torch.Tensor,
    actions: torch.Tensor,
    anchors: np.ndarray,
    firsts: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
):
    """Anchors (B,) (moved to their episode start where `single_frame_at_reset` says so), context
    latents (B, K, Z), actions (B, U, ...), target latents (B, U, Z) and the actions played into
    the anchor (B, N, ...; `past_window_actions`) of some windows."""
    k = config.context_frames
    context_count = rng.integers(1, k + 1, size=len(anchors))
    single = rng.random(len(anchors)) < config.single_frame_share
    context_count[single] = 1
    if config.single_frame_at_reset:
        anchors = np.where(single, firsts, anchors)
    offsets = np.arange(-k + 1, 1)  # oldest first
    # Frames before the context window (or the episode) repeat the oldest one used.
    context_index = anchors[:, None] + np.maximum(offsets[None], 1 - context_count[:, None])
    context_index = np.maximum(context_index, firsts[:, None])
    steps = np.arange(config.unroll)
    return (
        anchors,
        latents[context_index],
        actions[anchors[:, None] + steps[None]],
        latents[anchors[:, None] + 1 + steps[None]],
        past_window_actions(actions, anchors, firsts, config, rng),
    )


def past_window_actions(
    actions: torch.Tensor,
    anchors: np.ndarray,
    firsts: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
) -> torch.Tensor | None:
    """(B, N) or (B, N, D): the `past_actions` actions played into each anchor frame, oldest
    first; unknown (-1, NaN) before the episode's start and, in all but `past_known_share` of
    the windows, throughout. None without past actions."""
    n = config.past_actions
    if not n:
        return None
    index = anchors[:, None] + np.arange(-n, 0)  # actions[t] leads from frame t to t + 1
    known = (index >= firsts[:, None]) & (rng.random(len(anchors)) < config.past_known_share)[:, None]
    past = actions[np.maximum(index, 0)].clone()
    unknown = torch.from_numpy(~known).to(past.device)
    if past.dtype == torch.int64:
        return past.masked_fill(unknown, -1)
    return past.masked_fill(unknown[..., None], float("nan"))


class Windows:
    """Training windows for the dynamics: anchors, their episode starts, and a fixed validation
    batch with its true frames."""

    def __init__(self, data, latents, train_eps, val_eps, config, rng):
        self.latents = latents
        self.actions = torch.from_numpy(data.actions).to(config.device)
        spread = latents.std(0)
        self.scale = spread.clamp_min(0.01 * spread.max())  # latent dims count alike; dead ones don't explode
        self.train = dynamics_windows(data, train_eps, config.unroll)
        if not len(self.train[0]):
            raise ValueError(
                f"No training episode has more than {config.unroll} steps to unroll: "
                "collect longer episodes or lower the unroll."
            )
        val = dynamics_windows(data, val_eps, config.unroll)
        if not len(val[0]):  # no validation episode (that long): validate on training windows
            val = self.train
        pick = rng.choice(len(val[0]), size=min(256, len(val[0])), replace=False)
        self.val_anchors, *self.val_batch = window_batch(
            latents, self.actions, val[0][pick], val[1][pick], config, rng
        )
        self._frames, self._unroll, self._device = data.frames, config.unroll, config.device

    @cached_property
    def val_frames(self) -> torch.Tensor:
        """The validation windows' true frames (B, unroll + 1, 3, H, W), loaded when first asked."""
        index = self.val_anchors[:, None] + np.arange(self._unroll + 1)
        return to_float(torch.from_numpy(self._frames[index]).to(self._device))

    def sample(self, size: int, config, rng):
        """(anchors, context latents, actions, target latents) of `size` random training windows."""
        pick = rng.integers(len(self.train[0]), size=size)
        return window_batch(self.latents, self.actions, self.train[0][pick], self.train[1][pick], config, rng)

    def latent_loss(
        self,
        predicted: torch.Tensor,
        targets: torch.Tensor,
        weight=1.0,
        log_steps: bool = False,
        huber: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Squared error of (B, U, Z) latents, per dim scaled by the latents' spread and weighted:
        its mean, or with `log_steps` the mean over steps of its log. `huber` (Z,): per dim, the
        scaled error beyond which it counts linearly, with the slope it has there."""
        error = (predicted - targets) / self.scale
        squared = error**2
        if huber is not None:
            squared = torch.where(error.abs() > huber, 2 * huber * error.abs() - huber**2, squared)
        error = squared * weight
        if not log_steps:
            return error.mean()
        return torch.log(error.mean(dim=(0, 2)) + 1e-12).mean()


def train_dynamics(
    model: LatentWorldModel,
    data: EpisodeData,
    latents: torch.Tensor,
    states: torch.Tensor | None,
    poses: torch.Tensor | None,
    train_eps: np.ndarray,
    val_eps: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
    pixels: bool = False,
) -> dict:
    """Stage 2: predict `unroll` latents open-loop from the context; loss on all of them. State
    dynamics also learn from the recorded simulator states (normalised, (N, S)); a contact gate
    from the frames' poses (normalised, (N, P)). With `pixels`, stage 3: the same, continued,
    plus the pixel loss of decoded predictions (see TrainConfig)."""
    windows = Windows(data, latents, train_eps, val_eps, config, rng)
    poses = None if poses is None else poses.to(latents.device)
    weight = torch.ones(latents.shape[1], device=latents.device)
    weight[: model.config.pose_dims] = config.dynamics_pose_weight
    huber = point_huber_deltas(model.config, config.point_huber, windows.scale)

    def batch_loss() -> torch.Tensor:
        anchors, context, window_actions, targets, past = windows.sample(
            config.dynamics_batch_size, config, rng
        )
        # Told when the ball truly bounces and how fast it then moves, and taught to tell.
        contacts = speeds = None
        if model.config.contact_gate:
            contacts = true_contacts(model.config, poses, anchors, context, targets.shape[1])
        if model.config.speed_classes:
            speeds = true_speeds(model.dynamics, poses, anchors, targets.shape[1])
        if contacts is None and speeds is None:
            predicted, heads = unroll_latents(model, context, window_actions, past), {}
        else:
            predicted, heads = unroll_with_heads(model, context, window_actions, contacts, speeds, past)
        target_weight = point_weights(model.config, targets, weight, config.point_weight)
        loss = windows.latent_loss(predicted, targets, target_weight, config.log_step_loss, huber)
        if contacts is not None:
            loss = loss + F.binary_cross_entropy_with_logits(heads["contact"], contacts)
        if speeds is not None:
            loss = loss + F.cross_entropy(heads["speed"].flatten(0, 2), speeds.flatten())
        if pixels:
            loss = loss + pixel_loss(model, data, anchors, context, predicted, window_actions, config, rng)
        if states is not None:
            loss = loss + state_losses(
                model, windows, states, anchors, context, window_actions, targets, weight
            )
        return loss

    groups = [{"params": list(model.dynamics.parameters())}]
    if pixels and config.decoder_lr:
        groups.append({"params": list(model.decoder.parameters()), "lr": config.decoder_lr})
    model.decoder.requires_grad_(len(groups) > 1)  # frozen, the pixel loss reaches only the dynamics
    try:
        return fit(
            "pixels" if pixels else "dynamics",
            groups,
            batch_loss,
            lambda: evaluate_dynamics(model, windows, states, poses, config),
            steps=config.pixel_steps if pixels else config.dynamics_steps,
            lr=config.pixel_lr if pixels else config.dynamics_lr,
            samples_per_step=config.dynamics_batch_size,
            val_every=config.val_every,
        )
    finally:
        model.decoder.requires_grad_(True)


def normalised_poses(config: LatentConfig, poses: np.ndarray) -> torch.Tensor:
    """The readers' values (N, pose_dims) as the model's pose dims hold them (float32)."""
    return torch.from_numpy(
        ((poses - np.array(config.pose_mean)) / np.array(config.pose_std)).astype(np.float32)
    )


def _readings(config: LatentConfig, poses: torch.Tensor) -> torch.Tensor:
    """Normalised poses (N, pose_dims) -> the readers' values (render pixels, 0/1 flags)."""
    return poses.cpu().double() * torch.tensor(config.pose_std) + torch.tensor(config.pose_mean)


def _steps_in_view(
    data: EpisodeData, episodes: np.ndarray, seen: torch.Tensor, first: int = 1
) -> torch.Tensor:
    """The frames t of `episodes` (from their `first` on, not the last) whose reading is in view
    (`seen`, (N,) bool) at t-1, t and t+1: steps t -> t+1 with a move before and after them."""
    steps = torch.from_numpy(np.concatenate([_episode_indices(data, e)[first:-1] for e in episodes]))
    return steps[seen[steps - 1] & seen[steps] & seen[steps + 1]]


def memory_entries(
    config: LatentConfig, poses: torch.Tensor, data: EpisodeData, episodes: np.ndarray, memory: dict
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A point memory's entries (LatentDynamics.recall), from the readers' positions `poses`
    (normalised, (N, pose_dims)) in `episodes`: every step t -> t+1 where the first point is in
    view at t-1, t and t+1 and at t at or past the zone's edge: its key (MEMORY_KEY_SIZE, render
    pixels; with key_actions, + whether the step's action is one), the point's move in x and y,
    and its path (path_steps, 3: the next moves in x and y and 1 while the point stayed in view;
    path_steps 0: none)."""
    x_dim, y_dim, seen_dim = config.points[0]
    row_dim = memory["row_dim"]
    raw = _readings(config, poses)
    seen = raw[:, seen_dim] > 0.5
    steps = _steps_in_view(data, episodes, seen)
    steps = steps[raw[steps, x_dim] >= memory["x_low"]]
    now, before, after = raw[steps], raw[steps - 1], raw[steps + 1]
    motion = now - before
    keys = memory_key(
        now[:, x_dim], now[:, y_dim], motion[:, x_dim], motion[:, y_dim], now[:, row_dim], after[:, row_dim]
    )
    if memory.get("key_actions"):
        pressed = np.isin(np.asarray(data.actions)[steps.numpy()], memory["key_actions"])
        keys = torch.cat([keys, torch.from_numpy(pressed).to(keys.dtype)[:, None]], dim=1)
    moves = after[:, [x_dim, y_dim]] - now[:, [x_dim, y_dim]]
    path = torch.zeros(len(steps), int(memory.get("path_steps", 0)), 3, dtype=raw.dtype)
    episode_of = np.repeat(np.arange(len(data.episode_lengths)), data.episode_lengths)
    going = torch.ones(len(steps), dtype=torch.bool)
    for k in range(path.shape[1]):  # the moves t+1+k -> t+2+k while in view, in the episode
        frame, nxt = (steps + 1 + k).clamp(max=len(raw) - 1), (steps + 2 + k).clamp(max=len(raw) - 1)
        same = torch.from_numpy(episode_of[nxt.numpy()] == episode_of[steps.numpy()])
        going = going & same & seen[frame] & seen[nxt] & (steps + 2 + k < len(raw))
        path[:, k, :2] = (raw[nxt][:, [x_dim, y_dim]] - raw[frame][:, [x_dim, y_dim]]) * going[:, None]
        path[:, k, 2] = going
    return keys.float(), moves.float(), path.float()


def memory_tables(
    keys: torch.Tensor, moves: torch.Tensor, paths: torch.Tensor, with_paths: bool
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None]:
    """Point memory entries (`memory_entries`, from several collections concatenated) as the
    model stores them: each distinct (key, move, a return's path) once (branches repeat the steps
    before their branch point by the thousand), and with paths, the returns' (the point moving right
    into the step, left in it) as a table of their own: every entry's path number (-1 none),
    the paths (R, path_steps, 2) and their lengths (R,)."""
    returns = (keys[:, 2] > 0) & (moves[:, 0] < 0)
    paths = paths * returns[:, None, None]  # only a return's path is kept: others count once
    rows = torch.cat([keys, moves, paths.flatten(1)], dim=1).unique(dim=0)
    keys, moves = rows[:, : keys.shape[1]], rows[:, keys.shape[1] : keys.shape[1] + 2]
    if not with_paths:
        return keys, moves, None
    paths = rows[:, keys.shape[1] + 2 :].view(len(rows), -1, 3)
    lengths = paths[:, :, 2].sum(dim=1).long()
    returns = lengths > 0  # only returns kept their paths
    path_of = torch.full((len(rows),), -1, dtype=torch.int64)
    path_of[returns] = torch.arange(int(returns.sum()))
    steps, lengths = paths[returns, :, :2].contiguous(), lengths[returns]
    if not len(steps):  # no return in the data: one empty path, never started (the state indexes it)
        steps, lengths = paths.new_zeros(1, paths.shape[1], 2), lengths.new_zeros(1)
    return keys, moves, (path_of, steps, lengths)


def row_memory_entries(
    config: LatentConfig, poses: torch.Tensor, data: EpisodeData, episodes: np.ndarray, memory: dict
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A row memory's entries (LatentDynamics.step_row) from the readers' positions `poses`
    (normalised, (N, pose_dims)) and the actions of `episodes`: for every step t -> t+1 with the
    row in view at t-1, t and t+1 and N actions before it, the code of its action groups
    (`action_history_code`), its key (the row's last move to 0.1 px, its place to the pixel) and
    the row's next move (to 0.1 px); one entry per distinct code and key, the move most often
    made there (a table: noise averaged out, a few thousand entries where a million steps fed it)."""
    dim, count = memory["row_dim"], memory["actions"]
    groups = torch.tensor(memory["groups"], dtype=torch.float32)
    raw = _readings(config, poses)
    # a step needs the row before it (its in-view flag is the next dim) and N actions up to it
    steps = _steps_in_view(data, episodes, raw[:, dim + 1] > 0.5, first=max(1, count - 1))
    actions = torch.as_tensor(data.actions).long()
    history = groups[actions[steps[:, None] - torch.arange(count - 1, -1, -1)]]  # (S, N), oldest first
    codes = action_history_code(history, max(memory["groups"]) + 1)
    row, at = raw[:, dim].numpy(), steps.numpy()
    last, place = np.round((row[at] - row[at - 1]) * 10), np.round(row[at])
    move = np.round((row[at + 1] - row[at]) * 10)
    cells, cell_of = np.unique(np.stack([codes.numpy(), last, place], 1), axis=0, return_inverse=True)
    pairs, counts = np.unique(np.stack([cell_of.ravel(), move], 1), axis=0, return_counts=True)
    order = np.lexsort((-counts, pairs[:, 0]))  # by cell, then the most common move first
    winners = order[np.r_[True, np.diff(pairs[order, 0]) != 0]]  # each cell's first
    codes, keys = cells[:, 0], np.stack([cells[:, 1] / 10, cells[:, 2]], 1)
    return tuple(torch.tensor(a, dtype=torch.float32) for a in (codes, keys, pairs[winners, 1] / 10))


def point_weights(
    config: LatentConfig, targets: torch.Tensor, weight: torch.Tensor, point_weight: float
) -> torch.Tensor:
    """The loss weight of every target latent (..., Z) (or pose: only z's first dims): `weight`
    per dim, and with a `point_weight`, each point's x and y weighted by it where the target
    shows the object and 0 where it does not (see TrainConfig.point_weight)."""
    if not point_weight or not config.points:
        return weight
    weights = weight.expand_as(targets).clone()
    for x_dim, y_dim, seen_dim in config.points:
        seen = targets[..., seen_dim] * config.pose_std[seen_dim] + config.pose_mean[seen_dim] > 0.5
        weights[..., [x_dim, y_dim]] = point_weight * weight[[x_dim, y_dim]] * seen[..., None]
    return weights


def reading_weights(
    config: LatentConfig, poses: torch.Tensor, weight: torch.Tensor, reading_weight: float
) -> torch.Tensor:
    """`weight` (per dim, or per pose and dim) with every object reading that is no point's (a
    paddle's row) weighted `reading_weight` times where its flag, the dim after it, says its
    object is in view (frame poses; see TrainConfig.pose_reading_weight)."""
    if not reading_weight:
        return weight
    weights = weight.expand_as(poses).clone()
    in_points = {dim for point in config.points for dim in point}
    for dim in range(0, config.pose_dims - 1, 2):
        if dim not in in_points:
            seen = poses[..., dim + 1] * config.pose_std[dim + 1] + config.pose_mean[dim + 1] > 0.5
            weights[..., dim] = weights[..., dim] * (1 + (reading_weight - 1) * seen)
    return weights


# View pixels by which a point's motion must change in one step to count as a contact: a bounce
# changes Pong's ball by 4-8, a change of speed by 2; the encoder's positions wobble by ~0.3.
CONTACT_PIXELS = 1.5


def true_contacts(
    config: LatentConfig, poses: torch.Tensor, anchors: np.ndarray, context: torch.Tensor, steps: int
) -> torch.Tensor:
    """(B, steps, P) 0/1: at each step after the windows' anchors, whether point p's motion
    changed by over CONTACT_PIXELS view pixels (in x or y) from the step before. Read from the
    frames' poses (N, pose_dims), normalised as the pose dims (the object readers' positions: what
    the encoder learns to output, without its error). Before the first step the ball moves as
    into the anchor frame, or not at all where the context is one frame (repeated), as the
    dynamics start."""
    units = point_pixel_units(config)[: poses.shape[1]].to(poses.device)
    index = torch.from_numpy(anchors)[:, None] + torch.arange(-1, steps + 1)
    motion = poses[index.clamp_min(0)].diff(dim=1)  # (B, steps + 1, D): [0] is into the anchor
    one_frame = (context[:, -1] == context[:, 0]).all(dim=1)
    motion[:, 0] = torch.where(one_frame[:, None], torch.zeros_like(motion[:, 0]), motion[:, 0])
    change = (motion[:, 1:] - motion[:, :-1]).abs() / units.clamp_min(1e-12)  # view pixels
    return torch.stack(
        [change[..., [x_dim, y_dim]].amax(-1) > CONTACT_PIXELS for x_dim, y_dim, _ in config.points], dim=-1
    ).float()


def true_speeds(dynamics, poses: torch.Tensor, anchors: np.ndarray, steps: int) -> torch.Tensor:
    """(B, steps, D) class indices for speed-class dynamics: at each step after the windows'
    anchors, per point axis, the steady speed the frames' poses (normalised, the readers') move
    by, where the point is in view before and after and moves within the snap tolerance of one;
    else the last class, "other" (a ball leaving, served, or half behind a wall)."""
    axes, codes = dynamics.speed_axes, dynamics.speed_codes[:, :-1]  # (D,), (D, K)
    index = torch.from_numpy(anchors)[:, None] + torch.arange(0, steps + 1)
    window = poses[index]  # (B, steps + 1, pose_dims)
    motion = window[..., axes].diff(dim=1)  # (B, steps, D)
    seen = dynamics.in_view(window)[..., axes]
    seen = seen[:, 1:] & seen[:, :-1]
    nearest, index = (motion[..., None] - codes).abs().min(dim=-1)
    close = nearest < dynamics.snap_tolerance[axes]
    return torch.where(seen & close, index, torch.full_like(index, codes.shape[1]))


def point_huber_deltas(config: LatentConfig, pixels: float, scale: torch.Tensor) -> torch.Tensor | None:
    """(Z,): `pixels` view pixels in the units `Windows.latent_loss` scores each point's x and y
    in (normalised pose over the latents' spread); for every other dim, an error none reaches
    (finite: an infinite one would turn the unused branch's gradient into NaN). None without."""
    if not pixels or not config.points:
        return None
    units = point_pixel_units(config).to(scale.device)
    return torch.where(units > 0, pixels * units / scale, torch.full_like(scale, 1e6))


def pixel_loss(
    model: LatentWorldModel,
    data: EpisodeData,
    anchors: np.ndarray,
    context: torch.Tensor,
    predicted: torch.Tensor,
    actions: torch.Tensor,
    config: TrainConfig,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Mean log MSE of one decoded step per window (a random one of the first `pixel_horizon`),
    drawn over the window's last context frame as a rollout draws over its start frame."""
    size = len(anchors)
    step = rng.integers(0, min(config.pixel_horizon, predicted.shape[1]), size=size)
    frames = data.frames[np.concatenate([anchors, anchors + 1 + step])]
    reference, truth = to_float(torch.from_numpy(frames)).to(predicted.device).chunk(2)
    rows, step = torch.arange(size), torch.from_numpy(step)
    drawn = model.decode(predicted[rows, step], context[:, -1], reference, actions[rows, step]).clamp(0, 1)
    # + 1e-6: a frame drawn to 60 dB counts as perfect, so no frame's log can run away.
    return torch.log(((drawn - truth) ** 2).mean(dim=(1, 2, 3)) + 1e-6).mean()


def state_losses(model, windows, states, anchors, context, actions, targets, weight) -> torch.Tensor:
    """What the recorded states teach state dynamics directly, besides the end-to-end latent loss:
    the start-state estimate (Gaussian likelihood: its spread is what sampling draws from), the
    physics from the true start state, and the readout of latents from true states."""
    dynamics = model.dynamics
    steps = torch.arange(actions.shape[1])
    start = states[torch.from_numpy(anchors)]
    future = states[torch.from_numpy(anchors)[:, None] + 1 + steps[None]]  # (B, U, S)
    mean, log_std = dynamics.estimate_state(context)
    estimate = (0.5 * ((start - mean) / log_std.exp()) ** 2 + log_std).mean()
    state, stepped = start, []
    for t in range(actions.shape[1]):
        state = state + dynamics.transition(
            torch.cat([state, embed_actions(dynamics.embed_action, actions[:, t])], dim=1)
        )
        stepped.append(state)
    physics = F.mse_loss(torch.stack(stepped, dim=1), future)
    read = context[:, -1, None] + dynamics.readout(future) - dynamics.readout(start)[:, None]
    return estimate + STATE_PHYSICS_WEIGHT * physics + windows.latent_loss(read, targets, weight)


# Normalised state errors are small numbers next to latent errors; the physics must be precise.
STATE_PHYSICS_WEIGHT = 10.0


def unroll_latents(
    model: LatentWorldModel, context: torch.Tensor, actions: torch.Tensor, past: torch.Tensor | None = None
) -> torch.Tensor:
    """Open-loop latent rollout: context (B, K, Z), actions (B, U, ...) -> predicted z (B, U, Z)."""
    state = model.dynamics.start(context, None, past)
    predicted = []
    for t in range(actions.shape[1]):
        state = model.dynamics.step(state, actions[:, t])
        predicted.append(state.z)
    return torch.stack(predicted, dim=1)


def unroll_with_heads(
    model: LatentWorldModel,
    context: torch.Tensor,
    actions: torch.Tensor,
    contacts: torch.Tensor | None = None,
    speeds: torch.Tensor | None = None,
    past: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`unroll_latents` that also returns the dynamics' heads' logits per step (B, U, ...):
    the contact gate's, the speed classes'. `contacts` (B, U, P), the true changes, open the
    gate, and `speeds` (B, U, D), the true classes, pick the speeds, instead of the heads."""
    state = model.dynamics.start(context, None, past)
    predicted, heads = [], []
    for t in range(actions.shape[1]):
        state, step_heads = model.dynamics.step_with_heads(
            state,
            actions[:, t],
            None if contacts is None else contacts[:, t],
            None if speeds is None else speeds[:, t],
        )
        predicted.append(state.z)
        heads.append(step_heads)
    return torch.stack(predicted, dim=1), {k: torch.stack([h[k] for h in heads], dim=1) for k in heads[0]}


@torch.no_grad()
def evaluate_dynamics(model, windows: Windows, states: torch.Tensor | None, poses, config) -> dict:
    """Latent error, and PSNR of decoded predictions at a few horizons (model / copy baseline);
    for state dynamics also the RMSE of the estimated start state (normalised units)."""
    context, actions, targets, past = windows.val_batch
    val_frames = windows.val_frames
    predicted = unroll_latents(model, context, actions, past)
    result = {"latent_mse": float(windows.latent_loss(predicted, targets))}
    if model.config.contact_gate:  # does the gate open where the ball's motion truly changes?
        contacts = true_contacts(model.config, poses, windows.val_anchors, context, config.unroll) > 0
        said = unroll_with_heads(model, context, actions, contacts, past=past)[1]["contact"] > 0
        result["contact_recall"] = float((said & contacts).sum() / contacts.sum().clamp_min(1))
        result["contact_precision"] = float((said & contacts).sum() / said.sum().clamp_min(1))
    if model.config.speed_classes:  # told the true speeds so far, does it pick the next one?
        speeds = true_speeds(model.dynamics, poses, windows.val_anchors, config.unroll)
        logits = unroll_with_heads(model, context, actions, speeds=speeds, past=past)[1]["speed"]
        picked = (logits + model.dynamics.speed_mask).argmax(-1)
        changed = speeds != torch.cat([speeds[:, :1], speeds[:, :-1]], 1)  # from the step before
        result["speed_accuracy"] = float((picked == speeds).float().mean())
        result["speed_change_accuracy"] = float((picked == speeds)[changed].float().mean())
    if states is not None:
        mean, _ = model.dynamics.estimate_state(context)
        result["state_rmse"] = float(F.mse_loss(mean, states[torch.from_numpy(windows.val_anchors)]).sqrt())
    ref = val_frames[:, 0]
    for horizon in (1, 5, 10, config.unroll):
        if horizon <= config.unroll:
            frames = model.decode(predicted[:, horizon - 1], context[:, -1], ref, actions[:, horizon - 1])
            frames = frames.clamp(0, 1)
            truth = val_frames[:, horizon]
            result[f"psnr_h{horizon}"] = float(psnr(frames, truth).mean())
            result[f"copy_h{horizon}"] = float(psnr(ref, truth).mean())
    return result


def outcome_targets(data: EpisodeData, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame: the reward of the step into it, and whether the real episode had ended by it."""
    if data.rewards is None or data.terminals is None:
        raise ValueError(
            "This data has no rewards and episode ends (collected before they were recorded): "
            "collect it again, or train without the outcome stage (--outcome-steps 0)."
        )
    return (
        torch.from_numpy(data.rewards.astype(np.float32)).to(device),
        torch.from_numpy(data.terminals.astype(np.float32)).to(device),
    )


# A reward head is snapped to the rewards of its training data (LatentConfig.reward_values) where
# they are at most this many distinct values. Games that score in points have a handful: Pong 3,
# CartPole 2 (1 per step, 0 when played past its end), Acrobot 2, MountainCar 1, Breakout's bricks
# at most 4 (0, 1, 4, 7). A reward that measures something continuous has hundreds: CarRacing's
# 60,000 frames 163 (each track's tile reward differs with its length), Pendulum and LunarLander
# about one per step. Any bound between leaves them apart; 8 leaves a game room for a few more
# kinds of points. (One CarRacing track alone has 2: the count needs more than a few episodes.)
REWARD_SNAP_MAX_VALUES = 8


def reward_values(data: EpisodeData) -> list[float]:
    """The distinct rewards of the data's steps, ascending, where there are at most
    REWARD_SNAP_MAX_VALUES of them; else none (the head's reward is not snapped)."""
    steps = np.ones(len(data.rewards), dtype=bool)
    steps[data.episode_starts] = False  # an episode's first frame holds a filler 0, no step's reward
    values = np.unique(data.rewards[steps])
    return values.tolist() if len(values) <= REWARD_SNAP_MAX_VALUES else []


# Frames drawn and encoded again for a head reading the frame (TrainConfig.outcome_input): a
# random sample of the training frames (CartPole's 120,000 would take 4 minutes), and a tenth as
# many held out.
OUTCOME_FRAMES = 40_000


@torch.no_grad()
def redrawn_latents(
    model: LatentWorldModel, data: EpisodeData, target: np.ndarray, config: TrainConfig, rng, batch: int = 256
) -> torch.Tensor:
    """(N, Z): each target frame as the decoder draws it from its own latent, over an earlier
    frame of its episode (as a dream draws over its start), in 8-bit colour, encoded again."""
    reference = reference_frames(data, target, config.max_reference_gap, rng)
    incoming = incoming_actions(model, data)
    out = []
    for start in tqdm(range(0, len(target), batch), desc="draw frames", unit="batch", leave=False):
        index, ref_index = target[start : start + batch], reference[start : start + batch]
        frames = to_float(torch.from_numpy(data.frames[np.concatenate([index, ref_index])])).to(config.device)
        with _autocast(config):
            z, z_ref = model.encode(frames).chunk(2)
            drawn = model.decode(z, z_ref, frames[len(index) :], incoming(index)).float().clamp(0, 1)
            out.append(model.seen_latent(drawn))
    return torch.cat(out)


def train_outcome_on_frames(
    model: LatentWorldModel,
    data: EpisodeData,
    train_eps: np.ndarray,
    val_eps: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
) -> dict:
    """Stage 4 for a head reading the drawn frame: the same losses as `train_outcome`, on frames
    redrawn once (`redrawn_latents`); each frame's labels are the step into it."""
    rewards, ended = outcome_targets(data, config.device)
    frames = {}
    held_out = val_eps if len(val_eps) else train_eps
    splits = (("train", train_eps, OUTCOME_FRAMES), ("val", held_out, OUTCOME_FRAMES // 10))
    for name, episodes, count in splits:
        index = np.concatenate([_episode_indices(data, e)[1:] for e in episodes])  # frames a step led to
        index = np.sort(rng.choice(index, size=min(count, len(index)), replace=False))
        inputs = redrawn_latents(model, data, index, config, rng)
        frames[name] = (inputs, torch.from_numpy(index).to(config.device))
    loss = outcome_loss(rewards, ended)
    samples = config.dynamics_batch_size * config.unroll  # as many as a batch of windows

    def batch_loss() -> torch.Tensor:
        inputs, index = frames["train"]
        pick = torch.from_numpy(rng.integers(len(index), size=samples)).to(index.device)
        reward, logit = model.outcome_head(inputs[pick]).unbind(dim=1)
        return loss(reward, logit, rewards[index[pick]], ended[index[pick]])

    @torch.no_grad()
    def evaluate() -> dict:
        inputs, index = frames["val"]
        reward, logit = model.outcome_head(inputs).unbind(dim=1)
        return _outcome_scores(reward, logit, rewards[index], ended[index])

    result = _fit_outcome_head(model, batch_loss, evaluate, config, samples)
    return {**result, "drawn_frames": {name: len(index) for name, (_, index) in frames.items()}}


def outcome_loss(rewards: torch.Tensor, ended: torch.Tensor):
    """The outcome head's loss over all the data's rewards and ends: (reward, logit, true reward,
    true end) -> each step's reward regressed (scaled by the rewards' spread) plus episode end as
    a binary label, weighted by how rare it is, since most frames are not ends."""
    reward_scale = rewards.std().clamp_min(1e-3)
    ends = float(ended.mean())
    end_weight = torch.tensor(min(max((1 - ends) / max(ends, 1e-6), 1.0), 50.0), device=rewards.device)

    def loss(reward, logit, true_reward, true_end) -> torch.Tensor:
        reward_loss = F.mse_loss(reward / reward_scale, true_reward / reward_scale)
        return reward_loss + F.binary_cross_entropy_with_logits(logit, true_end, pos_weight=end_weight)

    return loss


def _fit_outcome_head(model, batch_loss, evaluate, config: TrainConfig, samples_per_step: int) -> dict:
    return fit(
        "outcome",
        [{"params": list(model.outcome_head.parameters())}],
        batch_loss,
        evaluate,
        steps=config.outcome_steps,
        lr=config.outcome_lr,
        samples_per_step=samples_per_step,
        val_every=config.val_every,
    )


def _outcome_scores(reward, logit, true_reward, true_end) -> dict:
    said, real = logit > 0, true_end > 0.5
    return {
        "reward_rmse": float(F.mse_loss(reward, true_reward).sqrt()),
        "reward_std": float(true_reward.std()),
        "end_recall": float((said & real).sum() / real.sum().clamp_min(1)),  # ends the model saw
        "end_precision": float((said & real).sum() / said.sum().clamp_min(1)),
        "end_share": float(real.float().mean()),
    }


def train_outcome(
    model: LatentWorldModel,
    data: EpisodeData,
    latents: torch.Tensor,
    train_eps: np.ndarray,
    val_eps: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
) -> dict:
    """Stage 4: the reward and episode-end head, on the frozen dynamics' open-loop predictions
    (`outcome_loss`)."""
    windows = Windows(data, latents, train_eps, val_eps, config, rng)
    rewards, ended = outcome_targets(data, latents.device)
    loss = outcome_loss(rewards, ended)
    steps = torch.arange(config.unroll)

    def predictions(anchors, context, window_actions, past):
        with torch.no_grad():
            z = unroll_latents(model, context, window_actions, past)  # (B, U, Z)
        before = torch.cat([context[:, -1:], z[:, :-1]], dim=1)
        reward, logit = model.outcome_logits(before.flatten(0, 1), z.flatten(0, 1))
        index = torch.from_numpy(anchors)[:, None] + 1 + steps[None]  # the frames the steps lead to
        return reward, logit, rewards[index].flatten(), ended[index].flatten()

    def batch_loss() -> torch.Tensor:
        anchors, context, window_actions, _, past = windows.sample(config.dynamics_batch_size, config, rng)
        return loss(*predictions(anchors, context, window_actions, past))

    @torch.no_grad()
    def evaluate() -> dict:
        context, window_actions, _, past = windows.val_batch
        reward, logit, true_reward, true_end = predictions(windows.val_anchors, context, window_actions, past)
        return _outcome_scores(reward, logit, true_reward, true_end)

    return _fit_outcome_head(model, batch_loss, evaluate, config, config.dynamics_batch_size)
