"""Upload to playing video, measured the way a person experiences it: in a real browser.

    python app.py &                                   # the app, as users start it
    python -m worldsim bench-app --url http://127.0.0.1:7860/ --steps 60 --repeats 5

For each repeat: upload a start frame, type the actions, press Roll out, and stop the clock when
the page's <video> is playing (currentTime advancing). Needs playwright (requirements-dev.txt)
and Debian's chromium.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
DEFAULT_FRAME = Path(__file__).resolve().parents[2] / "assets" / "cartpole" / "reset_seed7.png"


def launch_chromium(playwright):
    """Debian's headless Chromium (never a downloaded browser), quiet on a closed network."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )


def measure_upload_to_video(
    url: str, steps: int = 60, repeats: int = 5, frame: Path = DEFAULT_FRAME
) -> list[float]:
    from playwright.sync_api import sync_playwright

    actions = [f"right*{steps}", f"left*{steps}"]
    seconds = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("button", name="Roll out").wait_for(timeout=60_000)
        for i in range(repeats + 1):  # the first run warms the server's caches and is not counted
            page.reload()
            page.get_by_role("button", name="Roll out").wait_for()
            started = time.perf_counter()
            page.locator("input[type=file]").first.set_input_files(str(frame))
            page.get_by_label("Actions").fill(actions[i % 2])
            page.get_by_role("button", name="Roll out").click()
            page.wait_for_function(
                "() => { const v = document.querySelector('video');"
                " return v && v.readyState >= 3 && v.currentTime > 0 && !v.paused }",
                timeout=120_000,
                polling=20,
            )
            if i:
                seconds.append(time.perf_counter() - started)
        browser.close()
    return seconds


def run_app_benchmark(url: str, steps: int, repeats: int) -> float:
    seconds = measure_upload_to_video(url, steps, repeats)
    median = statistics.median(seconds)
    print(
        f"upload -> playing video, {steps} steps: median {median:.2f} s over {len(seconds)} runs "
        f"(min {min(seconds):.2f}, max {max(seconds):.2f})"
    )
    return median


# Counts the new frames the play view shows (each has its step number in its alt text), from
# inside the page.
_COUNT_FRAMES = """
() => {
  window.__frames = 0;
  let last = null;
  const view = document.getElementById("play-frame");
  new MutationObserver(() => {
    const image = document.getElementById("play-image");
    if (image && image.alt !== last) { last = image.alt; window.__frames += 1; }
  }).observe(view, {subtree: true, childList: true, attributes: true});
}
"""


def measure_live_play(
    url: str, seconds: float = 60.0, key_rate: float = 30.0, frame: Path = DEFAULT_FRAME
) -> tuple[int, float]:
    """Hold keys in the Play tab for `seconds` (key presses at `key_rate` per second, like a held
    key's auto-repeat) and count the frames the page shows. Returns (frames, seconds)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("button", name="Roll out").wait_for(timeout=60_000)
        page.locator("input[type=file]").first.set_input_files(str(frame))
        page.get_by_role("tab", name="Play").click()
        page.locator("#play-image").wait_for(timeout=30_000)  # the start frame is on screen
        page.evaluate(_COUNT_FRAMES)
        started = time.perf_counter()
        presses = 0
        while (elapsed := time.perf_counter() - started) < seconds:
            # Sway: 10 presses one way, 10 the other, so the cart stays on screen.
            page.keyboard.press("ArrowRight" if presses // 10 % 2 else "ArrowLeft")
            presses += 1
            time.sleep(max(0.0, presses / key_rate - (time.perf_counter() - started)))
        page.wait_for_timeout(500)  # the last frames on their way
        frames = page.evaluate("window.__frames")
        browser.close()
    return frames, elapsed


def run_play_benchmark(url: str, seconds: float) -> float:
    frames, elapsed = measure_live_play(url, seconds)
    rate = frames / elapsed
    print(f"live play: {frames} frames shown in {elapsed:.1f} s of held keys = {rate:.1f} frames/s")
    return rate
