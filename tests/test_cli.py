import subprocess
import sys

import imageio_ffmpeg
import pytest

from tests.conftest import ASSETS, ROOT

pytestmark = pytest.mark.slow  # each test starts `python -m worldsim` processes


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "worldsim", *args], cwd=ROOT, capture_output=True, text=True)


def test_cli_rollout_writes_the_video(tmp_path):
    out = tmp_path / "out.mp4"
    result = run_cli(
        "rollout",
        "--model",
        "cartpole",
        "--start",
        str(ASSETS / "cartpole" / "reset_seed7.png"),
        "--actions",
        "right*5 left*5",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 11


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    result = run_cli(
        "rollout",
        "--start",
        str(ASSETS / "cartpole" / "reset_seed7.png"),
        "--actions",
        "up*3",
        "--out",
        str(tmp_path / "x.mp4"),
    )
    assert result.returncode == 2
    assert "Unknown action 'up' at position 1" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli("rollout", "--model", "nope", "--start", "x.png", "--actions", "left", "--out", "x.mp4")
    assert missing.returncode == 2 and "No model 'nope'" in missing.stderr
