"""Hugging Face Hub: load world models from `hf://owner/repo[@revision]`, publish ours.

Downloads go through huggingface_hub's `snapshot_download` into the standard cache, fetching only
the files a checkpoint consists of (JSON configs, safetensors weights, the card): a pickle in a
repo is never even downloaded. HF_TOKEN is honoured for private repos, HF_HUB_OFFLINE=1 serves
from the cache.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

HUB_PREFIX = "hf://"
CHECKPOINT_FILES = [
    "config.json",
    "model.safetensors",
    "README.md",
    "training.json",
    "metrics.json",
    "calibration.json",
]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


class HubError(ValueError):
    """A Hub model that cannot be had; the message says why and what to do."""


def is_hub_id(text: str) -> bool:
    return str(text).strip().startswith(HUB_PREFIX)


def parse_hub_id(text: str) -> tuple[str, str | None]:
    """'hf://owner/repo@rev' -> ('owner/repo', 'rev'); a clear error for anything else."""
    body = str(text).strip().removeprefix(HUB_PREFIX)
    repo_id, _, revision = body.partition("@")
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise HubError(f"{text!r} is not a Hub model id; write hf://owner/name or hf://owner/name@revision.")
    return repo_id, revision or None


def cached_snapshot(text: str) -> Path | None:
    """The cached snapshot of a Hub checkpoint, or None; never touches the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id, revision = parse_hub_id(text)
    try:
        return Path(
            snapshot_download(
                repo_id, revision=revision, allow_patterns=CHECKPOINT_FILES, local_files_only=True
            )
        )
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def download(text: str) -> Path:
    """Fetch (or find in the cache) a Hub checkpoint; returns its local snapshot folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, revision = parse_hub_id(text)
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=CHECKPOINT_FILES,
            library_name="worldsim",
            etag_timeout=5,
        )
    except LocalEntryNotFoundError:
        raise HubError(
            f"{repo_id}{'@' + revision if revision else ''} is not in the local Hugging Face cache and the "
            "Hub cannot be reached (offline: HF_HUB_OFFLINE=1, or no network). Connect and unset "
            "HF_HUB_OFFLINE to download it once; afterwards it loads offline."
        ) from None
    except GatedRepoError:
        raise HubError(f"{repo_id} is gated: accept its terms on the Hub and set HF_TOKEN.") from None
    except RevisionNotFoundError:
        raise HubError(f"{repo_id} has no revision {revision!r}.") from None
    except RepositoryNotFoundError:
        raise HubError(f"No Hub repo {repo_id} (or it is private: set HF_TOKEN).") from None
    except HfHubHTTPError as error:
        raise HubError(f"The Hub refused {repo_id}: {error}") from None
    return Path(folder)


def model_card(folder: Path, repo_id: str | None = None):
    """A huggingface_hub ModelCard with worldsim metadata: env tags, eval results as model-index."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from worldsim.envs.spec import EnvSpec
    from worldsim.models.card import read_card_inputs, render_model_card

    config, training, metrics = read_card_inputs(folder)
    spec = EnvSpec.from_dict(config["env"])
    results = []
    for policy, per_step in (metrics or {}).get("per_step", {}).items():
        for horizon in (1, 5, 10, 30, 60):
            if horizon < len(per_step["psnr"]):
                results.append(
                    EvalResult(
                        task_type="world-modeling",
                        dataset_type=spec.gym_id,
                        dataset_name=f"{spec.gym_id} held-out seeds, {policy} actions",
                        metric_type="psnr",
                        metric_name=f"PSNR at horizon {horizon}",
                        metric_value=round(per_step["psnr"][horizon], 3),
                    )
                )
    data = ModelCardData(
        library_name="worldsim",
        tags=["world-model", spec.gym_id, "gymnasium"],
        model_name=repo_id or f"worldsim-{spec.name}",
        eval_results=results or None,
    )
    body = render_model_card(config, training, metrics).split("---\n", 2)[-1]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def prepare_upload(folder: Path, repo_id: str, out: Path | None = None) -> Path:
    """Copy a checkpoint's files and write its Hub model card: the exact folder `push` uploads."""
    out = Path(out or tempfile.mkdtemp(prefix="worldsim-push-"))
    out.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        if (folder / name).exists() and name != "README.md":
            shutil.copy2(folder / name, out / name)
    model_card(folder, repo_id).save(out / "README.md")
    return out


def push(folder: Path, repo_id: str, private: bool = False, dry_run: bool = False) -> str:
    """Upload a checkpoint folder as a Hub model repo; returns its URL (or the staged folder)."""
    parse_hub_id(repo_id)
    staged = prepare_upload(folder, repo_id)
    if dry_run:
        return str(staged)
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo_id, folder_path=staged, commit_message="Upload worldsim checkpoint")
    return str(url)
