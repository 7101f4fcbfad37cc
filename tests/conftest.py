"""Shared fixtures: a tiny model trained in seconds, and the shipped CartPole checkpoint."""

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
SHOTS = ROOT / "docs" / "screenshots"  # the browser tests' screenshots, committed after CI


def pytest_addoption(parser):
    parser.addoption(
        "--all-tiers",
        action="store_true",
        help="run every test tier: unit, slow and browser (clears the default -m of addopts)",
    )


def pytest_configure(config):
    if config.getoption("--all-tiers"):
        config.option.markexpr = ""


# A training run of seconds: right shapes and a full checkpoint, wrong dynamics.
TINY_TRAINING = dict(
    autoencoder_steps=4,
    dynamics_steps=4,
    batch_size=4,
    dynamics_batch_size=4,
    unroll=6,
    latent_dim=8,
    hidden_dim=16,
    val_every=2,
    outcome_steps=4,
)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Four real CartPole episodes collected through the async vector env."""
    from worldsim.data.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("data") / "cartpole"
    collect(CollectConfig(env="cartpole", out=str(out), episodes=4, shard_episodes=2, seed=123))
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data, tmp_path_factory) -> Path:
    """A small CartPole model trained for a few steps: right shapes, wrong dynamics."""
    from worldsim.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    config = TrainConfig(env="cartpole", data=str(tiny_data), out=str(out), **TINY_TRAINING)
    train(config, command="pytest tiny")
    return out


@pytest.fixture(scope="session")
def start_frame() -> np.ndarray:
    from worldsim.media.images import load_image

    return load_image(ASSETS / "cartpole" / "reset_seed7.png")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url():
    """`python app.py` as a user starts it, on a free port; stopped after the session."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 90
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited: {process.stdout.read()}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError("app.py did not start within 90 s")
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium, driven by Playwright; the browser tests skip without it."""
    import shutil

    from worldsim.tools.bench_app import CHROMIUM, launch_chromium

    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()
