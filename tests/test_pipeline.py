"""Collect -> train -> load -> roll out, for real, on a tiny budget."""

import json

import numpy as np
import pytest
import torch

import worldsim
from tests.conftest import TINY_TRAINING
from worldsim.data.collect import collect_episodes, load_episodes
from worldsim.envs.builtin import get_spec


@pytest.mark.slow  # a collection
def test_collected_shards_hold_whole_episodes(tiny_data):
    spec = get_spec("cartpole")
    data = load_episodes(tiny_data, spec)
    assert data.num_episodes == 4
    assert data.frames.shape[1:] == (64, 160, 3) and data.frames.dtype == np.uint8
    assert len(data.frames) == len(data.actions) == len(data.states) == data.episode_lengths.sum()
    assert set(np.unique(data.actions)) <= {0, 1}
    # Frames inside an episode change from step to step (the simulator really ran).
    first = data.episode_starts[0]
    assert not np.array_equal(data.frames[first], data.frames[first + 5])


@pytest.mark.slow  # a collection
def test_collection_is_deterministic_given_seed():
    spec = get_spec("cartpole")
    a = collect_episodes(spec, 2, num_envs=2, seed=(5, 0))
    b = collect_episodes(spec, 2, num_envs=2, seed=(5, 0))
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x["frames"], y["frames"]) and np.array_equal(x["actions"], y["actions"])


@pytest.mark.slow  # a collection
def test_collection_resumes_by_skipping_written_shards(tiny_data):
    from worldsim.data.collect import CollectConfig, collect

    before = {p.name: p.stat().st_mtime_ns for p in tiny_data.glob("shard_*.npz")}
    collect(CollectConfig(env="cartpole", out=str(tiny_data), episodes=4, shard_episodes=2, seed=123))
    after = {p.name: p.stat().st_mtime_ns for p in tiny_data.glob("shard_*.npz")}
    assert before == after


@pytest.mark.slow  # a collection
def test_collection_takes_the_policies_and_episode_length_it_is_given(tmp_path):
    from worldsim.data.collect import CollectConfig, collect

    config = CollectConfig(
        env="cartpole",
        out=str(tmp_path),
        episodes=2,
        shard_episodes=2,
        policies="balance:1",
        episode_steps=30,
    )
    assert config.spec().collect_policies == (("balance", 1.0),) and config.spec().episode_steps == 30
    collect(config)
    data = load_episodes(tmp_path, get_spec("cartpole"))
    # A balancer keeps the pole up past random play's ~20 steps; the episodes stop at 30.
    assert set(data.policies) == {"balance"} and data.episode_lengths.tolist() == [31, 31]
    with pytest.raises(ValueError, match="--policies takes name:weight pairs.*got 'balanse:1'"):
        CollectConfig(env="cartpole", policies="random:1,balanse:1")


@pytest.mark.parametrize("env", ["cartpole", "pong"])  # a state replayed; ALE's state copied
def test_branches_continue_one_state_many_ways(env, tmp_path):
    from worldsim.data.collect import BRANCH_CONTEXT, CollectConfig, collect

    config = CollectConfig(
        env=env, out=str(tmp_path), episodes=2, shard_episodes=2, policies="random:1", branch="6 3 8"
    )
    collect(config)
    data = load_episodes(tmp_path, get_spec(env))
    # 2 seeds x 3 branches, each the 4 frames before the branch point, the point and 8 steps
    assert data.episode_lengths.tolist() == [BRANCH_CONTEXT + 1 + 8] * 6
    episodes = np.split(np.arange(len(data.frames)), np.cumsum(data.episode_lengths)[:-1])
    for seed in (episodes[:3], episodes[3:]):
        shared = [data.frames[e[: BRANCH_CONTEXT + 1]] for e in seed]
        assert all(np.array_equal(shared[0], other) for other in shared[1:])  # the same past
        assert all(
            np.array_equal(data.actions[seed[0][:BRANCH_CONTEXT]], data.actions[e[:BRANCH_CONTEXT]])
            for e in seed
        )
        futures = {data.actions[e[BRANCH_CONTEXT:-1]].tobytes() for e in seed}
        assert len(futures) == 3  # and futures of their own (random keys; the collection is seeded)
    with pytest.raises(ValueError, match="--branch takes three whole numbers.*got '52 50'"):
        CollectConfig(env="pong", branch="52 50")


def test_a_copied_state_continues_as_the_simulator_does():
    """Pong's branch from a copied emulator state plays the frames a fresh run of the same seed
    and actions plays: the branches are the simulator's own futures, not a copy's."""
    from worldsim.data.collect import _make_recording_env

    spec = get_spec("pong")
    env = _make_recording_env(spec)
    actions = np.random.default_rng(0).integers(spec.num_actions, size=20)
    env.reset(seed=7)
    for a in actions[:10]:
        env.step(int(a))
    state = env.clone_state()
    for a in actions[10:]:
        env.step(int(a))
    env.restore_state(state)
    branched = [env.step(int(a))[-1]["frame"] for a in actions[10:]]
    env.reset(seed=7)
    for a in actions[:10]:
        env.step(int(a))
    fresh = [env.step(int(a))[-1]["frame"] for a in actions[10:]]
    env.close()
    assert all(np.array_equal(b, f) for b, f in zip(branched, fresh, strict=True))


@pytest.mark.slow  # a collection and a training
def test_tiny_training_writes_a_loadable_checkpoint(tiny_checkpoint, start_frame):
    files = {p.name for p in tiny_checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "training.json", "README.md"} <= files
    training = json.loads((tiny_checkpoint / "training.json").read_text())
    assert training["command"] == "pytest tiny" and training["frames"] > 0
    assert training["autoencoder"]["validation"] and training["dynamics"]["validation"]
    card = (tiny_checkpoint / "README.md").read_text()
    assert "pytest tiny" in card and "library_name: worldsim" in card
    model = worldsim.load(tiny_checkpoint)
    video = model.rollout(start_frame, "right*4 left*4")
    assert video.shape == (9, 64, 160, 3)


@pytest.mark.slow  # a collection and a training
def test_training_resumes_from_a_checkpoint_and_records_every_command(tiny_checkpoint, tiny_data, tmp_path):
    from worldsim.training.train import TrainConfig, train

    config = TrainConfig(
        env="cartpole",
        data=str(tiny_data),
        out=str(tmp_path / "resumed"),
        init_from=str(tiny_checkpoint),
        stages="dynamics",
        dynamics_steps=2,
        dynamics_batch_size=2,
        unroll=6,
        val_every=2,
    )
    train(config, command="pytest resume")
    training = json.loads((tmp_path / "resumed" / "training.json").read_text())
    assert training["commands"] == ["pytest tiny", "pytest resume"]
    assert training["dynamics"]["validation"] and training["autoencoder"]["validation"]
    assert "pytest tiny\npytest resume\n" in (tmp_path / "resumed" / "README.md").read_text()


@pytest.mark.slow  # a collection and a training
def test_tiny_continuous_model_trains_and_rolls_out(tmp_path):
    """The same pipeline for a continuous action space: Pendulum's torque."""
    from worldsim.data.collect import CollectConfig, collect
    from worldsim.training.train import TrainConfig, train

    data = tmp_path / "pendulum"
    collect(CollectConfig(env="pendulum", out=str(data), episodes=2, shard_episodes=2, num_envs=1, seed=5))
    config = TrainConfig.for_env(
        "pendulum",
        data=str(data),
        out=str(tmp_path / "ckpt"),
        val_fraction=0.5,
        **TINY_TRAINING,
    )
    train(config, command="pytest tiny pendulum")
    model = worldsim.load(tmp_path / "ckpt")
    assert model.config.action_kind == "continuous" and model.config.num_actions == 1
    start = np.load(next(data.glob("*.npz")))["frames"][0]
    video = model.rollout(start, "2*3 -1.5 [0.5]")
    assert video.shape == (6, 64, 64, 3) and video.dtype == np.uint8
    # Different torques reach the dynamics (a model this tiny may not move a whole pixel: compare
    # the latents it would draw).
    state = model.start(torch.from_numpy(model.prepare_context(start))[None])
    pushed = [model.step(state, torch.tensor([[torque]])).z for torque in (2.0, -2.0)]
    assert not torch.equal(*pushed)


def test_each_environment_trains_with_its_own_defaults_unless_overridden():
    from worldsim.cli import _flags_given, build_parser
    from worldsim.training.train import TrainConfig

    assert TrainConfig.for_env("breakout").autoencoder_steps == 3000
    assert TrainConfig.for_env("cartpole").single_frame_at_reset and not TrainConfig().single_frame_at_reset
    args = build_parser().parse_args(["train", "--env", "breakout", "--autoencoder-steps", "7"])
    flags = _flags_given(TrainConfig, args)
    config = TrainConfig.for_env(flags.pop("env"), **flags)
    assert config.autoencoder_steps == 7 and config.dynamics_steps == 4000
