"""What the dynamics stage trains on and what its losses measure."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch


def _windows(config, share: float, at_reset: bool):
    from worldsim.training.train import window_batch

    latents = torch.arange(100, dtype=torch.float32)[:, None].repeat(1, 3)  # frame i has latent i
    actions = torch.arange(100)
    anchors = np.array([12, 15, 40, 55, 70])
    firsts = np.array([10, 10, 30, 50, 50])  # the episode each anchor lies in starts there
    config = replace(config, single_frame_share=share, single_frame_at_reset=at_reset)
    return window_batch(latents, actions, anchors, firsts, config, np.random.default_rng(0))


def test_single_frame_windows_can_start_at_their_episode_start():
    from worldsim.training.train import TrainConfig

    config = TrainConfig(env="cartpole", context_frames=2, unroll=4)
    anchors, context, actions, targets, past = _windows(config, share=1.0, at_reset=True)
    assert past is None  # the model takes no past actions
    assert anchors.tolist() == [10, 10, 30, 50, 50]
    assert context[:, :, 0].tolist() == [[10, 10], [10, 10], [30, 30], [50, 50], [50, 50]]  # one frame
    assert actions[0].tolist() == [10, 11, 12, 13] and targets[0, :, 0].tolist() == [11, 12, 13, 14]
    anchors, context, *_ = _windows(config, share=1.0, at_reset=False)  # anywhere in the episode
    assert anchors.tolist() == [12, 15, 40, 55, 70] and context[:, 0, 0].tolist() == [12, 15, 40, 55, 70]
    anchors, context, *_ = _windows(config, share=0.0, at_reset=True)  # 1 or 2 frames: not moved
    assert anchors.tolist() == [12, 15, 40, 55, 70] and context[:, -1, 0].tolist() == [12, 15, 40, 55, 70]


def test_windows_know_the_actions_played_into_their_start_within_the_episode_or_none():
    from worldsim.training.train import TrainConfig, past_window_actions

    anchors, firsts = np.array([12, 15, 40, 55, 70] * 40), np.array([10, 10, 30, 50, 50] * 40)
    config = TrainConfig(env="pong", past_actions=3, past_known_share=0.5)
    past = past_window_actions(torch.arange(100), anchors, firsts, config, np.random.default_rng(0))
    known = past[:, -1] >= 0
    assert 0.3 < known.float().mean() < 0.7  # half the windows know them, the others none
    assert (past[~known] == -1).all()
    # actions[t] leads from frame t into t + 1: into frame 12 came 9 (before the episode), 10, 11
    assert past[known & torch.from_numpy(anchors == 12)][0].tolist() == [-1, 10, 11]
    assert past[known & torch.from_numpy(anchors == 70)][0].tolist() == [67, 68, 69]
    continuous = past_window_actions(
        torch.arange(200.0).view(100, 2),
        anchors,
        firsts,
        replace(config, past_known_share=1.0),
        np.random.default_rng(0),
    )
    assert (
        continuous.shape == (200, 3, 2)
        and continuous[0, 0].isnan().all()
        and continuous[0, 1].tolist() == [20, 21]
    )


def test_log_step_loss_counts_each_step_relative_to_its_own_error():
    from worldsim.training.train import Windows

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


def pong_pose_config():
    """A small Pong config whose pose dims are paddle_y, its flag, ball_x, its flag, ball_y, its
    flag; the ball is point 0."""
    from worldsim.envs.builtin import get_spec
    from worldsim.models.latent import LatentConfig

    return LatentConfig.for_env(
        get_spec("pong"),
        latent_dim=8,
        pose_dims=6,
        pose_mean=[100.0, 0.5, 80.0, 0.5, 100.0, 0.5],
        pose_std=[30.0, 0.5, 20.0, 0.5, 30.0, 0.5],
        points=[[2, 4, 3]],
    )


def test_point_weights_count_a_point_only_where_its_object_is_in_view():
    from worldsim.training.train import point_weights

    config = pong_pose_config()
    weight = torch.ones(8)
    weight[:6] = 10.0
    targets = torch.zeros(2, 3, 8)  # (windows, steps, latent)
    targets[0, :, 3] = 1.0  # normalised flag 1: 0.5 + 0.5 * 1 = in view
    targets[1, :, 3] = -1.0  # out of view: its x and y are the mean the reader filled in
    weights = point_weights(config, targets, weight, point_weight=5.0)
    assert weights.shape == (2, 3, 8)
    assert (weights[0, :, [2, 4]] == 50.0).all() and (weights[1, :, [2, 4]] == 0.0).all()
    others = [0, 1, 3, 5, 6, 7]
    assert torch.equal(weights[:, :, others], weight[others].expand(2, 3, 6))
    assert point_weights(config, targets, weight, point_weight=0.0) is weight  # off: as before


def test_true_contacts_mark_the_steps_where_a_points_motion_changes():
    """A ball flying straight has no contact; a bounce, a change of speed and a ball set moving
    from one context frame each have one, at the step where its motion changes. Half a pixel of
    the reader's jitter is none."""
    from worldsim.envs.builtin import get_spec
    from worldsim.models.latent import LatentConfig
    from worldsim.training.train import true_contacts

    spec = get_spec("pong")
    _, _, row_step, col_step = spec.view_in_render()  # screen pixels per view pixel
    config = LatentConfig.for_env(
        spec, latent_dim=8, pose_dims=6, pose_mean=[0.0] * 6, pose_std=[1.0] * 6, points=[[2, 4, 3]]
    )
    x_motion = [2, 2, 2, 2, -2, -2, -2]  # view pixels a step into frames 1..7: a bounce into 5
    y_motion = [4, 4, 4, 2, 2, 2, 2.5]  # slowed into frame 4; jitter into frame 7
    poses = torch.zeros(8, 6)  # one episode, frames 0..7; normalised poses are screen pixels here
    poses[1:, 2] = torch.tensor(x_motion).cumsum(0) * col_step
    poses[1:, 4] = torch.tensor(y_motion).cumsum(0) * row_step
    anchors = np.array([1, 1])  # six steps after frame 1: into frames 2..7
    context = torch.zeros(2, 2, 8)
    context[0, 0, 0] = 1.0  # two different frames: the ball moves as into frame 1
    contacts = true_contacts(config, poses, anchors, context, steps=6)
    assert contacts.shape == (2, 6, 1)
    assert contacts[0, :, 0].tolist() == [0, 0, 1, 1, 0, 0]
    assert contacts[1, :, 0].tolist() == [1, 0, 1, 1, 0, 0]  # one frame: set moving at step 1


def test_steady_speeds_are_the_motions_a_point_keeps_for_several_steps():
    """A ball's steady speeds are the per-step motions it holds three steps running in view: a
    one-step oddity (half hidden behind a wall), motion into or out of view and a second episode's
    first frame are not speeds."""
    from worldsim.data.collect import EpisodeData
    from worldsim.training.train import steady_speeds

    x = [0, 4, 8, 12, 16, 19, 15, 11, 7, 3, 50, 54, 58, 62, 66]  # 4 a step, a 3, then -4; out; 4
    seen = [1] * 9 + [0] + [1] * 5
    y = [0] * 15
    poses = np.array([[x[i], seen[i], y[i], 1.0] for i in range(len(x))], dtype=np.float64)
    data = EpisodeData.__new__(EpisodeData)
    data.episode_starts, data.episode_lengths = np.array([0, 11]), np.array([11, 4])
    speeds = steady_speeds(poses, data, [[0, 2, 1]], share=0.01)
    assert speeds == [[[-4.0, 4.0], [0.0]]]


def test_reading_weights_count_a_paddle_only_where_it_is_in_view():
    """pose_reading_weight: the readings that are no point's (a paddle's row) count that many
    times where their flag says the object is in view; points and flags are left as they were."""
    from worldsim.training.train import reading_weights

    config = pong_pose_config()
    poses = torch.zeros(2, 6)
    poses[0, 1], poses[1, 1] = 1.0, -1.0  # the paddle in view, then not
    weights = reading_weights(config, poses, torch.ones(6), reading_weight=30.0)
    assert weights[0, 0] == 30.0 and weights[1, 0] == 1.0
    assert (weights[:, 1:] == 1.0).all()
    assert reading_weights(config, poses, torch.ones(6), reading_weight=0.0).shape == (6,)  # off


def test_pose_bounds_are_where_each_pose_dim_lies_but_for_its_rarest_values():
    """Each pose dim's bounds span its values in the data; one odd reading in a thousand does not
    widen them."""
    from worldsim.training.train import pose_bounds

    rng = np.random.default_rng(0)
    poses = np.stack([rng.uniform(10, 150, 5000), rng.uniform(40, 190, 5000)], axis=1)
    poses[:3, 0] = 400.0  # odd readings
    ((x_low, x_high), (y_low, y_high)) = pose_bounds(poses)
    assert 10 <= x_low < 10.5 and 149.5 < x_high <= 150
    assert 40 <= y_low < 40.5 and 189.5 < y_high <= 190


def test_true_speeds_are_the_classes_of_the_readers_motion():
    """Each step's class is the steady speed the readers' position moves by (within the snap
    tolerance), or "other" where the ball jumps, is out of view before or after, or moves by
    none of its speeds."""
    from worldsim.envs.builtin import get_spec
    from worldsim.models.latent import LatentConfig, LatentWorldModel
    from worldsim.training.train import true_speeds

    spec = get_spec("pong")  # one view pixel: 2 screen pixels; the tolerance 1.5 view pixels
    pose = {"pose_dims": 6, "pose_mean": [0.0] * 6, "pose_std": [1.0] * 6, "points": [[2, 4, 3]]}
    config = LatentConfig.for_env(
        spec,
        latent_dim=8,
        point_momentum=True,
        point_speeds=[[[-4.0, 4.0], [-8.0, 8.0]]],
        speed_classes=True,
        **pose,
    )
    dynamics = LatentWorldModel(config).dynamics
    x = [0, 4, 8.5, 4.5, 40, 44, 48, 52]  # +4, +4.5 (within), -4, a jump, then +4 out of view and back
    seen = [1, 1, 1, 1, 1, 0, 1, 1]
    poses = torch.zeros(8, 6)
    poses[:, 2], poses[:, 3] = torch.tensor(x), torch.tensor(seen, dtype=torch.float32)
    poses[:, 4] = torch.arange(8) * 8.0  # y: +8 every step
    speeds = true_speeds(dynamics, poses, np.array([0]), steps=7)
    other_x, other_y = 2, 2  # each axis: its 2 speeds, then "other"
    assert speeds[0, :, 0].tolist() == [1, 1, 0, other_x, other_x, other_x, 1]
    assert speeds[0, :, 1].tolist() == [1, 1, 1, 1, other_y, other_y, 1]


def test_a_points_error_past_its_huber_pixels_counts_linearly():
    """Huber on a point's coordinates: squared up to the given view pixels, then linear with the
    same slope; every other latent dim keeps its squared error."""
    from worldsim.envs.builtin import get_spec
    from worldsim.models.latent import LatentConfig
    from worldsim.training.train import Windows, point_huber_deltas

    spec = get_spec("pong")  # one view pixel spans 2 screen pixels across, 2.0 down
    config = LatentConfig.for_env(
        spec, latent_dim=8, pose_dims=6, pose_mean=[0.0] * 6, pose_std=[4.0] * 6, points=[[2, 4, 3]]
    )
    windows = Windows.__new__(Windows)  # only the loss: no data
    windows.scale = torch.full((8,), 0.5)
    huber = point_huber_deltas(config, 1.0, windows.scale)
    _, _, row_step, col_step = spec.view_in_render()
    assert huber[2] == pytest.approx(col_step / 4 / 0.5) and huber[4] == pytest.approx(row_step / 4 / 0.5)
    errors = torch.zeros(1, 1, 8)
    errors[..., 2], errors[..., 0] = 5 * huber[2] * 0.5, 3.0  # latent units: 5 deltas; 3 on a pose dim
    loss = windows.latent_loss(errors, torch.zeros_like(errors), huber=huber) * 8
    ball = 2 * huber[2] * 5 * huber[2] - huber[2] ** 2  # linear past the delta, 9 delta^2
    assert loss == pytest.approx(float(ball + (3.0 / 0.5) ** 2))
    assert point_huber_deltas(config, 0.0, windows.scale) is None


def _weights(module) -> dict:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[name], b[name]) for name in a)


@pytest.mark.slow  # a collection and a training (the tiny fixtures)
def test_the_pixels_stage_continues_the_dynamics_the_dynamics_stage_starts_anew(
    tiny_checkpoint, tiny_data, tmp_path
):
    import json

    import worldsim
    from worldsim.training.train import TrainConfig, train

    before = worldsim.load(tiny_checkpoint)
    config = TrainConfig(
        env="cartpole",
        data=str(tiny_data),
        init_from=str(tiny_checkpoint),
        dynamics_batch_size=2,
        unroll=6,
        val_every=1,
        dynamics_steps=1,
        dynamics_lr=0.0,
        pixel_steps=1,
        pixel_lr=0.0,
        decoder_lr=0.0,
    )  # fmt: skip  (zero learning rates: what changes was replaced, not trained)
    continued = train(replace(config, stages="pixels", out=str(tmp_path / "pixels")), command="pytest pixels")
    assert _same(_weights(before.dynamics), _weights(continued.dynamics))
    assert "pixels" in json.loads((tmp_path / "pixels" / "training.json").read_text())
    anew = train(replace(config, stages="dynamics", out=str(tmp_path / "anew")), command="pytest anew")
    assert not _same(_weights(before.dynamics), _weights(anew.dynamics))
    assert "pixels" not in json.loads((tiny_checkpoint / "training.json").read_text())  # 0 steps: skipped
    with pytest.raises(ValueError, match="Nothing to train"):
        train(replace(config, stages="pixels", pixel_steps=0, out=str(tmp_path / "none")), command="none")


@pytest.mark.slow  # a collection and a training (the tiny fixtures)
def test_the_pixel_loss_trains_the_dynamics_and_only_with_a_rate_the_decoder(
    tiny_checkpoint, tiny_data, tmp_path
):
    import worldsim
    from worldsim.training.train import TrainConfig, train

    original = worldsim.load(tiny_checkpoint)
    config = TrainConfig(
        env="cartpole", data=str(tiny_data), init_from=str(tiny_checkpoint), stages="pixels",
        pixel_steps=2, pixel_horizon=3, dynamics_batch_size=2, unroll=6, val_every=2,
    )  # fmt: skip
    frozen = train(replace(config, decoder_lr=0.0, out=str(tmp_path / "frozen")), command="pytest frozen")
    assert _same(_weights(original.decoder), _weights(frozen.decoder))
    assert not _same(_weights(original.dynamics), _weights(frozen.dynamics))
    assert all(p.requires_grad for p in frozen.decoder.parameters())  # unfrozen again afterwards
    tuned = train(replace(config, decoder_lr=1e-3, out=str(tmp_path / "tuned")), command="pytest decoder")
    assert not _same(_weights(original.decoder), _weights(tuned.decoder))
    assert _same(_weights(original.encoder), _weights(tuned.encoder))


def test_the_pixel_loss_is_the_mean_log_error_of_the_decoded_frames():
    """With its mask off the decoder draws nothing, so a decoded frame is its reference, and the
    loss is the mean log MSE of the reference against the true frame, whatever the latents."""
    from types import SimpleNamespace

    from worldsim.envs.builtin import get_spec
    from worldsim.models.latent import LatentConfig, LatentWorldModel
    from worldsim.training.train import TrainConfig, pixel_loss

    config = LatentConfig(replace(get_spec("cartpole"), height=16, width=32), latent_dim=4, hidden_dim=8)
    model = LatentWorldModel(config)
    with torch.no_grad():
        model.decoder.net[-2].bias[48:].fill_(-1e4)  # mask logits: sigmoid 0 everywhere
    frames = np.arange(8, dtype=np.uint8)[:, None, None, None] * np.full((1, 16, 32, 3), 10, np.uint8)
    data = SimpleNamespace(frames=frames)  # frame i is grey 10 * i
    anchors, context, predicted = np.array([0, 3]), torch.zeros(2, 1, 4), torch.randn(2, 3, 4)
    actions = torch.zeros(2, 3, dtype=torch.int64)
    loss = pixel_loss(
        model,
        data,
        anchors,
        context,
        predicted,
        actions,
        TrainConfig(pixel_horizon=1),
        np.random.default_rng(0),
    )
    # pixel_horizon 1 decodes the first step: frames 1 and 4 over frames 0 and 3, each 10 grey off.
    assert torch.isclose(loss, torch.log(torch.tensor((10 / 255) ** 2 + 1e-6)), rtol=1e-5)


@pytest.mark.slow  # a collection and a training (the tiny fixtures)
def test_an_unroll_longer_than_every_episode_is_a_clear_error(tiny_checkpoint, tiny_data, tmp_path):
    from worldsim.training.train import TrainConfig, train

    config = TrainConfig(
        env="cartpole", data=str(tiny_data), init_from=str(tiny_checkpoint), stages="dynamics",
        dynamics_steps=1, unroll=100_000, out=str(tmp_path / "none"),
    )  # fmt: skip
    with pytest.raises(ValueError, match="No training episode has more than 100000 steps to unroll"):
        train(config, command="none")


def test_an_outcome_head_reading_the_frame_replaces_one_reading_the_latents(
    tiny_checkpoint, tiny_data, tmp_path
):
    """`--outcome-input frame` on a checkpoint whose head reads latents trains a new head, on
    frames drawn and encoded again, and leaves the rest of the model as it was."""
    from worldsim.models.registry import load
    from worldsim.training.train import TrainConfig, train

    config = TrainConfig(
        env="cartpole",
        data=str(tiny_data),
        init_from=str(tiny_checkpoint),
        stages="outcome",
        outcome_input="frame",
        outcome_steps=4,
        val_every=2,
        out=str(tmp_path / "frame"),
    )
    train(config, command="pytest frame outcome")
    before, after = load(str(tiny_checkpoint)), load(str(tmp_path / "frame"))
    assert before.config.outcome_input == "latents" and after.config.outcome_input == "frame"
    assert after.outcome_head[0].in_features == after.config.latent_dim
    kept = before.encoder.state_dict()
    assert all(torch.equal(kept[name], weight) for name, weight in after.encoder.state_dict().items())
    record = json.loads((tmp_path / "frame" / "training.json").read_text())
    assert {"end_recall", "end_precision", "reward_rmse"} <= set(record["outcome"]["validation"][-1])


def test_the_rewards_recorded_for_snapping_are_the_steps_few_distinct_ones():
    """Each episode's first frame holds a filler 0 that no step paid; a reward with more than
    REWARD_SNAP_MAX_VALUES values is a measure, not points, and is not snapped."""
    from worldsim.data.collect import EpisodeData
    from worldsim.training.train import REWARD_SNAP_MAX_VALUES, reward_values

    def data(rewards, lengths):
        rewards, lengths = np.array(rewards, np.float32), np.array(lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return EpisodeData(
            None, None, None, rewards, None, starts, lengths, np.array(["random"] * len(lengths))
        )

    assert reward_values(data([0, -1, -1, 0, -1, -1, -1], [3, 4])) == [-1.0]  # MountainCar: no 0 paid
    assert reward_values(data([0, 0, 1, -1, 0, 0, 0], [4, 3])) == [-1.0, 0.0, 1.0]
    many = np.linspace(-16, 0, REWARD_SNAP_MAX_VALUES + 1)
    assert reward_values(data([0, *many], [len(many) + 1])) == []
    assert len(reward_values(data([0, *many[1:]], [len(many)]))) == REWARD_SNAP_MAX_VALUES


def test_a_trained_outcome_head_says_the_rewards_its_data_held(tiny_checkpoint, tiny_data):
    """`python -m worldsim train` records the data's rewards (CartPole: 1 a step, 0 played past
    the end) and the model says only those, with no flag."""
    from worldsim.data.collect import load_episodes
    from worldsim.models.registry import load
    from worldsim.rollout import imagine

    model = load(str(tiny_checkpoint))
    assert model.config.reward_values == [0.0, 1.0]
    start = load_episodes(tiny_data, model.spec).frames[None, :1]  # (1, 1, h, w, 3)
    rewards = imagine(model, start, np.array([[0, 1] * 10])).rewards
    assert set(np.unique(rewards)) <= {0.0, 1.0}


def test_an_unknown_outcome_input_is_refused_before_any_training(tiny_data, tmp_path):
    from worldsim.training.train import TrainConfig, train

    config = TrainConfig(env="cartpole", data=str(tiny_data), outcome_input="pixels", out=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="--outcome-input must be one of latents, frame, got 'pixels'"):
        train(config, command="pytest")
    assert not (tmp_path / "x").exists()


def test_a_point_memory_is_refused_before_any_training_where_no_ball_or_row_is_read(tiny_data, tmp_path):
    from worldsim.envs.builtin import get_spec
    from worldsim.envs.objects import point_memory
    from worldsim.training.train import TrainConfig, train

    config = TrainConfig(
        env="cartpole", data=str(tiny_data), point_memory="paddle_y 126 6", out=str(tmp_path / "x")
    )
    with pytest.raises(
        ValueError, match="cartpole needs a ball read as a point and a row reading named 'paddle_y'"
    ):
        train(config, command="pytest")
    assert not (tmp_path / "x").exists()
    pong = TrainConfig(
        env="pong", data=str(tmp_path / "none"), point_memory="paddle_y 126 6", point_momentum=False
    )
    with pytest.raises(ValueError, match="--point-memory needs GRU dynamics with --point-momentum"):
        train(pong, command="pytest")
    served = TrainConfig(
        env="pong",
        data=str(tmp_path / "none"),
        point_memory="paddle_y 126 6",
        memory_data=str(tmp_path / "serves"),
    )
    with pytest.raises(
        ValueError, match="--memory-data .*serves: no such folder. Collect it first, e.g. python"
    ):
        train(served, command="pytest")
    with pytest.raises(ValueError, match="takes 'row_reading x_low max_distance .*got 'paddle_y 126'"):
        point_memory(get_spec("pong"), "paddle_y 126")
    assert point_memory(get_spec("pong"), "paddle_y 126 6") == {
        "row_dim": 0,
        "x_low": 126.0,
        "max_distance": 6.0,
    }
    assert point_memory(get_spec("pong"), "") == {}


def test_a_point_memorys_entries_are_the_steps_in_the_zone_with_the_ball_in_view_around_them():
    """Keys in render pixels: the ball's place, its motion into the step, its offset from the
    paddle's row after the step and the row's move; the value is the ball's move. Only steps with
    the ball in view before, at and after them, at or past the zone's edge, within an episode."""
    from types import SimpleNamespace

    from worldsim.envs.builtin import get_spec
    from worldsim.models.latent import LatentConfig
    from worldsim.training.train import memory_entries

    pose = {"pose_dims": 6, "pose_mean": [100.0] * 6, "pose_std": [2.0] * 6, "points": [[2, 4, 3]]}
    config = LatentConfig.for_env(get_spec("pong"), latent_dim=8, point_momentum=True, **pose)
    raw = np.zeros((10, 6))
    raw[:, 2] = [120, 124, 128, 132, 136, 134, 130, 126, 122, 118]  # the ball's x: returned at step 4
    raw[:, 4] = 50 + 2 * np.arange(10)
    raw[:, 0] = 60 - np.arange(10)  # the paddle's row, moving up 1 px a step
    raw[:, 3] = 1.0
    raw[6, 3] = 0.0  # the ball unseen at frame 6
    data = SimpleNamespace(episode_starts=np.array([0, 5]), episode_lengths=np.array([5, 5]))
    poses = torch.from_numpy((raw - 100.0) / 2.0)
    keys, moves, paths = memory_entries(config, poses, data, np.array([0, 1]), {"row_dim": 0, "x_low": 126.0})
    # Episode 0 (frames 0-4): steps 2 and 3 (x >= 126, in view around them); step 1 is at x 124.
    # Episode 1 (frames 5-9): step 7 has frame 6 unseen before it, steps 6 and 8 fail the zone or view.
    assert keys.tolist() == [[128, 54, 4, 2, 54 - 57, -1], [132, 56, 4, 2, 56 - 56, -1]]
    assert moves.tolist() == [[4, 2], [4, 2]]
    assert paths.shape == (2, 0, 3)

    # One episode, returned at step 4 (136 -> 134): with key_actions, whether the step's action is
    # one; with paths, the next moves while the ball stays in view (unseen at frame 8).
    raw[6, 3], raw[8, 3] = 1.0, 0.0
    data = SimpleNamespace(
        episode_starts=np.array([0]),
        episode_lengths=np.array([10]),
        actions=np.array([0, 1, 0, 1, 1, 0, 0, 0, 0, 0]),
    )
    memory = {"row_dim": 0, "x_low": 126.0, "key_actions": [1], "path_steps": 3}
    keys, moves, paths = memory_entries(
        config, torch.from_numpy((raw - 100.0) / 2.0), data, np.array([0]), memory
    )
    assert keys[:, 0].tolist() == [128, 132, 136, 134, 130] and keys[:, 6].tolist() == [0, 1, 1, 0, 0]
    at_return = keys[:, 0].tolist().index(136)
    assert moves[at_return].tolist() == [-2, 2]
    assert paths[at_return].tolist() == [[-4, 2, 1], [-4, 2, 1], [0, 0, 0]]  # to 130, 126, then unseen
    assert paths[0].tolist() == [[4, 2, 1], [-2, 2, 1], [-4, 2, 1]]


def test_a_point_memory_stores_each_entry_once_and_the_returns_paths_apart():
    from worldsim.training.train import memory_tables

    keys = torch.tensor([[136.0, 9, 4, 2], [136.0, 9, 4, 2], [128.0, 9, 4, 2], [140.0, 9, 4, 2]])
    moves = torch.tensor([[-2.0, 2], [-2.0, 2], [4.0, 2], [-4.0, 2]])
    paths = torch.tensor(
        [
            [[-4.0, 2, 1], [-4, 2, 1]],
            [[-4.0, 2, 1], [-4, 2, 1]],
            [[4.0, 2, 1], [4, 2, 1]],
            [[0.0, 0, 0], [0, 0, 0]],
        ]
    )
    keys, moves, (path_of, steps, lengths) = memory_tables(keys, moves, paths, with_paths=True)
    assert len(keys) == 3  # the repeated entry once
    returned = path_of[keys[:, 0] == 136.0]
    assert returned.tolist() == [0] and steps[0].tolist() == [[-4, 2], [-4, 2]] and lengths.tolist() == [2]
    assert path_of[keys[:, 0] != 136.0].tolist() == [-1, -1]  # moving on; a return with no path
    # no return at all: one empty path, which no entry starts (a state's path number indexes it)
    _, _, (path_of, steps, lengths) = memory_tables(keys[1:2], moves[1:2], paths[1:2] * 0, with_paths=True)
    assert path_of.tolist() == [-1] and steps.shape == (1, 2, 2) and lengths.tolist() == [0]


def test_a_point_memory_takes_key_actions_and_path_steps_by_name():
    from worldsim.envs.builtin import get_spec
    from worldsim.envs.objects import point_memory

    pong = get_spec("pong")
    assert point_memory(pong, "paddle_y 126 6 keys=fire,rightfire,leftfire path=12") == {
        "row_dim": 0,
        "x_low": 126.0,
        "max_distance": 6.0,
        "key_actions": [1, 4, 5],
        "path_steps": 12,
    }
    with pytest.raises(ValueError, match="keys= names discrete actions of pong: noop, fire.*got jump"):
        point_memory(pong, "paddle_y 126 6 keys=fire,jump")
    with pytest.raises(ValueError, match=r"\[keys=action,...\] \[path=steps\].*got 'paddle_y 126 6 path=x'"):
        point_memory(pong, "paddle_y 126 6 path=x")
    with pytest.raises(ValueError, match="got 'paddle_y 126 6 colour=red'"):
        point_memory(pong, "paddle_y 126 6 colour=red")


def test_a_row_memory_names_a_row_reading_and_groups_of_the_environments_actions():
    from worldsim.envs.builtin import get_spec
    from worldsim.envs.objects import row_memory

    pong = get_spec("pong")
    assert row_memory(pong, "paddle_y 4 noop,fire right,rightfire left,leftfire") == {
        "row_dim": 0,
        "actions": 4,
        "groups": [0, 0, 1, 2, 1, 2],
    }
    assert row_memory(pong, "opponent_y 2") == {"row_dim": 6, "actions": 2, "groups": [0, 1, 2, 3, 4, 5]}
    assert row_memory(pong, "") == {}
    with pytest.raises(ValueError, match="takes 'row_reading actions"):
        row_memory(pong, "paddle_y")
    with pytest.raises(ValueError, match="'jump' is not one of pong's actions"):
        row_memory(pong, "paddle_y 4 noop,jump")
    with pytest.raises(ValueError, match="a row reading named 'paddle'; its readings are"):
        row_memory(pong, "paddle 4")
    with pytest.raises(ValueError, match="pendulum needs discrete actions"):
        row_memory(get_spec("pendulum"), "rod_angle_deg 2")


def test_a_row_memorys_entries_are_the_moves_most_often_made_per_action_history_and_key():
    """One entry per (action history, the row's last move, its place): the next move made there
    most often, from steps with the row in view around them and N actions before them."""
    from types import SimpleNamespace

    from worldsim.envs.builtin import get_spec
    from worldsim.models.latent import LatentConfig
    from worldsim.training.train import row_memory_entries

    pose = {"pose_dims": 6, "pose_mean": [100.0] * 6, "pose_std": [2.0] * 6, "points": [[2, 4, 3]]}
    config = LatentConfig.for_env(get_spec("pong"), latent_dim=8, **pose)
    raw = np.zeros((18, 6))
    raw[:, 1] = 1.0
    # Three episodes of 6 frames; the row moves -2 a step but in episode 1's last step (-4).
    raw[:, 0] = np.tile([60, 58, 56, 54, 52, 50], 3)
    raw[11, 0] = 48
    data = SimpleNamespace(
        episode_starts=np.array([0, 6, 12]),
        episode_lengths=np.array([6, 6, 6]),
        actions=np.array([2, 2, 4, 2, 2, 0] * 3),  # right and rightfire: group 1
    )
    memory = {"row_dim": 0, "actions": 2, "groups": [0, 0, 1, 2, 1, 2]}

    def entries(episodes):
        poses = torch.from_numpy((raw - 100.0) / 2.0)
        codes, keys, moves = row_memory_entries(config, poses, data, np.array(episodes), memory)
        return codes.tolist(), keys.tolist(), moves.tolist()

    # Steps 1..4 of each episode (the row before them, two actions up to them, a frame after): all
    # after two rights (code 1 * 3 + 1), the row last moved -2; at 52 px -2 twice, -4 once.
    assert entries([0, 1, 2]) == (
        [4.0] * 4,
        [[-2.0, 52.0], [-2.0, 54.0], [-2.0, 56.0], [-2.0, 58.0]],
        [-2.0] * 4,
    )
    assert entries([1]) == (
        [4.0] * 4,
        [[-2.0, 52.0], [-2.0, 54.0], [-2.0, 56.0], [-2.0, 58.0]],
        [-4.0] + [-2.0] * 3,
    )
    raw[9, 1] = 0.0  # the row unseen in episode 1's frame 3: its steps 2, 3 and 4 go
    assert entries([1]) == ([4.0], [[-2.0, 58.0]], [-2.0])
