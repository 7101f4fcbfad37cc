"""The app as other programs use it: gradio_client against `python app.py`."""

import imageio_ffmpeg
import pytest
from gradio_client import Client, handle_file

from tests.conftest import ASSETS

pytestmark = pytest.mark.slow  # starts `python app.py`

START = str(ASSETS / "cartpole" / "reset_seed7.png")


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_rollout_api_returns_a_playable_mp4(client):
    video, summary, _ = client.predict("cartpole", handle_file(START), "right*5 left*5", api_name="/rollout")
    assert video.endswith(".mp4")
    frames, _ = imageio_ffmpeg.count_frames_and_secs(video)
    assert frames == 11  # the start frame and one per action
    assert "10 steps" in summary and "0.20 s of play" in summary
    assert "No simulator truth" in summary  # an uploaded frame has no known simulator state


def test_simulator_start_adds_the_real_environment_beside_the_model(client):
    video, summary, plot = client.predict(
        "cartpole", handle_file(START), "right*5 left*5", "seed 7", api_name="/rollout"
    )
    assert "beside the real simulator from seed 7" in summary
    reader = imageio_ffmpeg.read_frames(video)
    width, height = next(reader)["size"]
    assert width == 640 and height > 3 * 256  # model, simulator and difference, stacked
    assert len(plot["data"]) == 20  # PSNR per step 1..10, model and copy baseline


def test_a_simulator_start_that_does_not_match_the_frame_is_refused(client):
    _, summary, _ = client.predict("cartpole", handle_file(START), "right", "seed 8", api_name="/rollout")
    assert "not the simulator's frame for seed 8" in summary


@pytest.mark.parametrize(
    "actions, message",
    [
        ("right jump", "Unknown action 'jump' at position 2"),
        ("left*100000", "at most 300 steps"),
        ("", "Type some actions"),
    ],
)
def test_bad_actions_get_our_message(client, actions, message):
    with pytest.raises(Exception, match=message):
        client.predict("cartpole", handle_file(START), actions, api_name="/rollout")


def test_bad_image_gets_our_message_and_the_server_keeps_serving(client, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(Exception, match="Not a readable image|image"):
        client.predict("cartpole", handle_file(str(fake)), "right", api_name="/rollout")
    video, _, _ = client.predict("cartpole", handle_file(START), "right*3", api_name="/rollout")
    assert imageio_ffmpeg.count_frames_and_secs(video)[0] == 4


def test_readme_client_snippet(app_url, monkeypatch):
    """The gradio_client example in the README runs as written (against this test's app)."""
    import re

    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    snippet = next(
        block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "gradio_client" in block
    )
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(snippet.replace("http://127.0.0.1:7860/", app_url), namespace)
    assert namespace["mp4_path"].endswith(".mp4")
    assert "4 samples with seed 0" in namespace["summary"]


def test_rollout_is_an_mcp_tool_with_described_parameters(app_url):
    import json
    import urllib.request

    schema = json.load(urllib.request.urlopen(app_url + "gradio_api/mcp/schema", timeout=10))
    tools = {tool["name"]: tool for tool in schema}
    rollout = next(tool for name, tool in tools.items() if "rollout" in name)
    properties = rollout["inputSchema"]["properties"]
    assert {"model_name", "start_frame", "actions"} <= set(properties)
    assert "TOKEN*N" in properties["actions"]["description"]
    assert not any("play" in name for name in tools)  # live play keeps a game: not a tool


def _listed_models() -> list[dict]:
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = subprocess.run(
        [sys.executable, "-m", "worldsim", "models", "--json"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_every_listed_model_rolls_out_from_a_snapshot_beside_the_simulator(client, tmp_path):
    """Plugin kinds and environments worldsim has no code for, as a user would try them: a start
    frame from `worldsim snapshot --env <its gymnasium id> --seed 3` and its example actions."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    listed = _listed_models()
    assert {"name": "lunarlander", "env": "LunarLander-v3"}.items() <= next(
        m for m in listed if m["name"] == "lunarlander"
    ).items()  # made from its gymnasium id alone
    for model in listed:
        if model["kind"] == "latent" and model["name"] not in ("lunarlander",):
            continue  # the built-in kind on built-in environments has its own tests
        frame = tmp_path / f"{model['name']}.png"
        cmd = ["-m", "worldsim", "snapshot", "--env", model["env"], "--seed", "3", "--out", str(frame)]
        subprocess.run([sys.executable, *cmd], cwd=ROOT, check=True, capture_output=True)
        video, summary, plot = client.predict(
            model["name"], handle_file(str(frame)), model["example_actions"], "seed 3", api_name="/rollout"
        )
        assert video.endswith(".mp4"), model
        assert "beside the real simulator from seed 3" in summary, (model, summary)
        assert plot is not None
