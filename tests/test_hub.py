"""Hub loading and publishing through real huggingface_hub code paths, without a network.

The cache is laid out as huggingface_hub lays it out (blobs, snapshots/<commit> symlinks,
refs/<branch>), and loads run in a fresh process with HF_HUB_OFFLINE=1 as a user would.
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest
import torch
from huggingface_hub import ModelCard

from tests.conftest import ROOT
from worldsim.envs.builtin import get_spec
from worldsim.hub.client import HubError, parse_hub_id, prepare_upload
from worldsim.models.checkpoint import save_checkpoint
from worldsim.models.latent import LatentConfig, LatentWorldModel

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = LatentWorldModel(LatentConfig.for_env(get_spec("cartpole"), latent_dim=8, hidden_dim=16))
    return save_checkpoint(
        model,
        tmp_path_factory.mktemp("ckpt") / "m",
        training={
            "command": "python -m worldsim train --env cartpole",
            "frames": 10,
            "episodes": 1,
        },
    )


def populate_cache(cache, repo_id, files, commit=COMMIT, ref="main"):
    """Write files into a Hub cache the way huggingface_hub stores a download."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)


def load_offline(cache, model_id):
    code = f"import worldsim; m = worldsim.load({model_id!r}); print(m.spec.name, m.config.latent_dim)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def checkpoint_files(folder, names=("config.json", "model.safetensors", "README.md")):
    return {name: (folder / name).read_bytes() for name in names}


def test_hub_ids_are_parsed_and_checked():
    assert parse_hub_id("hf://owner/name") == ("owner/name", None)
    assert parse_hub_id("hf://owner/name@v1.0") == ("owner/name", "v1.0")
    for bad in ("hf://../../etc", "hf://owner", "hf://a/b/c", "hf://owner/na me"):
        with pytest.raises(HubError, match="not a Hub model id"):
            parse_hub_id(bad)


def test_cached_repo_loads_offline_with_and_without_revision(tmp_path, checkpoint):
    cache = tmp_path / "hub"
    populate_cache(cache, "someone/cartpole-wm", checkpoint_files(checkpoint))
    for model_id in ("hf://someone/cartpole-wm", f"hf://someone/cartpole-wm@{COMMIT}"):
        result = load_offline(cache, model_id)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["cartpole", "8"]


def test_uncached_repo_fails_fast_offline_with_a_fix(tmp_path):
    started = time.perf_counter()
    result = load_offline(tmp_path / "empty", "hf://someone/not-downloaded")
    assert result.returncode != 0
    assert "not in the local Hugging Face cache" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert time.perf_counter() - started < 30


def test_pickle_only_and_malformed_repos_are_rejected(tmp_path, checkpoint):
    cache = tmp_path / "hub"
    config = (checkpoint / "config.json").read_bytes()
    populate_cache(cache, "evil/pickle-only", {"config.json": config, "pytorch_model.bin": b"\x80\x04pickle"})
    result = load_offline(cache, "hf://evil/pickle-only")
    assert "no model.safetensors" in result.stderr

    populate_cache(cache, "evil/bad-json", {**checkpoint_files(checkpoint), "config.json": b"{oops"})
    assert "not valid JSON" in load_offline(cache, "hf://evil/bad-json").stderr

    bad = json.loads(config)
    bad["env"] = "doom"
    populate_cache(
        cache, "evil/unknown-env", {**checkpoint_files(checkpoint), "config.json": json.dumps(bad).encode()}
    )
    assert "must be a JSON object, got 'doom'" in load_offline(cache, "hf://evil/unknown-env").stderr

    huge = json.loads(config)
    huge["latent_dim"] = 2**40
    populate_cache(
        cache, "evil/huge", {**checkpoint_files(checkpoint), "config.json": json.dumps(huge).encode()}
    )
    assert "latent_dim must be an integer in 1..4096" in load_offline(cache, "hf://evil/huge").stderr


def test_push_dry_run_writes_a_card_that_round_trips(tmp_path, checkpoint):
    staged = prepare_upload(checkpoint, "me/cartpole-wm", tmp_path / "staged")
    assert {p.name for p in staged.iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    card = ModelCard.load(staged / "README.md")
    assert card.data.library_name == "worldsim"
    assert {"world-model", "CartPole-v1"} <= set(card.data.tags)
    assert "python -m worldsim train --env cartpole" in card.text


def test_push_cli_dry_run_prints_the_folder(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "worldsim",
            "push",
            "--model",
            "cartpole",
            "--repo",
            "me/cartpole",
            "--dry-run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    staged = result.stdout.strip().splitlines()[-1]
    card = ModelCard.load(os.path.join(staged, "README.md"))
    assert card.data.library_name == "worldsim"


@pytest.mark.slow  # a collection
def test_episodes_round_trip_through_parquet_and_the_hub_cache(tmp_path, tiny_data):
    import numpy as np
    import pyarrow.parquet as pq
    from huggingface_hub import DatasetCard

    from worldsim.data.collect import load_episodes
    from worldsim.data.dataset import export_parquet, load_any_episodes

    spec = get_spec("cartpole")
    staged = export_parquet(tiny_data, spec, tmp_path / "staged")
    original = load_episodes(tiny_data, spec)
    # Other tools read it: plain pyarrow sees one row per frame, the schema declares the images.
    table = pq.read_table(sorted((staged / "data").glob("*.parquet")))
    assert table.num_rows == len(original.frames)
    assert b"Image" in table.schema.metadata[b"huggingface"]
    assert "world-model" in DatasetCard.load(staged / "README.md").data.tags
    # A Hub download of it, from the cache, offline, trains like the shards did.
    cache = tmp_path / "hub"
    files = {str(p.relative_to(staged)): p.read_bytes() for p in staged.rglob("*") if p.is_file()}
    repo = cache / "datasets--me--episodes"
    (repo / "snapshots" / COMMIT / "data").mkdir(parents=True)
    for name, data in files.items():
        (repo / "snapshots" / COMMIT / name).write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    code = (
        "import numpy as np; from worldsim.data.dataset import load_any_episodes;"
        "d = load_any_episodes('hf://datasets/me/episodes', 'cartpole');"
        "print(len(d.frames), d.num_episodes, int(d.frames.sum() % 1000003))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    expected = f"{len(original.frames)} {original.num_episodes} {int(original.frames.sum() % 1000003)}"
    assert result.stdout.strip() == expected
    local = load_any_episodes(str(staged), spec)
    for name in ("frames", "actions", "states", "episode_starts", "episode_lengths", "policies"):
        assert np.array_equal(getattr(local, name), getattr(original, name)), name
    # `collect --source` turns a dataset back into shards that train like collected ones.
    from worldsim.data.dataset import materialize_shards

    materialize_shards(str(staged), spec, tmp_path / "shards", shard_episodes=3)
    again = load_episodes(tmp_path / "shards", spec)
    assert np.array_equal(again.frames, original.frames) and np.array_equal(again.actions, original.actions)
