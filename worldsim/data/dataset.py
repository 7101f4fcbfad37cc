"""Collected episodes as a Hugging Face dataset: Parquet with lossless PNG frames.

Why this format: Parquet is what the Hub's dataset viewer, `datasets.load_dataset`, pandas,
polars and DuckDB all read, with no code of ours. Frames are stored as PNG bytes in the
`datasets` Image layout ({"bytes", "path"}), declared in the schema metadata so `datasets`
decodes them to images: lossless, because a world model should learn from the exact pixels the
simulator drew (per-episode MP4, as LeRobot stores video, would add codec error to the targets).
One row per frame:

    episode_index, frame_index   int64
    image                        PNG at the model's resolution
    action                       int64, or list<float32> for continuous actions (filler on the last frame)
    state                        list<float32>, the simulator state (absent if the env has none)
    policy                       string, which collection policy drove the episode

`worldsim.json` beside the Parquet files names the env, resolution and format version.

    python -m worldsim push-data --data data/cartpole --repo owner/cartpole-episodes [--dry-run]
    python -m worldsim train --env cartpole --data hf://datasets/owner/cartpole-episodes
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from worldsim.data.collect import DATA_FORMAT_VERSION, EpisodeData, load_episodes
from worldsim.envs.spec import EnvSpec
from worldsim.envs.builtin import get_spec
from worldsim.hub.client import HUB_PREFIX, HubError

DATASET_PREFIX = HUB_PREFIX + "datasets/"
DATASET_FILES = ["*.parquet", "worldsim.json", "README.md"]
_IMAGE_FEATURES = {"image": {"_type": "Image"}}


def is_hub_dataset(text: str) -> bool:
    return str(text).strip().startswith(DATASET_PREFIX)


def export_parquet(data_folder: str | Path, spec: EnvSpec, out: str | Path) -> Path:
    """Shards in `data_folder` -> out/data/train-*.parquet, worldsim.json and a dataset card."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    data = load_episodes(data_folder, spec)
    schema_metadata = {b"huggingface": json.dumps({"info": {"features": _features(spec, data)}}).encode()}
    chunks = np.array_split(np.arange(data.num_episodes), max(1, data.num_episodes // 100))
    for i, episodes in enumerate(tqdm(chunks, desc="write parquet", unit="file")):
        table = pa.table(_columns(data, episodes)).replace_schema_metadata(schema_metadata)
        pq.write_table(table, out / "data" / f"train-{i:05d}-of-{len(chunks):05d}.parquet")
    meta = {
        "format_version": DATA_FORMAT_VERSION,
        "env": spec.name,
        "gym_id": spec.gym_id,
        "height": spec.height,
        "width": spec.width,
        "fps": spec.fps,
        "episodes": int(data.num_episodes),
        "frames": len(data.frames),
    }
    (out / "worldsim.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "README.md").write_text(_dataset_card(spec, meta))
    return out


def _columns(data: EpisodeData, episodes: np.ndarray) -> dict:
    rows = np.concatenate(
        [
            np.arange(data.episode_starts[e], data.episode_starts[e] + data.episode_lengths[e])
            for e in episodes
        ]
    )
    episode_index = np.repeat(episodes, data.episode_lengths[episodes])
    columns = {
        "episode_index": episode_index.astype(np.int64),
        "frame_index": (rows - data.episode_starts[episode_index]).astype(np.int64),
        "image": [{"bytes": _png(data.frames[r]), "path": None} for r in rows],
        "action": data.actions[rows] if data.actions.ndim == 1 else list(data.actions[rows]),
        "policy": data.policies[episode_index].astype(str).tolist(),
    }
    if data.states is not None:
        columns["state"] = list(data.states[rows])
    if data.rewards is not None:
        columns["reward"] = data.rewards[rows].astype(np.float32)
        columns["terminal"] = data.terminals[rows].astype(bool)
    return columns


def _features(spec: EnvSpec, data: EpisodeData) -> dict:
    scalar = {"dtype": "int64", "_type": "Value"}
    features = {
        "episode_index": scalar,
        "frame_index": scalar,
        **_IMAGE_FEATURES,
        "action": scalar
        if spec.action_kind == "discrete"
        else {"feature": {"dtype": "float32", "_type": "Value"}, "_type": "List"},
        "policy": {"dtype": "string", "_type": "Value"},
    }
    if data.states is not None:
        features["state"] = {"feature": {"dtype": "float32", "_type": "Value"}, "_type": "List"}
    if data.rewards is not None:
        features["reward"] = {"dtype": "float32", "_type": "Value"}
        features["terminal"] = {"dtype": "bool", "_type": "Value"}
    return features


def _png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def _dataset_card(spec: EnvSpec, meta: dict) -> str:
    return "\n".join(
        [
            "---",
            "tags:",
            "- world-model",
            f"- {spec.gym_id}",
            "- worldsim",
            "configs:",
            "- config_name: default",
            "  data_files: data/*.parquet",
            "---",
            "",
            f"# {spec.gym_id} episodes for world models",
            "",
            f"{meta['episodes']} episodes, {meta['frames']:,} frames at {spec.height}x{spec.width}, "
            f"recorded by `python -m worldsim collect --env {spec.name}` "
            f"(worldsim data format {meta['format_version']}).",
            "One row per frame: `episode_index`, `frame_index`, `image` (PNG), `action` taken after "
            "the frame (the last frame of an episode carries a filler), `state` (simulator state), `policy`.",
            "",
            "```python",
            "from datasets import load_dataset",
            'episodes = load_dataset("OWNER/NAME", split="train")',
            "```",
            "",
        ]
    )


def load_parquet_episodes(folder: str | Path, spec: EnvSpec) -> EpisodeData:
    """Parquet files written by `export_parquet` (a local folder or a Hub snapshot) -> EpisodeData."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    meta_path = folder / "worldsim.json"
    if not meta_path.is_file():
        raise HubError(f"{folder} has no worldsim.json: not a worldsim dataset.")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != DATA_FORMAT_VERSION:
        raise HubError(
            f"{folder}: data format_version {meta.get('format_version')!r}; this worldsim reads "
            f"{DATA_FORMAT_VERSION}."
        )
    if (meta.get("env"), meta.get("height"), meta.get("width")) != (spec.name, spec.height, spec.width):
        raise HubError(
            f"{folder} holds {meta.get('env')} at {meta.get('height')}x{meta.get('width')}, not {spec.name}."
        )
    files = sorted((folder / "data").glob("*.parquet"))
    if not files:
        raise HubError(f"{folder}/data has no Parquet files.")
    table = pq.read_table(files)  # every file, one table
    frames = np.stack(
        [
            np.asarray(Image.open(io.BytesIO(image["bytes"])).convert("RGB"))
            for image in table.column("image").to_pylist()
        ]
    )
    episode_index = table.column("episode_index").to_numpy()
    starts = np.flatnonzero(np.diff(episode_index, prepend=-1))
    lengths = np.diff(np.append(starts, len(episode_index)))
    action = table.column("action")
    actions = (
        action.to_numpy()
        if spec.action_kind == "discrete"
        else np.stack(action.to_pylist()).astype(np.float32)
    )
    states = (
        np.stack(table.column("state").to_pylist()).astype(np.float32)
        if "state" in table.column_names
        else None
    )

    def column(name: str, dtype) -> np.ndarray | None:
        return table.column(name).to_numpy().astype(dtype) if name in table.column_names else None

    return EpisodeData(
        frames=frames,
        actions=actions,
        states=states,
        rewards=column("reward", np.float32),  # datasets published before rewards were recorded
        terminals=column("terminal", bool),  # carry neither: None

        episode_starts=starts.astype(np.int64),
        episode_lengths=lengths.astype(np.int64),
        policies=np.asarray(table.column("policy").to_pylist())[starts],
    )


def download_dataset(text: str) -> Path:
    """'hf://datasets/owner/name[@rev]' -> local snapshot (only Parquet, JSON and the card)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    from worldsim.hub.client import parse_hub_id

    repo_id, revision = parse_hub_id(HUB_PREFIX + str(text).strip().removeprefix(DATASET_PREFIX))
    try:
        return Path(
            snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=DATASET_FILES)
        )
    except LocalEntryNotFoundError:
        raise HubError(
            f"Dataset {repo_id} is not in the local Hugging Face cache and the Hub cannot be reached "
            "(HF_HUB_OFFLINE=1, or no network)."
        ) from None
    except RepositoryNotFoundError:
        raise HubError(f"No Hub dataset {repo_id} (or it is private: set HF_TOKEN).") from None


def load_any_episodes(source: str, spec: EnvSpec | str) -> EpisodeData:
    """Training data from a shard folder, a Parquet export folder, or hf://datasets/owner/name."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    if is_hub_dataset(source):
        return load_parquet_episodes(download_dataset(source), spec)
    if (Path(source) / "worldsim.json").exists():
        return load_parquet_episodes(source, spec)
    return load_episodes(source, spec)


def materialize_shards(source: str, spec: EnvSpec, out: str | Path, shard_episodes: int = 25) -> list[Path]:
    """Episodes from a Hub dataset (or Parquet folder) -> local shards, as `collect` would write."""
    from worldsim.data.collect import shard_path, write_shard

    data = load_any_episodes(source, spec)
    Path(out).mkdir(parents=True, exist_ok=True)
    paths = []
    for k, first in enumerate(range(0, data.num_episodes, shard_episodes)):
        episodes = []
        for e in range(first, min(first + shard_episodes, data.num_episodes)):
            rows = slice(data.episode_starts[e], data.episode_starts[e] + data.episode_lengths[e])
            states = None if data.states is None else data.states[rows]
            frames, actions = data.frames[rows], data.actions[rows][:-1]  # drop the filler action
            episodes.append(
                {
                    "frames": frames,
                    "actions": actions,
                    "states": states,
                    "rewards": None if data.rewards is None else data.rewards[rows],
                    "terminals": None if data.terminals is None else data.terminals[rows],
                    "seed": -1,
                    "policy": data.policies[e],
                }
            )
        paths.append(shard_path(out, k))
        write_shard(paths[-1], spec, episodes)
    return paths


def push_dataset(
    data_folder: str, spec: EnvSpec, repo_id: str, private: bool = False, dry_run: bool = False
) -> str:
    """Export shards to Parquet and upload them as a Hub dataset repo; returns its URL (or folder)."""
    import tempfile

    from worldsim.hub.client import parse_hub_id

    parse_hub_id(HUB_PREFIX + repo_id)
    staged = export_parquet(data_folder, spec, tempfile.mkdtemp(prefix="worldsim-data-"))
    if dry_run:
        return str(staged)
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id, repo_type="dataset", folder_path=staged, commit_message="Upload worldsim episodes"
    )
    return str(url)
