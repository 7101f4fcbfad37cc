"""The first screen's clips (worldsim.app.showcase): what they are keyed by, that a cached clip is
never rendered again, and what the page gets before and after."""

import json
import shutil

import numpy as np
import pytest

from tests.conftest import ROOT
from worldsim.app import showcase
from worldsim.models.catalog import ModelEntry

CARTPOLE = ROOT / "checkpoints" / "cartpole"


@pytest.fixture
def checkpoint(tmp_path):
    """A copy of the shipped CartPole checkpoint (its weights and config can be changed)."""
    folder = tmp_path / "cartpole"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "metrics.json"):
        shutil.copy(CARTPOLE / name, folder / name)
    return folder


def test_the_first_example_with_a_simulator_start_is_shown(checkpoint):
    example = showcase.first_example("cartpole", checkpoint)
    assert example.start == "seed 7" and example.actions == "right*10 left*10 right*10"
    assert example.frame.name == "reset_seed7.png" and example.frame.is_file()


def test_the_key_follows_config_weights_and_example(checkpoint):
    example = showcase.first_example("cartpole", checkpoint)
    key = showcase.cache_key(checkpoint, example)
    assert showcase.KEY.fullmatch(key)
    assert showcase.cache_key(checkpoint, example) == key  # stable: a restart finds it
    (checkpoint / "README.md").write_text("a new card")
    assert showcase.cache_key(checkpoint, example) == key  # the card is not the model

    other = showcase.Example(example.frame, "left*30", example.start)
    assert showcase.cache_key(checkpoint, other) != key

    weights = checkpoint / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    retrained = showcase.cache_key(checkpoint, example)
    assert retrained != key

    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps(config, indent=3))
    assert showcase.cache_key(checkpoint, example) != retrained


def test_a_card_quotes_the_held_out_evaluation(checkpoint):
    short, long = showcase.eval_line(checkpoint)
    assert short == "PSNR 40.5 dB 10 steps ahead (copy 27.0)"  # metrics.json, first policy, h=10
    assert "20 episodes of the 'random' policy" in long
    (checkpoint / "metrics.json").unlink()
    assert showcase.eval_line(checkpoint) is None  # the card falls back to the clip's own PSNR


def test_compose_puts_dream_and_reality_side_by_side_and_holds_the_ends():
    dream = np.zeros((4, 64, 160, 3), np.uint8)
    truth = np.full((4, 64, 160, 3), 255, np.uint8)
    fps = 20
    holds = round(showcase.HOLD_START_S * fps) + round(showcase.HOLD_END_S * fps)
    wide = showcase.compose(dream, truth, "wide", fps)
    stacked = showcase.compose(dream, truth, "stacked", fps)
    height = showcase.LABEL_HEIGHT + 64 * 4
    assert wide.shape == (4 + holds, height, 2 * 640 + showcase.DIVIDER, 3)
    assert stacked.shape == (4 + holds, 2 * height + showcase.DIVIDER, 640, 3)
    assert (wide[:, -1, :640] == 0).all() and (wide[:, -1, -640:] == 255).all()  # dream left
    square = showcase.compose(dream[:, :, :64], truth[:, :, :64], "stacked", fps)
    assert square.shape[2] > square.shape[1]  # square frames always sit in a row


def test_a_clip_is_rendered_once_then_read_from_the_cache(checkpoint, tmp_path, monkeypatch):
    from worldsim.app import handlers

    entries = [ModelEntry("cartpole", "folder", str(checkpoint))]
    monkeypatch.setattr(handlers, "catalog", handlers.Catalog(entries))  # restored after the test
    root = tmp_path / "cache"
    first = showcase.Showcase(entries, "cartpole", root=root)
    assert "Rendering the first dream" in first.page_html()  # before: a placeholder, no video
    first.start(background=False)
    clip = first.clips["cartpole"]
    assert first.complete and not first.failed
    assert clip.steps == 30 and clip.gym_id == "CartPole-v1" and clip.speed == pytest.approx(0.4)
    assert clip.model_psnr > clip.copy_psnr  # the dream beats "nothing moves" on its own example
    assert sorted(p.name for p in (root / clip.key).iterdir()) == ["clip.json", "stacked.mp4", "wide.mp4"]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no scratch folder left

    page = first.page_html()
    assert f"worldsim/showcase/{clip.key}/wide.mp4" in page and "autoplay muted loop playsinline" in page
    assert (
        f"mean PSNR <b>{clip.model_psnr:.1f} dB</b> (copying the start frame: {clip.copy_psnr:.1f} dB)"
        in page
    )
    assert "ws-strip" not in page  # one model: no strip of one card

    def no_render(*args, **kwargs):
        raise AssertionError("a cached clip was rendered again")

    monkeypatch.setattr(showcase, "render_clip", no_render)
    again = showcase.Showcase(entries, "cartpole", root=root)
    again.scan()
    assert again.complete and again.clips["cartpole"] == clip
    again.start()  # nothing to do: no thread
    assert again._thread is None


def test_a_model_that_fails_does_not_hide_the_others(checkpoint, tmp_path, monkeypatch):
    from worldsim.app import handlers

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    entries = [ModelEntry("cartpole", "folder", str(checkpoint)), ModelEntry("broken", "folder", str(broken))]
    monkeypatch.setattr(handlers, "catalog", handlers.Catalog(entries))  # restored after the test
    real_render = showcase.render_clip

    def render(name, *args):
        if name == "broken":
            raise RuntimeError("no dream today")
        return real_render(name, *args)

    monkeypatch.setattr(showcase, "render_clip", render)
    show = showcase.Showcase(entries, "cartpole", root=tmp_path / "cache")
    show.start(background=False)
    assert set(show.clips) == {"cartpole"} and "no dream today" in show.failed["broken"]
    assert 'data-model="broken"' not in show.page_html()


def test_refresh_stops_the_timer_once_complete(checkpoint, tmp_path, monkeypatch):
    from worldsim.app import handlers

    entries = [ModelEntry("cartpole", "folder", str(checkpoint))]
    monkeypatch.setattr(handlers, "catalog", handlers.Catalog(entries))  # restored after the test
    show = showcase.Showcase(entries, "cartpole", root=tmp_path / "cache")
    show.start(background=False)
    page, timer = show.refresh(None)
    assert page == show.page_html() and timer.active is False
    same, _ = show.refresh(page)
    assert same is not page and not isinstance(same, str)  # gr.skip(): the page keeps its video


def test_the_route_serves_only_clip_videos(tmp_path, monkeypatch):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    monkeypatch.setenv("WORLDSIM_SHOWCASE_DIR", str(tmp_path))
    key = "0123456789abcdef0123456789abcdef"
    (tmp_path / key).mkdir()
    (tmp_path / key / "wide.mp4").write_bytes(b"mp4")
    (tmp_path / key / "clip.json").write_text("{}")
    client = TestClient(Starlette(routes=showcase.routes()))
    assert client.get(f"/worldsim/showcase/{key}/wide.mp4").content == b"mp4"
    assert client.get(f"/worldsim/showcase/{key}/clip.json").status_code == 404
    assert client.get(f"/worldsim/showcase/{key}/stacked.mp4").status_code == 404
    assert client.get("/worldsim/showcase/..%2F..%2Fetc/wide.mp4").status_code == 404
