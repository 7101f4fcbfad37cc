"""Checkpoints: a folder that describes itself, and `load` that finds one by name, path or Hub id.

checkpoints/cartpole/
    config.json         the model's kind, format version, environment spec and hyper-parameters
                        (validated before any tensor is built)
    model.safetensors   weights (never a pickle)
    training.json       how it was trained: exact command, data size, minutes, validation
    metrics.json        what `python -m worldsim eval` measured (written by eval)
    README.md           the model card, generated from the three JSON files
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from worldsim.hub.client import HubError, download, is_hub_id
from worldsim.models.card import read_card_inputs, render_model_card

# Shipped checkpoints: WORLDSIM_CHECKPOINTS, else the checkpoints/ folder of a source checkout
# (found from this file, so models load from any working directory).
CHECKPOINTS_DIR = Path(
    os.environ.get("WORLDSIM_CHECKPOINTS") or Path(__file__).resolve().parents[2] / "checkpoints"
)
MAX_CONFIG_BYTES = 1_000_000  # a config is a few kB; refuse to parse anything huge
MAX_WEIGHTS_BYTES = 200_000_000  # shipped models are a few MB
CHECKPOINT_ENTRY_POINTS = "worldsim.checkpoints"  # plugins: model name -> checkpoint folder
SHIPPED_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")  # a folder of checkpoints/: no path can sneak in


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message says which file and what is wrong."""


def save_checkpoint(
    model, folder: str | Path, training: dict | None = None, metrics: dict | None = None
) -> Path:
    """Write config, weights (the plain module's state dict) and, if given, training and metrics.
    `model` is a PretrainedWorldModel (a torch module with `config_dict()`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(model.config_dict(), indent=2) + "\n")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt", "env": model.spec.name})
    if training is not None:
        (folder / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_model_card(folder)
    return folder


def save_metrics(folder: str | Path, metrics: dict) -> None:
    """Record evaluation results in a checkpoint folder and its card, leaving the weights alone
    (rewriting them changes their bytes, though not their values: safetensors orders its header
    metadata anew each time)."""
    (Path(folder) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_model_card(folder)


def write_model_card(folder: str | Path) -> None:
    (Path(folder) / "README.md").write_text(render_model_card(*read_card_inputs(folder)))


def shipped_checkpoints() -> dict[str, Path]:
    """name -> folder for every checkpoint in CHECKPOINTS_DIR."""
    if not CHECKPOINTS_DIR.is_dir():
        return {}
    return {p.parent.name: p.parent for p in sorted(CHECKPOINTS_DIR.glob("*/config.json"))}


def plugin_checkpoints() -> dict[str, Path]:
    """name -> folder for the checkpoints that installed packages ship: each entry point of the
    group `worldsim.checkpoints` names a model and points to its folder (a path, or a function
    that returns one). A plugin that fails to load is skipped with a warning, not fatal."""
    import warnings
    from importlib.metadata import entry_points

    found = {}
    for entry in entry_points(group=CHECKPOINT_ENTRY_POINTS):
        try:
            target = entry.load()
            folder = Path(target() if callable(target) else target)
        except Exception as error:  # a broken plugin must not take the app down
            warnings.warn(f"worldsim: checkpoint entry point {entry.name!r} failed: {error}", stacklevel=2)
            continue
        if (folder / "config.json").is_file():
            found[entry.name] = folder
        else:
            warnings.warn(
                f"worldsim: plugin checkpoint {entry.name!r} has no {folder}/config.json", stacklevel=2
            )
    return found


def resolve(name_or_path: str | Path) -> Path:
    """A shipped or plugin name ("cartpole") -> its folder; "hf://owner/repo[@rev]" -> its
    snapshot in the Hugging Face cache (downloaded if needed); otherwise an existing folder."""
    text = str(name_or_path).strip()
    if is_hub_id(text):
        try:
            return download(text)
        except HubError as error:
            raise CheckpointError(str(error)) from None
    if SHIPPED_NAME.fullmatch(text.lower()):
        named = {**plugin_checkpoints(), **shipped_checkpoints()}
        if text.lower() in named:
            return named[text.lower()]
    path = Path(text)
    if path.is_dir():
        return path
    names = sorted({**plugin_checkpoints(), **shipped_checkpoints()})
    raise CheckpointError(
        f"No model {text!r}: not a shipped or plugin model ({', '.join(names) or 'none'}) "
        "nor hf://owner/name, nor a checkpoint folder."
    )


def read_config_json(folder: Path) -> dict:
    """config.json as a dict, refusing what is missing, huge or not a JSON object."""
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(
            f"{folder} is not a worldsim checkpoint: it has no config.json "
            "(a checkpoint folder holds config.json and model.safetensors)."
        )
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(
            f"{path} is {path.stat().st_size:,} bytes; a config is at most {MAX_CONFIG_BYTES:,}."
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, not {type(data).__name__}.")
    return data


def read_weights(build: Callable[[], torch.nn.Module], folder: Path) -> torch.nn.Module:
    """Build the module (first on the meta device, to check sizes and names before any memory is
    allocated) and load model.safetensors into it, strictly: names and shapes must match."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{folder} has no model.safetensors (only safetensors weights are read).")
    if weights.stat().st_size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(
            f"{weights} is {weights.stat().st_size:,} bytes; "
            f"worldsim models are at most {MAX_WEIGHTS_BYTES:,}."
        )
    expected = _expected_tensors(build, folder)
    try:
        with safe_open(weights, framework="pt") as f:
            names = set(f.keys())
            missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
            if missing or unexpected:
                raise CheckpointError(
                    f"{weights} does not match its config: "
                    f"missing {missing[:5]}, unexpected {unexpected[:5]}."
                )
            for name in expected:
                shape = tuple(f.get_slice(name).get_shape())
                if shape != tuple(expected[name].shape):
                    raise CheckpointError(
                        f"{weights}: tensor {name} has shape {shape}, the config needs "
                        f"{tuple(expected[name].shape)}."
                    )
            state = {name: f.get_tensor(name) for name in expected}
    except CheckpointError:
        raise
    except Exception as error:  # safetensors reports corrupt files with its own error types
        raise CheckpointError(f"{weights} is not a readable safetensors file: {error}") from None
    model = build()
    model.load_state_dict(state, strict=True)
    return model


def _expected_tensors(build: Callable[[], torch.nn.Module], folder: Path) -> dict[str, torch.Tensor]:
    """The model's tensors as shapes only (meta device), so that a config describing a huge or
    unbuildable model is refused before any memory is allocated."""
    try:
        with torch.device("meta"):
            expected = build().state_dict()
    except Exception as error:  # any field combination the model cannot be built from
        raise CheckpointError(
            f"{folder / 'config.json'} does not describe a buildable model: {error}"
        ) from None
    size = sum(tensor.numel() * tensor.element_size() for tensor in expected.values())
    if size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(
            f"{folder / 'config.json'} describes a model of {size:,} bytes; "
            f"worldsim models are at most {MAX_WEIGHTS_BYTES:,}."
        )
    return expected
