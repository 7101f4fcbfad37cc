"""A person's path through the app in headless Chromium (Debian's build, driven by playwright)."""

import shutil

import pytest

from tests.conftest import ASSETS, ROOT
from worldsim.tools.bench_app import CHROMIUM, launch_chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(app_url):
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app_url)
        page.get_by_role("button", name="Roll out").wait_for(timeout=30_000)
        yield page
        browser.close()


def test_upload_type_roll_out_and_watch(page):
    page.locator("input[type=file]").first.set_input_files(str(ASSETS / "cartpole" / "reset_seed11.png"))
    page.get_by_label("Actions").fill("left*30")
    page.get_by_role("button", name="Roll out").click()
    page.wait_for_function(
        "() => { const v = document.querySelector('#video video'); return v && v.duration > 0 }",
        timeout=60_000,
    )
    duration = page.evaluate("document.querySelector('#video video').duration")
    assert duration == pytest.approx(31 / 50, abs=0.05)  # 31 frames at CartPole's 50 steps/s
    assert "30 steps" in page.inner_text("body")
    assert "No simulator truth" in page.inner_text("body")  # an upload has no known simulator state


def test_example_shows_the_simulator_beside_the_model(page):
    page.get_by_text("right*10 left*10 right*10").first.click()
    page.get_by_text("beside the real simulator from seed 7").wait_for(timeout=60_000)
    height = page.evaluate(
        "new Promise(r => { const v = document.querySelector('#video video');"
        " const h = () => r(v.videoHeight);"
        " v.readyState >= 1 ? h() : v.addEventListener('loadedmetadata', h) })"
    )
    assert height > 3 * 256  # model, simulator and difference, stacked
    (ROOT / "docs").mkdir(exist_ok=True)
    page.wait_for_timeout(1500)  # let the video play a little and the plot draw
    page.screenshot(path=str(ROOT / "docs" / "screenshot.png"), full_page=True)


def test_bad_actions_show_our_message(page):
    page.get_by_label("Actions").fill("left jump")
    page.get_by_role("button", name="Roll out").click()
    page.get_by_text("Unknown action 'jump' at position 2").first.wait_for(timeout=30_000)
