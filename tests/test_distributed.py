"""Training under torchrun: two CPU processes (gloo) average their gradients and end identical."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # a collection, then two training processes


def test_two_ranks_train_to_identical_weights(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    command = [
        str(Path(sys.executable).with_name("torchrun")),
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "worldsim",
        "train",
        "--env=cartpole",
        f"--data={tiny_data}",
        f"--out={out}",
        "--autoencoder-steps=3",
        "--dynamics-steps=3",
        "--pixel-steps=3",  # CartPole trains every stage
        "--outcome-steps=3",
        "--batch-size=4",
        "--dynamics-batch-size=4",
        "--unroll=6",
        "--latent-dim=8",
        "--hidden-dim=16",
        "--val-every=3",
        "--threads=1",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "training.json").read_text())
    assert record["distributed"] == {"world_size": 2, "ranks_identical": True}
    assert (out / "model.safetensors").is_file()
