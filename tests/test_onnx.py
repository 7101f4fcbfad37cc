"""ONNX export (play in the page): the graphs onnxruntime runs draw what torch draws, and the
app serves them and the game description the page plays from."""

import json
import re

import numpy as np
import pytest
import torch

from worldsim.envs.builtin import get_spec
from worldsim.models.latent import LatentConfig, LatentWorldModel
from worldsim.models.onnx_export import (
    check_onnx,
    export_and_check,
    onnx_status,
    read_metadata,
    session,
)

TINY = dict(latent_dim=8, hidden_dim=16, channels=(8, 8, 8), action_embed_dim=4)
PONG_SPEEDS = [[[-4.0, 4.0], [-8.0, 0.0, 8.0]]]  # screen pixels a step
CARTPOLE_POLE = {
    "pose_dims": 3,
    "pose_mean": [0.0, 0.0, 1.0],
    "pose_std": [1.0] * 3,
    "drawn_segments": [[0, 1, 2, 125.0, 300.0, 292.5, 120.0, 5.0]],
}
PONG_BALL = {"pose_dims": 6, "pose_mean": [80.0] * 6, "pose_std": [30.0] * 6, "points": [[2, 4, 3]]}


def tiny_model(env: str, **overrides) -> LatentWorldModel:
    torch.manual_seed(0)
    return LatentWorldModel(LatentConfig.for_env(get_spec(env), **TINY, **overrides)).eval()


@pytest.mark.parametrize(
    ("env", "overrides"),
    [
        ("cartpole", {"outcome": True}),  # discrete actions, GRU dynamics, reward and episode end
        ("cartpole", {"outcome": True, "outcome_input": "frame"}),  # ... read from the drawn frame
        ("cartpole", {"outcome": True, "reward_values": [0.0, 1.0]}),  # ... the reward snapped
        ("cartpole", {"reencode_every": 7}),  # the latent re-encoded from its frame every 7 steps
        ("cartpole", CARTPOLE_POLE),  # the pole painted as a line where the pose says
        ("pendulum", {"dynamics": "state", "state_dims": 3, "state_mean": [0] * 3, "state_std": [1] * 3}),
        ("pendulum", {"decoder_action": True}),  # the decoder draws the step's action
        ("carracing", {"warp_reference": True}),  # the reference moved by a flow before drawing
        ("pong", PONG_BALL),  # a ball painted at its coordinates
        ("pong", {**PONG_BALL, "point_momentum": True}),  # ... keeping its motion (carried in h)
        ("pong", {**PONG_BALL, "point_momentum": True, "contact_gate": True}),  # ... changed at contacts
        ("pong", {**PONG_BALL, "point_momentum": True, "point_speeds": PONG_SPEEDS}),  # snapped
        ("pong", {**PONG_BALL, "point_momentum": True, "point_speeds": PONG_SPEEDS, "speed_classes": True}),
    ],
)
def test_export_matches_torch(tmp_path, env, overrides):
    model = tiny_model(env, **overrides)
    if model.decoder.flow is not None:  # a new flow head shifts nothing: give it shifts to export
        torch.nn.init.normal_(model.decoder.flow[-1].weight, std=0.5)
    assert model.capabilities.onnx
    model.save_pretrained(tmp_path)
    paths, check = export_and_check(model, tmp_path)
    assert [p.name for p in paths] == ["start.onnx", "step.onnx"]
    assert check.passed and check.max_pixel_diff <= 1, check.describe()
    if model.capabilities.outcome:
        assert check.reward_diff < 1e-4 and check.terminated_agree == 1.0
    assert onnx_status(tmp_path) is None  # exported from these very weights
    assert json.loads(read_metadata(tmp_path / "step.onnx")["worldsim.check"])["min_psnr"] >= 45


def test_export_matches_torch_with_the_memories(tmp_path):
    """Pong's point memory (the fire button in its key, returns' paths replayed: their state in
    h) and row memory (its action history in h) step alike in torch and onnxruntime."""
    torch.manual_seed(1)
    model = tiny_model("pong", **PONG_BALL, point_momentum=True)
    memory = {"row_dim": 0, "x_low": -1e9, "max_distance": 1e9, "key_actions": [1, 4, 5], "path_steps": 3}
    keys = torch.randn(6, 7) * 30 + torch.tensor([80.0, 80, 0, 0, 0, 0, 0])
    keys[:, 6] = torch.tensor([1.0, 0, 1, 0, 1, 0])
    paths = (torch.tensor([0, -1, 1, -1, 0, -1]), torch.randn(2, 3, 2) * 4, torch.tensor([3, 1]))
    model = model.with_point_memory(memory, keys, torch.randn(6, 2) * 4, paths)
    rows = {"row_dim": 0, "actions": 2, "groups": [0, 0, 1, 2, 1, 2]}
    codes = torch.arange(9.0).repeat(3)
    model = model.with_row_memory(rows, codes, torch.randn(27, 2) * 30 + 80, torch.randn(27) * 2).eval()
    model.save_pretrained(tmp_path)
    _, check = export_and_check(model, tmp_path)
    assert check.passed and check.max_pixel_diff <= 1, check.describe()


def test_step_graph_interface(tmp_path):
    """What the page relies on: state parts in, `<part>_next`, a uint8 frame and the outcome out."""
    model = tiny_model("cartpole", outcome=True)
    model.export_onnx(tmp_path)
    start, step = session(tmp_path / "start.onnx"), session(tmp_path / "step.onnx")
    assert [i.name for i in start.get_inputs()] == ["context"]
    assert start.get_inputs()[0].shape == [1, 2, 64, 160, 3]
    parts = [o.name for o in start.get_outputs()]
    assert [i.name for i in step.get_inputs()] == [*parts, "action"]
    assert [o.name for o in step.get_outputs()] == ["z_next", "h_next", "frame", "reward", "terminated"]
    state = start.run(None, {"context": np.zeros((1, 2, 64, 160, 3), np.uint8)})
    out = step.run(None, {**dict(zip(parts, state, strict=True)), "action": np.array([1])})
    assert out[2].dtype == np.uint8 and out[2].shape == (64, 160, 3) and out[4].dtype == bool


@pytest.mark.parametrize(("regressed", "snapped"), [(0.97, 1.0), (-0.03, 0.0), (-0.7, -1.0)])
def test_the_step_graph_snaps_the_reward_to_the_models_reward_values(tmp_path, regressed, snapped):
    """The page sums the graph's rewards as the score: where the model knows its env's rewards
    (Pong's -1, 0, 1) the graph says one of them, as torch does."""
    model = tiny_model("cartpole", outcome=True, reward_values=[-1.0, 0.0, 1.0])
    with torch.no_grad():  # a head that regresses `regressed` at every step
        model.outcome_head[-1].weight.zero_()
        model.outcome_head[-1].bias.copy_(torch.tensor([regressed, -1.0]))
    model.export_onnx(tmp_path)
    start, step = session(tmp_path / "start.onnx"), session(tmp_path / "step.onnx")
    parts = [o.name for o in start.get_outputs()]
    state = start.run(None, {"context": np.zeros((1, 2, 64, 160, 3), np.uint8)})
    out = dict(
        zip(
            [o.name for o in step.get_outputs()],
            step.run(None, {**dict(zip(parts, state, strict=True)), "action": np.array([1])}),
            strict=True,
        )
    )
    assert out["reward"].tolist() == [snapped] and out["reward"].dtype == np.float32
    torch_state = model.step(model.start(torch.zeros(1, 2, 64, 160, 3, dtype=torch.uint8)), torch.tensor([1]))
    assert model.outcome(torch_state).reward.tolist() == [snapped]


def test_retrained_weights_make_the_graphs_stale(tmp_path):
    model = tiny_model("cartpole")
    model.save_pretrained(tmp_path)
    model.export_onnx(tmp_path)
    assert onnx_status(tmp_path) is None
    with torch.no_grad():
        model.decoder.project.bias.add_(1.0)
    model.save_pretrained(tmp_path)
    assert "other weights" in onnx_status(tmp_path)
    (tmp_path / "step.onnx").unlink()
    assert "no step.onnx" in onnx_status(tmp_path)


def test_check_catches_a_graph_of_another_model(tmp_path):
    model = tiny_model("cartpole")
    model.export_onnx(tmp_path)
    other = tiny_model("cartpole")
    with torch.no_grad():  # the mask on and other colours: a different picture
        other.decoder.net[-2].bias.add_(6.0)
    assert not check_onnx(other, tmp_path, steps=3).passed


# --- The app's side: the files it serves and the game it describes ----------------------------


@pytest.fixture
def offered(tmp_path, monkeypatch):
    """An app offering one tiny exported model, "tiny"."""
    from worldsim.app import handlers
    from worldsim.models.catalog import ModelEntry

    folder = tmp_path / "tiny"
    model = tiny_model("cartpole", outcome=True)
    model.save_pretrained(folder)
    model.export_onnx(folder)
    monkeypatch.setattr(handlers, "catalog", handlers.Catalog([ModelEntry("tiny", "folder", str(folder))]))
    return folder


def get(path: str):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from worldsim.app import webplay

    return TestClient(Starlette(routes=webplay.routes())).get(path)


def test_routes_serve_offered_graphs_and_the_compressed_wasm_only(offered):
    assert get("/worldsim/models/tiny/step.onnx").content == (offered / "step.onnx").read_bytes()
    for path in (
        "/worldsim/models/tiny/model.safetensors",
        "/worldsim/models/tiny/config.json",
        "/worldsim/models/cartpole/step.onnx",  # not offered by this app
        "/worldsim/models/..%2Ftiny/step.onnx",
        "/worldsim/static/../webplay.py",
        "/worldsim/static/%2e%2e/webplay.py",
    ):
        assert get(path).status_code == 404, path
    wasm = get("/worldsim/static/ort/ort-wasm-simd-threaded.wasm")
    assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
    assert wasm.headers["content-encoding"] == "gzip"
    assert wasm.content[:4] == b"\0asm"  # the client undid the gzip
    assert get("/worldsim/static/ort/ort.wasm.min.mjs").headers["content-type"].startswith("text/javascript")


def test_play_start_describes_a_game_in_the_page(offered, tmp_path):
    from PIL import Image

    from worldsim.app import webplay

    frame = tmp_path / "start.png"
    Image.fromarray(np.full((400, 600, 3), 255, np.uint8)).save(frame)
    outputs = webplay.play_start("tiny", str(frame), "seed 7", None, None)
    html, picker, start = outputs[:3]
    config = json.loads(re.search(r'data-game="([^"]*)"', html).group(1).replace("&quot;", '"'))
    assert config["engine"] == "browser" and picker["value"] == webplay.ENGINES["browser"]
    assert config["fps"] == 50 and config["context_shape"] == [2, 64, 160, 3]
    assert config["keys"] == {"left": {"label": "left", "value": 0}, "right": {"label": "right", "value": 1}}
    assert config["noop"] is None and "alternates" in config["noop_text"]  # CartPole has no no-op
    assert config["outcome"] and config["files"]["step"].startswith("worldsim/models/tiny/step.onnx?v=")
    assert start.simulator_start == "seed 7" and outputs[-1]["visible"] is False  # no server controls
    # Without graphs the same model plays on the server, and the page says why.
    (offered / "step.onnx").unlink()
    outputs = webplay.play_start("tiny", str(frame), "", None, None)
    assert outputs[1]["value"] == webplay.ENGINES["server"] and "no step.onnx" in outputs[1]["info"]
    assert outputs[-1]["visible"] is True and outputs[6] is not None  # a server play session


def test_noop_actions_follow_the_spec():
    from worldsim.app.webplay import noop_action

    assert noop_action(get_spec("breakout"))[0] == 0  # "noop"
    assert noop_action(get_spec("mountaincar"))[0] == 1  # "none"
    assert noop_action(get_spec("carracing"))[0] == [0.0, 0.0, 0.0]
    assert noop_action(get_spec("pendulum"))[0] == [0.0]
    assert noop_action(get_spec("cartpole"))[0] is None


def test_check_game_replays_the_actions_beside_the_simulator(offered, tmp_path):
    from PIL import Image

    from worldsim.app import webplay
    from worldsim.envs.simulator import SimulatorStart

    frame = tmp_path / "seed7.png"
    Image.fromarray(SimulatorStart(7).frames(get_spec("cartpole"))[0]).save(frame)
    start = webplay.GameStart("tiny", str(frame), "seed 7")
    video, summary, plot, rollout = webplay.check_game(start, "right*5 left*3")
    assert video.endswith(".mp4") and "beside the real simulator from seed 7" in summary
    assert len(plot) == 2 * 8 and rollout.session.actions == "right*5 left*3"
    assert webplay.game_session(rollout).endswith(".json")
    assert webplay.game_video(start, "right*5 left*3").endswith(".mp4")
