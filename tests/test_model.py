import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import worldsim
from tests.conftest import ROOT
from worldsim.envs.builtin import get_spec
from worldsim.models.base import to_uint8
from worldsim.models.checkpoint import CheckpointError, save_checkpoint
from worldsim.models.latent import LatentConfig, LatentWorldModel
from worldsim.models.registry import load
from worldsim.rollout import imagine


def small_model(seed=0, dynamics="gru"):
    torch.manual_seed(seed)
    state = {"state_dims": 5, "state_mean": [0.0] * 5, "state_std": [1.0] * 5} if dynamics == "state" else {}
    config = LatentConfig.for_env(
        get_spec("cartpole"), latent_dim=8, hidden_dim=16, pose_dims=3, dynamics=dynamics, **state
    )
    return LatentWorldModel(config).eval()


def test_rollout_shapes_and_first_frame(start_frame):
    model = small_model()
    video = model.rollout(start_frame, "right*3 left*2")
    assert video.shape == (6, 64, 160, 3) and video.dtype == np.uint8
    assert np.array_equal(video[0], worldsim.preprocess(start_frame, model.spec))
    samples = model.rollout(start_frame, "right left", num_samples=3)
    assert samples.shape == (3, 3, 64, 160, 3)


def test_rollout_takes_up_to_k_context_frames(start_frame):
    model = small_model()
    one = model.rollout(start_frame, "right*4")
    two = model.rollout([start_frame, start_frame], "right*4")
    assert np.array_equal(one, two)  # one frame is padded by repeating it: same as two equal frames
    many = model.rollout([start_frame] * 5, "right*4")  # extra frames: the last K are used
    assert many.shape == one.shape


def test_batched_imagine_matches_single(start_frame):
    model = small_model()
    context = worldsim.preprocess(start_frame, model.spec)[None, None]
    actions = np.array([[1, 1, 0], [0, 0, 1]])
    batch = imagine(model, np.repeat(context, 2, axis=0), actions).frames
    for i in range(2):
        assert np.array_equal(batch[i], imagine(model, context, actions[i : i + 1]).frames[0])


def test_seeded_rollouts_are_deterministic(start_frame):
    model = small_model()
    a = model.rollout(start_frame, "right*5", seed=3)
    b = model.rollout(start_frame, "right*5", seed=3)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("dynamics", ["gru", "state"])
def test_actions_change_the_prediction(start_frame, dynamics):
    model = small_model(dynamics=dynamics)
    assert not np.array_equal(model.rollout(start_frame, "right*8"), model.rollout(start_frame, "left*8"))


@pytest.mark.parametrize("dynamics", ["gru", "state"])
def test_save_load_round_trip_is_exact(tmp_path, start_frame, dynamics):
    model = small_model(seed=1, dynamics=dynamics)
    save_checkpoint(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert np.array_equal(model.rollout(start_frame, "right*6"), loaded.rollout(start_frame, "right*6"))
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"config.json", "model.safetensors", "README.md"}


def test_bad_checkpoints_fail_with_clear_messages(tmp_path):
    model = small_model()
    good = save_checkpoint(model, tmp_path / "good")

    def variant(name):
        folder = tmp_path / name
        shutil.copytree(good, folder)
        return folder

    config = json.loads((good / "config.json").read_text())

    bad_json = variant("bad_json")
    (bad_json / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(bad_json)

    unknown = variant("unknown_field")
    (unknown / "config.json").write_text(json.dumps({**config, "evil": 1}))
    with pytest.raises(CheckpointError, match="unknown field"):
        load(unknown)

    future = variant("future")
    (future / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version 99 was written by a newer worldsim"):
        load(future)

    huge = variant("huge_dims")
    (huge / "config.json").write_text(json.dumps({**config, "hidden_dim": 10**9}))
    with pytest.raises(CheckpointError, match="hidden_dim"):
        load(huge)

    pickle_only = variant("pickle_only")
    (pickle_only / "model.safetensors").unlink()
    torch.save(model.state_dict(), pickle_only / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load(pickle_only)

    corrupt = variant("corrupt")
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load(corrupt)

    wrong_shape = variant("wrong_shape")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["dynamics.delta.2.bias"] = torch.zeros(99)
    save_file(state, wrong_shape / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"dynamics.delta.2.bias has shape \(99,\)"):
        load(wrong_shape)

    with pytest.raises(CheckpointError, match="No model 'no-such-model'"):
        load("no-such-model")
    with pytest.raises(CheckpointError, match="no config.json"):
        load(tmp_path)  # a folder, but not a checkpoint


def test_older_config_formats_are_upgraded_step_by_step(monkeypatch):
    import worldsim.models.latent as model_module

    config = small_model().config_dict()
    renamed = {**config, "format_version": 2, "latent": config["latent_dim"]}
    del renamed["latent_dim"]  # pretend version 2 called it "latent"
    monkeypatch.setattr(model_module, "CONFIG_FORMAT_VERSION", 3)
    monkeypatch.setitem(
        model_module.CONFIG_UPGRADES,
        2,
        lambda d: {**{k: v for k, v in d.items() if k != "latent"}, "latent_dim": d["latent"]},
    )
    upgraded = LatentConfig.from_dict(renamed)
    assert upgraded.latent_dim == config["latent_dim"]


def test_format_2_configs_name_a_built_in_environment_and_load_as_format_3():
    """Configs written before environments became data name a built-in spec; they load as the
    spec itself."""
    config = small_model().config_dict()
    old = {k: v for k, v in config.items() if k != "env"}
    old |= {"env": "cartpole", "format_version": 2, "height": 64, "width": 160}
    old |= {"action_kind": "discrete", "num_actions": 2}
    upgraded = LatentConfig.from_dict(old)
    assert upgraded.env == get_spec("cartpole")
    with pytest.raises(ValueError, match="Unknown environment 'nowhere'"):
        LatentConfig.from_dict({**old, "env": "nowhere"})


def test_format_3_configs_load_as_models_that_draw_no_action_and_no_points():
    config = small_model().config_dict()
    old = {k: v for k, v in config.items() if k not in ("decoder_action", "points")} | {"format_version": 3}
    upgraded = LatentConfig.from_dict(old)
    assert not upgraded.decoder_action and upgraded.points == [] and not upgraded.warp_reference


def test_format_12_configs_load_with_an_outcome_head_reading_the_latents():
    config = small_model().config_dict()
    old = {k: v for k, v in config.items() if k != "outcome_input"} | {"format_version": 12}
    assert LatentConfig.from_dict(old).outcome_input == "latents"
    with pytest.raises(
        ValueError, match=r"outcome_input must be one of \['latents', 'frame'\], got 'pixels'"
    ):
        LatentConfig.from_dict({**config, "outcome_input": "pixels"})


def rewarding_model(reward: float, **overrides) -> LatentWorldModel:
    """A CartPole model whose outcome head says `reward` for every step."""
    torch.manual_seed(0)
    config = LatentConfig.for_env(
        get_spec("cartpole"), latent_dim=8, hidden_dim=16, outcome=True, **overrides
    )
    model = LatentWorldModel(config).eval()
    with torch.no_grad():
        model.outcome_head[-1].weight.zero_()
        model.outcome_head[-1].bias.copy_(torch.tensor([reward, -1.0]))
    return model


@torch.no_grad()
def test_a_head_with_reward_values_says_the_nearest_of_them():
    """Pong's head regressed -0.03 where no point fell: a model that knows its env's rewards are
    -1, 0 and 1 says 0 there, and 1 where it regressed 0.97; one without them says what it regressed."""
    start = torch.full((1, 1, 64, 160, 3), 200, dtype=torch.uint8)
    for regressed, snapped in ((0.97, 1.0), (-0.03, 0.0), (-0.6, -1.0), (3.0, 1.0)):
        model = rewarding_model(regressed, reward_values=[-1, 0, 1])
        state = model.step(model.start(start), torch.tensor([1]))
        assert model.outcome(state).reward.tolist() == [snapped]
        raw = model.with_reward_values([])
        assert not raw.training  # at inference still: it draws as the model it came from
        assert raw.outcome(state).reward.tolist() == [pytest.approx(regressed, abs=1e-6)]
    assert model.snap_reward(torch.tensor([0.4, 0.6, -7.0])).tolist() == [0.0, 1.0, -1.0]


def test_reward_values_are_checked_and_old_configs_load_with_the_reward_as_regressed(tmp_path):
    model = rewarding_model(-0.03, reward_values=[0, 1])
    assert model.config.reward_values == [0.0, 1.0] and model.config_dict()["reward_values"] == [0.0, 1.0]
    folder = save_checkpoint(model, tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    old = {k: v for k, v in config.items() if k != "reward_values"} | {"format_version": 15}
    (folder / "config.json").write_text(json.dumps(old))
    loaded = load(folder)
    assert loaded.config.reward_values == []
    state = loaded.step(
        loaded.start(torch.full((1, 1, 64, 160, 3), 200, dtype=torch.uint8)), torch.tensor([0])
    )
    assert loaded.outcome(state).reward.tolist() == [pytest.approx(-0.03, abs=1e-6)]
    for values in ([1, 0], [0, 0, 1], [0, float("nan")], ["1"], [True]):
        with pytest.raises(ValueError, match="reward_values must be finite numbers in ascending order"):
            replace(model.config, reward_values=values)
    with pytest.raises(ValueError, match="reward_values needs the outcome head"):
        replace(model.config, outcome=False)


@torch.no_grad()
def test_an_outcome_head_reading_the_frame_answers_for_what_the_frame_shows():
    """The dream's latents drift while its picture holds; a head reading the drawn frame sees the
    picture: the latent before the step does not move it, a latent drawn differently does."""
    torch.manual_seed(0)
    config = LatentConfig.for_env(
        get_spec("cartpole"), latent_dim=8, hidden_dim=16, outcome=True, outcome_input="frame"
    )
    model = LatentWorldModel(config).eval()
    assert model.outcome_head[0].in_features == 8  # one frame's latent, not two
    state = model.step(model.start(torch.full((1, 1, 64, 160, 3), 200, dtype=torch.uint8)), torch.tensor([1]))
    outcome = model.outcome(state)
    drifted = model.outcome(replace(state, prev_z=state.prev_z + 5))
    assert torch.equal(outcome.reward, drifted.reward)
    reward, _ = model.outcome_logits(None, None, model.seen_latent(model.render_float(state)))
    assert torch.equal(outcome.reward, reward)
    redrawn = model.outcome(replace(state, z=state.z + 5))
    assert not torch.equal(outcome.reward, redrawn.reward)


@torch.no_grad()
def test_a_model_that_reencodes_goes_on_from_the_frame_it_drew():
    """Every `reencode_every` steps the dream goes on from the encoding of the frame it drew last
    (in 8-bit colour) instead of its own latent; between, the dream is the model's own."""
    torch.manual_seed(0)
    config = LatentConfig.for_env(get_spec("cartpole"), latent_dim=8, hidden_dim=16)
    plain = LatentWorldModel(config).eval()
    reencoding = LatentWorldModel(replace(config, reencode_every=3)).eval()
    reencoding.load_state_dict(plain.state_dict())
    a, b = (m.start(torch.full((1, 1, 64, 160, 3), 200, dtype=torch.uint8)) for m in (plain, reencoding))
    for step in range(1, 6):
        action = torch.tensor([step % 2])
        if step == 4:  # three steps done: the fourth starts from what the third drew
            own = plain.step(a, action)
            drawn = to_uint8(plain.render_float(a)).movedim(-1, -3).float() / 255
            a = replace(a, z=plain.encode(drawn))
        a, b = plain.step(a, action), reencoding.step(b, action)
        assert torch.allclose(a.z, b.z, atol=1e-6), step
        if step == 4:
            assert not torch.allclose(own.z, b.z, atol=1e-3)  # the dream's own latent had drifted
    assert b.age.tolist() == [5]
    with pytest.raises(ValueError, match="reencode_every needs the GRU dynamics"):
        replace(config, reencode_every=3, dynamics="state", state_dims=1, state_mean=[0], state_std=[1])


@torch.no_grad()
def test_a_rollouts_rewards_from_the_frame_equal_those_of_one_step_at_a_time():
    """A rollout draws all its frames at once and the head reads them from there; playing step
    by step draws each frame, then asks: the same rewards either way, re-encoding included."""
    torch.manual_seed(0)
    config = LatentConfig.for_env(
        get_spec("cartpole"),
        latent_dim=8,
        hidden_dim=16,
        outcome=True,
        outcome_input="frame",
        reencode_every=4,
    )
    model = LatentWorldModel(config).eval()
    start = np.full((1, 1, 64, 160, 3), 200, np.uint8)
    actions = np.array([[1, 0, 1, 1, 0, 0, 1, 0, 1, 1]])
    dream = imagine(model, start, actions)
    state, rewards = model.start(torch.from_numpy(start)), []
    for t in range(actions.shape[1]):
        state = model.step(state, torch.from_numpy(actions[:, t]))
        assert np.array_equal(model.render(state)[0].numpy(), dream.frames[0, t + 1])
        rewards.append(float(model.outcome(state).reward[0]))
    assert np.allclose(rewards, dream.rewards[0], atol=1e-5)


def action_drawing_model() -> LatentWorldModel:
    """A Pendulum model whose decoder sees the action, with weights large enough to show it."""
    torch.manual_seed(0)
    config = LatentConfig.for_env(get_spec("pendulum"), latent_dim=8, hidden_dim=16, decoder_action=True)
    model = LatentWorldModel(config).eval()
    with torch.no_grad():
        model.decoder.project.weight.normal_()
    return model


def test_a_decoder_that_sees_the_action_draws_what_the_last_step_did():
    """Pendulum's torque arrow shows the last action, which state dynamics do not carry: the
    decoder draws it from the action of the step, the same in one-by-one play and in batched
    rollouts."""

    model = action_drawing_model()
    start = torch.full((1, 1, 64, 64, 3), 200, dtype=torch.uint8)
    state = model.start(start)
    pushed = [model.render(replace(state, action=torch.tensor([[torque]]))) for torque in (2.0, -2.0)]
    assert not torch.equal(*pushed)
    actions = np.array([[[2.0], [-1.0], [0.5]]], np.float32)
    batched = imagine(model, start.numpy(), actions).frames[0]
    for t in range(3):
        state = model.step(state, torch.from_numpy(actions[:, t]))
        assert np.array_equal(model.render(state)[0].numpy(), batched[t + 1])


@torch.no_grad()
def test_a_warping_decoder_moves_the_reference_it_draws_over():
    """With warp_reference the background is the reference moved by the decoder's flow: a new
    flow head leaves it in place, and a flow of one pixel everywhere, under a closed mask, draws
    the reference one pixel over."""
    from worldsim.models.latent import FLOW_PIXELS

    config = LatentConfig.for_env(get_spec("carracing"), latent_dim=8, hidden_dim=16, warp_reference=True)
    model = LatentWorldModel(config).eval()
    model.decoder.net[-2].bias[48:].fill_(-40.0)  # the mask closed: the background alone
    ref, z = torch.rand(1, 3, 64, 64), torch.zeros(1, 8)
    assert torch.allclose(model.decode(z, z, ref), ref, atol=1e-5)
    model.decoder.flow[-1].bias.view(2, -1)[0] = 1 / FLOW_PIXELS  # x: each pixel from its right
    drawn = model.decode(z, z, ref)
    assert torch.allclose(drawn[..., :-1], ref[..., 1:], atol=1e-5)
    assert torch.allclose(drawn[..., -1], ref[..., -1], atol=1e-5)  # past the edge: the edge


@torch.no_grad()
def test_a_relative_flow_leaves_an_unmoved_view_exactly_in_place():
    """With relative_flow the reference moves by the flow drawn for the target minus the flow drawn
    for the reference itself: a latent that has not moved draws the reference exactly, whatever
    the flow head says, and one that has moved still shifts it."""
    torch.manual_seed(0)
    config = LatentConfig.for_env(
        get_spec("carracing"), latent_dim=8, hidden_dim=16, warp_reference=True, relative_flow=True
    )
    model = LatentWorldModel(config).eval()
    model.decoder.flow[-1].weight.normal_(std=0.5)
    model.decoder.flow[-1].bias.normal_()  # a flow head that moves even the reference itself
    ref, ref_z = torch.rand(1, 3, 64, 64), torch.randn(1, 8)
    assert torch.allclose(model.decode_parts(ref_z, ref_z, ref)[2], ref, atol=1e-6)
    assert not torch.allclose(model.decode_parts(ref_z + 1, ref_z, ref)[2], ref, atol=1e-3)
    absolute = LatentWorldModel(replace(config, relative_flow=False)).eval()
    absolute.load_state_dict(model.state_dict())
    assert not torch.allclose(absolute.decode_parts(ref_z, ref_z, ref)[2], ref, atol=1e-3)
    with pytest.raises(ValueError, match="relative_flow needs warp_reference"):
        replace(config, warp_reference=False)


def test_point_maps_peak_where_the_pose_dims_put_the_object():
    from worldsim.models.latent import point_maps

    spec = get_spec("pong")  # 160x210 screen, rows 34..193.6 cropped to 80x80
    config = LatentConfig.for_env(
        spec,
        latent_dim=8,
        hidden_dim=16,
        pose_dims=6,
        pose_mean=[0.0] * 6,
        pose_std=[1.0] * 6,
        points=[[2, 4, 3]],
    )
    # Pixel centres of the view in screen pixels: column c at (c + 0.5) * 160 / 80, row r at
    # top + (r + 0.5) * rows / 80. Put the ball at row 40, column 50.
    top, rows = 0.162 * 210, (0.922 - 0.162) * 210
    z = torch.zeros(2, 8)
    z[:, 2], z[:, 4], z[0, 3] = 50.5 * 2, top + 40.5 * rows / 80, 1.0
    maps = point_maps(config, z)
    row, column = divmod(int(maps[0, 0].argmax()), spec.width)
    assert (row, column) == (40, 50) and maps[0, 0].max() > 0.9
    assert maps[1].max() == 0  # not in view: no peak
    with pytest.raises(ValueError, match="3 pose dims"):
        LatentConfig.for_env(spec, pose_dims=2, pose_mean=[0.0] * 2, pose_std=[1.0] * 2, points=[[2, 4, 3]])


def test_drawn_rows_paint_a_band_at_the_row_between_their_columns():
    from worldsim.envs.objects import drawn_rows
    from worldsim.models.latent import point_maps

    spec = get_spec("pong")
    rows = drawn_rows(spec, "paddle_y 140 144 8")
    assert rows == [[0, 1, 140.0, 144.0, 8.0]]
    pose = {"pose_dims": 8, "pose_mean": [0.0] * 8, "pose_std": [1.0] * 8}
    config = LatentConfig.for_env(spec, latent_dim=8, hidden_dim=16, drawn_rows=rows, **pose)
    top, height = 0.162 * 210, (0.922 - 0.162) * 210
    z = torch.zeros(2, 8)
    z[:, 0], z[0, 1] = top + 40.5 * height / 80, 1.0  # the paddle's centre at view row 40
    band = point_maps(config, z)[0, 0]
    drawn = (band > 0.5).nonzero()
    assert set(drawn[:, 1].tolist()) == {70, 71}  # screen columns 140..143
    assert drawn[:, 0].min() >= 36 and drawn[:, 0].max() <= 44  # 16 screen px: about 8 view rows
    assert band[40, 70] > 0.9 and band[40, 60] == 0
    assert point_maps(config, z)[1].max() == 0  # not in view: no band
    with pytest.raises(ValueError, match="has no reading 'paddle_x'"):
        drawn_rows(spec, "paddle_x 140 144 8")
    with pytest.raises(ValueError, match="two pose dims below 8"):
        LatentConfig.for_env(spec, drawn_rows=[[8, 9, 140.0, 144.0, 8.0]], **pose)


@pytest.mark.parametrize("pushes", [2, 14])  # the pole near upright, then fallen past 25 degrees
def test_drawn_segments_paint_cartpoles_pole_where_the_simulator_draws_it(pushes):
    import gymnasium as gym

    from worldsim.envs.objects import object_segments
    from worldsim.envs.spec import preprocess
    from worldsim.models.latent import point_maps

    spec = get_spec("cartpole")
    pose = {"pose_dims": 3, "pose_mean": [0.0] * 3, "pose_std": [1.0] * 3}
    config = LatentConfig.for_env(spec, latent_dim=8, drawn_segments=object_segments(spec), **pose)
    env = gym.make("CartPole-v1", render_mode="rgb_array").unwrapped  # stepped on past its end
    env.reset(seed=3)
    for _ in range(pushes):
        env.steps_beyond_terminated = None  # the pole falls on, as past an episode's end
        (x, _, angle, _), *_ = env.step(1)
    frame = preprocess(env.render(), spec)
    env.close()
    pole = (frame[..., 0].astype(int) - frame[..., 2]) > 40  # the only colour with red above blue
    z = torch.zeros(2, 8)
    z[:, 0], z[:, 1], z[:, 2] = float(x), float(np.sin(angle)), float(np.cos(angle))
    z[1, 1], z[1, 2] = float(np.sin(angle + 0.3)), float(np.cos(angle + 0.3))  # 17 degrees off
    maps = point_maps(config, z)[:, 0].numpy() > 0.5
    assert (pole & maps[0]).sum() >= 0.7 * pole.sum() and maps[0].sum() <= 1.2 * pole.sum()
    assert (pole & maps[1]).sum() <= 0.5 * pole.sum()
    with pytest.raises(ValueError, match="three pose dims below 3"):
        LatentConfig.for_env(spec, drawn_segments=[[0, 1, 3, 125.0, 300.0, 292.5, 120.0, 5.0]], **pose)


@torch.no_grad()
def test_point_momentum_carries_a_ball_on_at_its_context_velocity():
    """With point momentum, dynamics that predict no change move a point on at the motion
    between the last two context frames, and hold every other latent dim still."""
    spec = get_spec("pong")
    pose = {"pose_dims": 6, "pose_mean": [0.0] * 6, "pose_std": [1.0] * 6, "points": [[2, 4, 3]]}
    config = LatentConfig.for_env(spec, latent_dim=8, hidden_dim=16, point_momentum=True, **pose)
    model = LatentWorldModel(config)
    model.dynamics.delta[-1].weight.zero_()
    model.dynamics.delta[-1].bias.zero_()
    context = torch.zeros(1, 2, 8)
    context[0, 0, 2], context[0, 0, 4], context[0, 0, 0] = 10.0, 20.0, 5.0
    context[0, 1, 2], context[0, 1, 4], context[0, 1, 0] = 12.0, 16.0, 7.0
    state = model.dynamics.start(context)
    for t in range(1, 4):
        state = model.dynamics.step(state, torch.zeros(1, dtype=torch.int64))
        assert state.z[0, 2] == 12 + 2 * t and state.z[0, 4] == 16 - 4 * t
        assert state.z[0, 0] == 7  # not a point: no momentum
    dead_zone = float(model.dynamics.still[4])  # 1 view pixel, in the latent's units
    model.dynamics.delta[-1].bias[4] = 0.5 * dead_zone  # a wobble: the motion stays
    state = model.dynamics.step(state, torch.zeros(1, dtype=torch.int64))
    assert state.z[0, 4] == 16 - 4 * 4
    model.dynamics.delta[-1].bias[4] = dead_zone + 3.0  # a bounce: the motion changes by 3
    state = model.dynamics.step(state, torch.zeros(1, dtype=torch.int64))
    assert float(state.z[0, 4]) == pytest.approx(16 - 4 * 4 - 4 + 3)
    with pytest.raises(ValueError, match="point_momentum needs points"):
        LatentConfig.for_env(spec, point_momentum=True)


@torch.no_grad()
def test_a_contact_gate_changes_a_points_motion_only_where_it_opens():
    """With a contact gate, the GRU's change of motion applies in full where the gate's logit is
    positive (or where training says the motion truly changes), and not at all elsewhere: a ball
    in flight keeps its speed however large the change the GRU would make."""
    spec = get_spec("pong")
    pose = {"pose_dims": 6, "pose_mean": [0.0] * 6, "pose_std": [1.0] * 6, "points": [[2, 4, 3]]}
    config = LatentConfig.for_env(
        spec, latent_dim=8, hidden_dim=16, point_momentum=True, contact_gate=True, **pose
    )
    dynamics = LatentWorldModel(config).dynamics
    dynamics.delta[-1].weight.zero_()
    dynamics.delta[-1].bias.zero_()
    dynamics.delta[-1].bias[4] = 3.0  # the GRU would turn the ball by 3 every step
    dynamics.contact.weight.zero_()
    context = torch.zeros(1, 2, 8)
    context[0, 1, 2], context[0, 1, 4] = 2.0, -4.0  # moving 2 right, 4 up a step
    action = torch.zeros(1, dtype=torch.int64)
    dynamics.contact.bias.fill_(-1.0)  # closed: the motion stays
    state, heads = dynamics.step_with_heads(dynamics.start(context), action)
    assert heads["contact"].shape == (1, 1) and float(state.z[0, 4]) == -8.0 and float(state.z[0, 2]) == 4.0
    dynamics.contact.bias.fill_(1.0)  # open: the change applies, to the point's dims only
    state = dynamics.step(state, action)
    assert float(state.z[0, 4]) == pytest.approx(-8.0 - 4.0 + 3.0) and float(state.z[0, 2]) == 6.0
    told, _ = dynamics.step_with_heads(state, action, contacts=torch.zeros(1, 1))  # training's say
    assert float(told.z[0, 4]) == pytest.approx(-9.0 - 1.0)
    with pytest.raises(ValueError, match="contact_gate needs point_momentum"):
        LatentConfig.for_env(spec, contact_gate=True, **pose)


@torch.no_grad()
def test_point_speeds_snap_a_balls_motion_to_the_games_speeds_at_inference_only():
    """With point speeds, a ball in view whose motion is within the tolerance of one of its
    steady speeds takes that speed exactly, from the start frames' motion on; a jump (a serve)
    passes as it is, a ball out of view keeps its motion, and training sees the GRU's own."""
    spec = get_spec("pong")  # one view pixel: 2 screen pixels each way
    pose = {"pose_dims": 6, "pose_mean": [0.0] * 6, "pose_std": [1.0] * 6, "points": [[2, 4, 3]]}
    speeds = [[[-4.0, 4.0], [-8.0, -4.0, 4.0, 8.0]]]  # screen pixels a step
    config = LatentConfig.for_env(
        spec, latent_dim=8, hidden_dim=16, point_momentum=True, point_speeds=speeds, **pose
    )
    dynamics = LatentWorldModel(config).dynamics.eval()
    dynamics.delta[-1].weight.zero_()
    dynamics.delta[-1].bias.zero_()
    context = torch.zeros(1, 2, 8)
    context[0, 1, 2], context[0, 1, 4], context[0, 1, 0] = 3.2, -7.1, 1.0  # the encoder's estimate
    action = torch.zeros(1, dtype=torch.int64)
    unseen = dynamics.step(dynamics.start(context), action)  # the seen dim (3) says: out of view
    assert float(unseen.z[0, 2]) == pytest.approx(3.2 * 2) and float(unseen.z[0, 4]) == pytest.approx(
        -7.1 * 2
    )
    context[0, :, 3] = 1.0
    state = dynamics.start(context)
    for t in range(1, 4):
        state = dynamics.step(state, action)
        assert float(state.z[0, 2]) == pytest.approx(3.2 + 4 * t) and float(state.z[0, 4]) == pytest.approx(
            -7.1 - 8 * t
        )
        assert float(state.z[0, 0]) == 1.0  # not a point
    dynamics.delta[-1].bias[2] = 40.0  # a serve: the ball jumps ~40 pixels, nowhere near a speed
    jumped = dynamics.step(state, action)
    assert float(jumped.z[0, 2] - state.z[0, 2]) == pytest.approx(4 + 40 - float(dynamics.still[2]))
    dynamics.train()
    dynamics.delta[-1].bias[2] = 0.0
    assert float(dynamics.step(dynamics.start(context), action).z[0, 4]) == pytest.approx(-7.1 * 2)
    with pytest.raises(ValueError, match="point_speeds needs point_momentum"):
        LatentConfig.for_env(spec, point_speeds=speeds, **pose)


# Pose dims with the ball as point 0 (x, y, in view at 2, 4, 3), unnormalised.
BALL_POSE = {"pose_dims": 6, "pose_mean": [0.0] * 6, "pose_std": [1.0] * 6, "points": [[2, 4, 3]]}


def speed_class_config(speeds: list, **extra) -> LatentConfig:
    """A small Pong config whose ball keeps `speeds` and whose GRU picks them as classes."""
    return LatentConfig.for_env(
        get_spec("pong"),
        latent_dim=8,
        hidden_dim=16,
        point_momentum=True,
        point_speeds=speeds,
        speed_classes=True,
        **BALL_POSE,
        **extra,
    )


@torch.no_grad()
def test_speed_classes_pick_a_balls_next_speed_where_it_is_in_view():
    """With speed classes, a ball in view moves at the speed its class head picks (or its own
    motion where the head says "other"); out of view it keeps its own motion; training's classes
    override the head."""
    spec = get_spec("pong")  # one view pixel: 2 screen pixels each way
    pose = BALL_POSE
    config = speed_class_config([[[-4.0, 4.0], [-8.0, -4.0, 4.0, 8.0]]])  # x: 2 and "other"; y: 4
    dynamics = LatentWorldModel(config).dynamics.eval()
    for layer in (dynamics.delta[-1], dynamics.speed_head):
        layer.weight.zero_()
        layer.bias.zero_()
    assert dynamics.speed_head.out_features == 2 * 5  # each axis padded to 4 speeds, and "other"
    dynamics.speed_head.bias[[0, 5 + 3]] = 5.0  # x: -4; y: +8
    context = torch.zeros(1, 2, 8)
    context[0, :, 3] = 1.0  # in view
    context[0, 1, 2], context[0, 1, 4] = 4.1, -8.3  # moving right and up
    action = torch.zeros(1, dtype=torch.int64)
    state, heads = dynamics.step_with_heads(dynamics.start(context), action)
    assert heads["speed"].shape == (1, 2, 5)
    assert float(state.z[0, 2]) == pytest.approx(4.1 - 4) and float(state.z[0, 4]) == pytest.approx(-8.3 + 8)
    told, _ = dynamics.step_with_heads(dynamics.start(context), action, speeds=torch.tensor([[1, 0]]))
    assert float(told.z[0, 2]) == pytest.approx(4.1 + 4.0) and float(told.z[0, 4]) == pytest.approx(-8.3 - 8)
    context[0, :, 3] = 0.0  # out of view: its own motion, whatever the head says
    unseen = dynamics.step(dynamics.start(context), action)
    assert float(unseen.z[0, 2]) == pytest.approx(8.2) and float(unseen.z[0, 4]) == pytest.approx(-16.6)
    with pytest.raises(ValueError, match="speed_classes needs point_speeds"):
        LatentConfig.for_env(spec, point_momentum=True, speed_classes=True, **pose)


@torch.no_grad()
def test_a_speed_head_with_a_hidden_layer_reads_where_the_ball_is():
    """speed_mlp: the head reads the latent and the ball's motion besides the GRU state, so the
    same GRU state gives other speeds for a ball elsewhere (a linear head on it could not)."""
    config = speed_class_config([[[-4.0, 4.0], [-8.0, 8.0]]], speed_mlp=True)
    torch.manual_seed(0)
    dynamics = LatentWorldModel(config).dynamics.eval()
    context = torch.zeros(2, 2, 8)
    context[:, :, 3] = 1.0
    state = dynamics.start(context)
    dynamics.cell.weight_ih.zero_()  # the GRU's next state blind to the latent ...
    state.h[1] = state.h[0]
    state.z[1, 2] = 140.0  # ... for a ball somewhere else
    heads = dynamics.step_with_heads(state, torch.zeros(2, dtype=torch.int64))[1]
    assert heads["speed"].shape == (2, 2, 3)
    assert not torch.allclose(heads["speed"][0], heads["speed"][1])
    with pytest.raises(ValueError, match="speed_mlp needs speed_classes"):
        LatentConfig.for_env(get_spec("pong"), speed_mlp=True, **BALL_POSE)


@torch.no_grad()
def test_poses_are_drawn_within_their_bounds_and_points_wholly_in_or_out_of_view_at_inference():
    """With pose bounds the decoder is handed, at inference, a pose moved into the range the data
    had (a ball past the edge, a paddle in the wall) and each point's "in view" flag snapped to 0
    or 1; training decodes the latent as it is, and latents inside the bounds are drawn unchanged."""
    spec = get_spec("pong")
    mean, std = [150.0, 0.5, 100.0, 0.5, 120.0, 0.5], [40.0, 0.5, 40.0, 0.5, 50.0, 0.5]
    bounds = [[37.0, 192.0], [0.0, 1.0], [8.0, 157.0], [0.0, 1.0], [36.0, 192.0], [0.0, 1.0]]
    config = LatentConfig.for_env(
        spec,
        latent_dim=8,
        hidden_dim=16,
        pose_dims=6,
        pose_mean=mean,
        pose_std=std,
        points=[[2, 4, 3]],
        pose_bounds=bounds,
    )
    model = LatentWorldModel(config).eval()
    pose = torch.tensor(
        [  # paddle in the wall, ball past the right edge, below the wall, 73% in view
            [195.0, 1.0, 159.0, 0.73, 195.0, 1.0],
            [100.0, 1.0, 3.0, 0.3, 150.0, 1.0],  # ball past the left edge, 30% in view
            [120.0, 1.0, 120.0, 1.0, 100.0, 1.0],  # all inside
        ]
    )
    z = torch.randn(3, 8)
    z[:, :6] = (pose - torch.tensor(mean)) / torch.tensor(std)
    drawn = model.drawable_pose(z)
    drawn_pose = drawn[:, :6] * torch.tensor(std) + torch.tensor(mean)
    assert drawn_pose[:, 0].tolist() == pytest.approx([192.0, 100.0, 120.0])  # the paddle
    assert drawn_pose[:, 2].tolist() == pytest.approx([157.0, 8.0, 120.0])  # the ball's x, y, seen
    assert drawn_pose[:, 4].tolist() == pytest.approx([192.0, 150.0, 100.0])
    assert drawn_pose[:, 3].tolist() == pytest.approx([1.0, 0.0, 1.0])
    assert torch.equal(drawn[2], z[2]) and torch.equal(drawn[:, 6:], z[:, 6:])
    ref = torch.rand(3, 3, spec.height, spec.width)
    assert torch.equal(model.decode(z, z, ref), model.decode(drawn, z, ref))
    model.train()
    assert not torch.equal(model.decode(z, z, ref), model.decode(drawn, z, ref))
    with pytest.raises(ValueError, match="pose_bounds needs"):
        LatentConfig.for_env(spec, pose_dims=6, pose_mean=mean, pose_std=std, pose_bounds=bounds[:2])


def test_a_card_collects_the_episodes_its_model_was_trained_on():
    from worldsim.models.card import read_card_inputs, render_model_card

    config, training, _ = read_card_inputs(ROOT / "checkpoints" / "breakout")
    default = config["env"]["collect_episodes"]
    as_collected = render_model_card(config, {**training, "episodes": default}, None)
    assert "python -m worldsim collect --env breakout\n" in as_collected
    fewer = render_model_card(config, {**training, "episodes": 300}, None)
    assert "python -m worldsim collect --env breakout --episodes 300\n" in fewer
    assert "in 300 episodes" in fewer


def test_a_card_names_a_builtin_env_whose_training_defaults_have_moved_on():
    from worldsim.models.card import read_card_inputs, render_model_card

    config, training, _ = read_card_inputs(ROOT / "checkpoints" / "breakout")
    config["env"]["train_defaults"] = {"autoencoder_steps": 1}  # an older recipe
    assert "python -m worldsim collect --env breakout" in render_model_card(config, training, None)
    config["env"]["height"] = 48  # another view is another environment: collect it by its id
    assert "python -m worldsim collect --env-id ALE/Breakout-v5" in render_model_card(config, training, None)


@pytest.mark.parametrize("env", ["pong", "pendulum"])
def test_the_actions_played_into_the_start_set_the_dynamics_state_where_known(env):
    """past_actions: a start that knows the keys played into its frame starts from another state;
    unknown ones (-1 or NaN, or none given) are masked, so their values do not matter; a model
    continued from one without them (zero-initialised) starts as that one did."""
    torch.manual_seed(0)
    spec = get_spec(env)
    model = LatentWorldModel(LatentConfig.for_env(spec, latent_dim=8, hidden_dim=16, past_actions=3)).eval()
    assert model.past_actions == 3
    frames = torch.randint(0, 255, (2, 2, spec.height, spec.width, 3), dtype=torch.uint8)
    discrete = spec.action_kind == "discrete"
    unknown = -1 if discrete else float("nan")

    def past(*rows):
        values = torch.tensor(rows, dtype=torch.int64 if discrete else torch.float32)
        return values if discrete else values[..., None]

    played, other = past([1, 2, 0], [2, 2, 2]), past([0, 0, 1], [1, 0, 2])
    with torch.no_grad():
        assert torch.equal(model.start(frames).h, model.start(frames, past=played).h)  # zero at first
        torch.nn.init.normal_(model.dynamics.init_past.weight)
        none = model.start(frames).h
        assert torch.equal(none, model.start(frames, past=past([unknown] * 3, [unknown] * 3)).h)
        assert not torch.allclose(none, model.start(frames, past=played).h)
        assert not torch.allclose(model.start(frames, past=played).h, model.start(frames, past=other).h)
        # only the last `past_actions` count; fewer given leave the earlier ones unknown
        longer = torch.cat([past([0], [1]), played], dim=1)
        assert torch.equal(model.start(frames, past=longer).h, model.start(frames, past=played).h)
        partial = model.start(frames, past=played[:, 1:]).h
        assert torch.equal(partial, model.start(frames, past=past([unknown, 2, 0], [unknown, 2, 2])).h)
        # the rollout service passes them only to a model that takes them
        video = imagine(
            model,
            frames.numpy(),
            np.zeros((2, 3) + ((1,) if not discrete else ()), dtype=np.int64 if discrete else np.float32),
            past=played.numpy(),
        )
        assert video.frames.shape[:2] == (2, 4)
    with pytest.raises(ValueError, match="past_actions needs the GRU"):
        LatentConfig.for_env(spec, dynamics="state", past_actions=2)


@torch.no_grad()
def test_a_point_memory_moves_the_ball_in_its_zone_as_the_nearest_remembered_step_did(tmp_path):
    """Point memory: where the ball is in view at or past the zone's edge and a remembered step's
    key lies within reach, the ball moves as that step's did and carries that motion on; out of
    view, with the paddle far, or in training, the GRU's own motion stands. Saved and loaded
    with the weights."""
    config = LatentConfig.for_env(
        get_spec("pong"), latent_dim=8, hidden_dim=16, point_momentum=True, **BALL_POSE
    )
    # One remembered return: the ball at (138, 124) moving (+4, +8), 8 px above the paddle's row
    # after the step, the row still; it then moved (-2, 0).
    memory = {"row_dim": 0, "x_low": 126.0, "max_distance": 6.0}
    model = LatentWorldModel(config).with_point_memory(
        memory, torch.tensor([[138.0, 124.0, 4.0, 8.0, -8.0, 0.0]]), torch.tensor([[-2.0, 0.0]])
    )
    save_checkpoint(model, tmp_path / "memory")
    model = load(tmp_path / "memory")
    assert model.config.point_memory == {**memory, "entries": 1}
    dynamics = model.dynamics.eval()
    dynamics.delta[-1].weight.zero_()
    dynamics.delta[-1].bias.zero_()

    def ball_after(steps: int, paddle: float = 132.0, seen: float = 1.0) -> list[float]:
        context = torch.zeros(1, 2, 8)
        context[0, :, 0], context[0, :, 3] = paddle, seen
        context[0, :, 2], context[0, :, 4] = torch.tensor([134.0, 138.0]), torch.tensor([116.0, 124.0])
        state = dynamics.start(context)
        for _ in range(steps):
            state = dynamics.step(state, torch.zeros(1, dtype=torch.int64))
        return [round(float(state.z[0, 2]), 3), round(float(state.z[0, 4]), 3)]

    assert ball_after(1) == [136.0, 124.0]  # returned as remembered
    assert ball_after(2) == [134.0, 124.0]  # nothing near now: the remembered motion carries on
    assert ball_after(1, paddle=160.0) == [142.0, 132.0]  # the paddle far: no return
    assert ball_after(1, seen=0.0) == [142.0, 132.0]
    dynamics.train()
    assert ball_after(1) == [142.0, 132.0]


@torch.no_grad()
def test_a_point_memory_keys_on_the_fire_button_and_replays_a_returns_path(tmp_path):
    """With key_actions, the step's press is a key column; with paths, a looked-up return's next
    moves are replayed after it (the state h carries which path and how far), then its last
    motion carries on. Saved and loaded with the weights."""
    config = LatentConfig.for_env(
        get_spec("pong"), latent_dim=8, hidden_dim=16, point_momentum=True, **BALL_POSE
    )
    # The same contact twice: with fire it went back (-2, 0) and then (-4, -4) twice; without,
    # (-8, 0) and no path remembered.
    memory = {"row_dim": 0, "x_low": 126.0, "max_distance": 6.0, "key_actions": [1], "path_steps": 2}
    keys = torch.tensor([[138.0, 124.0, 4.0, 8.0, -8.0, 0.0, 1.0], [138.0, 124.0, 4.0, 8.0, -8.0, 0.0, 0.0]])
    paths = (torch.tensor([0, -1]), torch.tensor([[[-4.0, -4.0], [-4.0, -4.0]]]), torch.tensor([2]))
    model = LatentWorldModel(config).with_point_memory(
        memory, keys, torch.tensor([[-2.0, 0.0], [-8.0, 0.0]]), paths
    )
    save_checkpoint(model, tmp_path / "memory")
    model = load(tmp_path / "memory")
    assert model.config.point_memory == {**memory, "paths": 1, "entries": 2}
    dynamics = model.dynamics.eval()
    dynamics.delta[-1].weight.zero_()
    dynamics.delta[-1].bias.zero_()

    def ball_path(action: int, steps: int) -> list[list[float]]:
        context = torch.zeros(1, 2, 8)
        context[0, :, 0], context[0, :, 3] = 132.0, 1.0
        context[0, :, 2], context[0, :, 4] = torch.tensor([134.0, 138.0]), torch.tensor([116.0, 124.0])
        state = dynamics.start(context)
        assert state.h.shape == (1, 16 + 8 + 2)  # hidden, the points' motion, the path's number and step
        places = []
        for _ in range(steps):
            state = dynamics.step(state, torch.tensor([action]))
            places.append([round(float(state.z[0, 2]), 3), round(float(state.z[0, 4]), 3)])
        return places

    # fire: returned as remembered, its path replayed, then its last motion carried on
    assert ball_path(1, 4) == [[136.0, 124.0], [132.0, 120.0], [128.0, 116.0], [124.0, 112.0]]
    assert ball_path(0, 2) == [[130.0, 124.0], [122.0, 124.0]]  # no fire: the other entry, no path
    # a path ends where its ball leaves the view: a ball seen again later is not its return
    context = torch.zeros(1, 2, 8)
    context[0, :, 0], context[0, :, 3] = 132.0, 1.0
    context[0, :, 2], context[0, :, 4] = torch.tensor([134.0, 138.0]), torch.tensor([116.0, 124.0])
    state = dynamics.step(dynamics.start(context), torch.tensor([1]))
    assert state.h[0, -2:].tolist() == [0.0, 0.0]  # path 0, at its first step
    state.z[0, 3] = 0.0
    assert dynamics.step(state, torch.tensor([1])).h[0, -2:].tolist() == [0.0, 2.0]  # past its end


@torch.no_grad()
def test_a_row_memory_steps_the_row_as_its_table_says_once_it_knows_the_last_actions(tmp_path):
    """Row memory: with the row in view, the last N action groups known and an entry of that
    history within reach of the row's last move and place, the row moves as the entry says (the
    GRU's own row otherwise, and in training); actions in one group key alike. Saved and loaded
    with the weights, and the history travels in the state h."""
    from worldsim.models.latent import action_history_code

    config = LatentConfig.for_env(get_spec("pong"), latent_dim=8, hidden_dim=16, **BALL_POSE)
    # pong's actions: noop, fire, right, left, rightfire, leftfire -> groups 0 0 1 2 1 2
    memory = {"row_dim": 0, "actions": 2, "groups": [0, 0, 1, 2, 1, 2]}
    right_right = action_history_code(torch.tensor([[1.0, 1.0]]), 3)  # 1 * 3 + 1
    assert right_right.tolist() == [4.0]
    # After two "right"s, a row that last moved -4 at 100 px moves -8; at 40 px (the edge) only -2.
    codes, keys = torch.tensor([4.0, 4.0]), torch.tensor([[-4.0, 100.0], [-4.0, 40.0]])
    model = LatentWorldModel(config).with_row_memory(memory, codes, keys, torch.tensor([-8.0, -2.0]))
    save_checkpoint(model, tmp_path / "rows")
    model = load(tmp_path / "rows")
    assert model.config.row_memory == {**memory, "entries": 2}
    dynamics = model.dynamics.eval()
    dynamics.delta[-1].weight.zero_()
    dynamics.delta[-1].bias.zero_()  # the GRU's own row stands still

    def row_after(played: list[int], past: list[int] | None, rows=(104.0, 100.0), seen=1.0) -> float:
        context = torch.zeros(1, 2, 8)
        context[0, :, 0], context[0, :, 1] = torch.tensor(rows), seen
        state = dynamics.start(context, past=None if past is None else torch.tensor([past]))
        assert state.h.shape == (1, 16 + 1 + 2)  # hidden, the row before, two action groups
        for action in played:
            state = dynamics.step(state, torch.tensor([action]))
        return round(float(state.z[0, 0]), 3)

    assert row_after([2], past=[3, 2]) == 92.0  # right after right: the table's -8
    assert row_after([4], past=[0, 4]) == 92.0  # rightfire moves it as right does
    assert row_after([2], past=[3, 2], seen=0.0) == 100.0  # a paddle out of view: the GRU's
    assert row_after([2], past=[2, 3]) == 100.0  # left, then right: no entry for that history
    assert row_after([0], past=[0, 2]) == 100.0  # right, then noop
    assert row_after([4], past=[0, 2], rows=(44.0, 40.0)) == 38.0  # at the edge: the other entry
    assert row_after([2], past=None) == 100.0  # the actions before the start unknown: the GRU
    assert row_after([2, 2], past=None) == 100.0  # the first step's row had not moved: no entry
    assert row_after([2], past=[2, 2], rows=(110.0, 100.0)) == 100.0  # last move -10: out of reach
    dynamics.train()
    assert row_after([2], past=[3, 2]) == 100.0
