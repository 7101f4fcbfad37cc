"""The first screen (issue 16's bar), in headless Chromium against `python app.py`: at a laptop's
1280x800 and a phone's 390x844 (touch), 8 s after load, with no scroll and no click, a playing
<video> of the dream beside the real simulator lies inside the first viewport. Screenshots of both
go to docs/screenshots/first_screen_*.png."""

import pytest

from tests.conftest import SHOTS

pytestmark = pytest.mark.browser
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
}

# Every <video> drawn inside the first viewport: its box, whether it plays and where it is.
VIDEOS_IN_VIEW = """
() => [...document.querySelectorAll('video')].map((v) => {
  const r = v.getBoundingClientRect();
  const inside = r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0
    && r.top < window.innerHeight && r.left < window.innerWidth;
  return {id: v.id, inside, paused: v.paused, time: v.currentTime, ready: v.readyState,
          top: r.top, bottom: r.bottom, width: r.width, height: r.height};
}).filter((v) => v.inside)
"""


def open_page(browser, url: str, viewport: str):
    context = browser.new_context(**VIEWPORTS[viewport])
    page = context.new_page()
    page.goto(url)  # returns at the load event
    return context, page


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_a_dream_plays_in_the_first_viewport(browser, app_url, viewport):
    context, page = open_page(browser, app_url, viewport)
    try:
        page.wait_for_timeout(8000)  # no scroll, no click
        before = {v["id"]: v for v in page.evaluate(VIDEOS_IN_VIEW)}
        page.wait_for_timeout(500)
        after = page.evaluate(VIDEOS_IN_VIEW)
        playing = [
            v for v in after if not v["paused"] and v["id"] in before and v["time"] != before[v["id"]]["time"]
        ]
        assert any(v["id"].startswith("hero-video") for v in playing), after  # the flagship's dream moves
        hero = next(v for v in playing if v["id"].startswith("hero-video"))
        assert hero["bottom"] <= page.viewport_size["height"]  # all of it, not just an edge
        assert hero["width"] >= 0.9 * page.viewport_size["width"] - 64  # large, not a thumbnail
        caption = page.locator("#ws-caption").inner_text()
        assert "CartPole-v1" in caption and "seed 7" in caption and "mean PSNR" in caption
        assert "copying the start frame" in caption  # the number comes with its baseline
        if viewport == "phone":
            # The dream, then the play controls; the inputs wait folded below, a tap away.
            play = page.locator('.ws-button[data-tab="play"]').bounding_box()
            assert play["y"] + play["height"] <= page.viewport_size["height"]
            assert not page.locator("#start-frame").is_visible()
            assert not page.locator("#hub-section input").first.is_visible()
            small = page.evaluate(
                """() => [...document.querySelectorAll('.contain :is(button, [role=tab], input)')]
                  .filter((e) => e.offsetParent !== null && e.type !== 'range' && e.type !== 'file')
                  .map((e) => [e.innerText || e.type, e.getBoundingClientRect().height])
                  .filter(([, h]) => h > 0 && h < 44)"""
            )
            assert small == []  # touch targets of at least 44 px
        page.screenshot(path=str(SHOTS / f"first_screen_{viewport}.png"))
    finally:
        context.close()


def test_a_card_opens_its_model_in_roll_out(browser, app_url):
    context, page = open_page(browser, app_url, "desktop")
    try:
        page.locator('.ws-card[data-model="pong"]').click(timeout=30_000)
        page.locator("#summary").get_by_text("beside the real simulator from seed 1").wait_for(timeout=60_000)
        assert page.get_by_label("Model", exact=True).first.input_value() == "pong"
        assert page.get_by_role("textbox", name="Actions").input_value() == "right*10 left*10 noop*20"
        assert page.get_by_label("Simulator start").input_value() == "seed 1 after noop*50"
        assert page.locator('[role="tab"][aria-selected="true"]').first.inner_text() == "Roll out"
    finally:
        context.close()


def test_presentation_mode_by_url_and_keys(browser, app_url):
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    page = context.new_page()
    try:
        page.goto(app_url + "?present=1")
        page.locator("#showcase.ws-present #hero-video-stacked").wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        box = page.locator("#hero-video-stacked").bounding_box()
        assert box["height"] > 0.6 * 900  # the dream and reality, large
        covers = "() => { const r = document.getElementById('showcase').getBoundingClientRect();"
        covers += " return r.top <= 0 && r.left <= 0 && r.bottom >= innerHeight && r.right >= innerWidth }"
        assert page.evaluate(covers)  # the controls are out of sight
        page.keyboard.press("ArrowRight")  # a clicker's next: the next model
        page.wait_for_timeout(300)
        assert page.locator(".ws-card.ws-current").get_attribute("data-model") != "cartpole"
        assert "cartpole" not in page.locator("#ws-caption").inner_text().lower()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SHOTS / "first_screen_present.png"))
        page.keyboard.press("Escape")
        assert not page.evaluate(covers)
    finally:
        context.close()
