"""The presentation features, as a person uses them in headless Chromium; each test leaves a
screenshot in docs/screenshots/ showing the feature."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ASSETS, SHOTS
from worldsim.envs.builtin import get_spec

pytestmark = pytest.mark.browser
START = ASSETS / "cartpole" / "reset_seed7.png"


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.goto(app_url)
    page.get_by_role("button", name="Roll out").wait_for(timeout=30_000)
    yield page
    context.close()


def upload_start(page, path=START):
    page.locator("#start-frame input[type=file]").set_input_files(str(path))


def video_ready(page, selector="#video"):
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('{selector} video'); return v && v.duration > 0 }}",
        timeout=60_000,
    )


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def test_live_play_steps_with_keys_undo_and_branch(page):
    """The server engine (models without ONNX graphs play this way); the page's own game has
    tests/test_browser_play.py."""
    upload_start(page)
    page.get_by_role("tab", name="Play").click()
    page.get_by_label("on the server").check()
    page.locator("#play-image").wait_for(timeout=30_000)
    page.locator("#play-frame").click()  # keys go to the game, not to the engine radio
    first = page.locator("#play-image").get_attribute("src")
    for step, key in enumerate(["ArrowRight"] * 6 + ["d", "d"], start=1):
        page.keyboard.press(key)
        # A key pressed while the last step is on its way is dropped (play never lags): wait.
        page.locator("#play-status").get_by_text(f"Step {step} of {step}").wait_for(timeout=20_000)
    assert "right*8" in text_of(page, "#play-status")
    assert page.locator("#play-image").get_attribute("src") != first  # the cart moved
    page.get_by_role("button", name="Undo").click()
    page.locator("#play-status").get_by_text("Step 7 of 7").wait_for(timeout=20_000)
    page.locator("#play-left").click()  # the on-screen button, as on a phone
    page.locator("#play-status").get_by_text("Step 8 of 8").wait_for(timeout=20_000)
    assert "right*7 left" in text_of(page, "#play-status")
    page.get_by_role("button", name="Save as video").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('video')].some(v => v.duration > 0)", timeout=30_000
    )
    page.screenshot(path=str(SHOTS / "play.png"), full_page=True)


def choose(page, label: str, option: str):
    page.get_by_label(label, exact=True).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_samples_show_a_grid_and_their_spread(page):
    choose(page, "Model", "cartpole-state")  # a model that samples
    upload_start(page)
    page.locator("#samples input[type=number]").fill("4")
    page.locator("#samples input[type=number]").press("Enter")
    page.get_by_role("textbox", name="Actions").fill("right*20")
    page.get_by_role("button", name="Roll out").click()
    video_ready(page)
    assert "4 samples" in text_of(page, "#summary")
    height = page.evaluate("document.querySelector('#video video').videoHeight")
    assert height > 2 * 256  # two rows of samples and the uncertainty panel
    page.screenshot(path=str(SHOTS / "samples.png"), full_page=True)


def test_a_clip_becomes_the_context_and_the_model_input_is_shown(page, tmp_path):
    from worldsim.envs.simulator import simulator_frames

    frames = simulator_frames(get_spec("cartpole"), 7, "right*6")
    clip = tmp_path / "clip.gif"
    images = [Image.fromarray(f) for f in frames]
    images[0].save(clip, save_all=True, append_images=images[1:], duration=20, loop=0)
    page.locator("#start-clip input[type=file]").set_input_files(str(clip))
    page.get_by_text("What the model sees").click()
    page.get_by_text("2 frames at 160x64").wait_for(timeout=30_000)
    assert "Looks like the training frames" in text_of(page, "#familiarity")
    page.get_by_role("textbox", name="Actions").fill("left*10")
    page.get_by_role("button", name="Roll out").click()
    video_ready(page)
    page.screenshot(path=str(SHOTS / "clip_context.png"), full_page=True)


def test_an_unfamiliar_upload_gets_a_warning(page, tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    upload_start(page, tmp_path / "noise.png")
    page.get_by_text("What the model sees").click()
    page.get_by_text("Unlike the training frames").wait_for(timeout=30_000)
    page.screenshot(path=str(SHOTS / "unfamiliar.png"), full_page=True)


def test_action_buttons_files_and_the_readable_summary(page, tmp_path):
    for _ in range(3):
        page.locator("button", has_text="right").first.click()
        page.wait_for_timeout(300)
    page.get_by_text("right x3: 3 steps, 0.06 s of play.").wait_for(timeout=20_000)
    actions_file = tmp_path / "actions.json"
    actions_file.write_text(json.dumps(["left"] * 5 + ["right"] * 5))
    page.locator("#action-file input[type=file]").set_input_files(str(actions_file))
    page.get_by_text("left x5, right x5: 10 steps, 0.20 s of play.").wait_for(timeout=20_000)
    assert page.get_by_role("textbox", name="Actions").input_value() == "left*5 right*5"
    page.screenshot(path=str(SHOTS / "actions.png"), full_page=True)


def test_exports_gif_session_and_a_single_frame(page, tmp_path):
    page.get_by_text("right*10 left*10 right*10").first.click()  # an example: simulator beside model
    video_ready(page)
    page.get_by_text("Export").click()
    page.get_by_role("button", name="GIF").click()
    with page.expect_download() as gif:
        page.locator('#export-file a[download$=".gif"]').click(timeout=90_000)
    assert Image.open(gif.value.path()).n_frames == 31
    page.get_by_role("button", name="Session file").click()
    with page.expect_download() as session:
        page.locator('#export-file a[download="session.json"]').click(timeout=90_000)
    saved = json.loads(session.value.path().read_text())
    assert saved["actions"] == "right*10 left*10 right*10" and saved["simulator_start"] == "seed 7"
    page.locator("#still img").wait_for(timeout=20_000)  # the frame scrubber shows frame 0
    page.screenshot(path=str(SHOTS / "export.png"), full_page=True)

    page.reload()
    page.get_by_role("button", name="Roll out").wait_for(timeout=30_000)
    page.get_by_text("Export").click()
    path = tmp_path / "session.json"
    path.write_text(json.dumps(saved))
    page.locator("#session-file input[type=file]").set_input_files(str(path))
    video_ready(page)
    assert "beside the real simulator from seed 7" in text_of(page, "#summary")
    assert page.get_by_role("textbox", name="Actions").input_value() == "right*10 left*10 right*10"


def test_compare_two_models_and_read_the_model_card(page):
    page.get_by_text("right*10 left*10 right*10").first.click()
    video_ready(page)
    page.get_by_role("tab", name="Compare models").click()
    choose(page, "Second model", "cartpole-state")
    page.get_by_role("button", name="Compare").click()
    video_ready(page, "#compare-video")
    assert "Mean PSNR against the simulator" in text_of(page, "#compare-summary")
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)
    page.get_by_role("tab", name="Model card").click()
    page.locator("#model-card").get_by_text("python -m worldsim train").first.wait_for(timeout=20_000)
    page.screenshot(path=str(SHOTS / "model_card.png"), full_page=True)


def test_stop_cancels_a_long_rollout_and_the_next_one_works(page):
    choose(page, "Model", "cartpole-state")  # a model that samples: 8 samples make it long
    upload_start(page)
    page.locator("#samples input[type=number]").fill("8")
    page.locator("#samples input[type=number]").press("Enter")
    page.get_by_role("textbox", name="Actions").fill("right*150 left*150")
    page.get_by_role("button", name="Roll out").click()
    page.wait_for_timeout(300)
    page.get_by_role("button", name="Stop").click()
    page.wait_for_timeout(3000)
    assert page.evaluate("document.querySelector('#video video')") is None  # no video came
    page.locator("#samples input[type=number]").fill("1")
    page.locator("#samples input[type=number]").press("Enter")
    page.get_by_role("textbox", name="Actions").fill("right*5")
    page.get_by_role("button", name="Roll out").click()
    video_ready(page)


def _first_examples() -> list[tuple[str, dict]]:
    """(model, its first example) for every shipped model, from the app's own listing."""
    from worldsim.app.handlers import examples

    seen, rows = set(), []
    for model, frame, actions, start in examples():
        if model not in seen:
            seen.add(model)
            rows.append((model, {"frame": frame, "actions": actions, "start": start}))
    return rows


@pytest.mark.parametrize("model, example", _first_examples(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_shipped_model_rolls_out_its_example_beside_the_simulator(page, model, example):
    choose(page, "Model", model)
    upload_start(page, example["frame"])
    page.wait_for_timeout(1500)  # an upload clears the simulator start: fill it in after that
    page.get_by_role("textbox", name="Actions").fill(example["actions"])
    page.get_by_label("Simulator start").fill(example["start"])
    page.get_by_role("button", name="Roll out").click()
    video_ready(page)
    summary = text_of(page, "#summary")
    assert "PSNR" in summary  # the simulator ran beside the model and was measured
    page.screenshot(path=str(SHOTS / f"model_{model}.png"), full_page=True)
