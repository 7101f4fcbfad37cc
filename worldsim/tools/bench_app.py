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
                "() => { const v = document.querySelector('#video video');"
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


# Counts the frames the in-page game draws on its canvas (each draw sets data-step).
COUNT_CANVAS_FRAMES = """
() => {
  window.__canvasFrames = 0;
  const canvas = document.getElementById("webplay-canvas");
  new MutationObserver(() => { window.__canvasFrames += 1; })
    .observe(canvas, {attributes: true, attributeFilter: ["data-step"]});
}
"""


def _open_play_tab(page, url: str, engine: str, frame: Path | None) -> None:
    page.goto(url)
    page.get_by_role("button", name="Roll out").wait_for(timeout=60_000)
    if frame is not None:
        page.locator("input[type=file]").first.set_input_files(str(frame))
    page.get_by_role("tab", name="Play").click()
    if engine == "server":
        page.get_by_label("on the server").check()
        page.locator("#play-image").wait_for(timeout=30_000)  # the start frame is on screen
        page.locator("#play-frame").click()  # the keys go to the page, not the engine picker
        page.evaluate(_COUNT_FRAMES)
    else:
        page.wait_for_function(
            "() => window.worldsimPlay && window.worldsimPlay.stats()", timeout=60_000, polling=100
        )
        page.evaluate(COUNT_CANVAS_FRAMES)


def measure_live_play(
    url: str,
    seconds: float = 60.0,
    key_rate: float = 30.0,
    frame: Path | None = DEFAULT_FRAME,
    engine: str = "browser",
) -> dict:
    """Hold keys in the Play tab for `seconds` (key presses at `key_rate` per second, like a held
    key's auto-repeat: keydown repeats, one keyup when the key changes), swaying right and left,
    and count the frames the page shows and the requests it sends to the app. `engine`:
    "browser" (the model in the page) or "server" (a request per key press). Returns frames,
    seconds, requests and the model's real-time rate."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        _open_play_tab(page, url, engine, frame)
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        realtime = page.evaluate("window.worldsimPlay && window.worldsimPlay.stats()?.realtime") or None
        counter = "window.__frames" if engine == "server" else "window.__canvasFrames"
        started = time.perf_counter()
        presses, held = 0, None
        while (elapsed := time.perf_counter() - started) < seconds:
            key = "ArrowRight" if presses // 30 % 2 else "ArrowLeft"  # a second each way
            if engine == "server":
                page.keyboard.press(key)
            else:
                if held != key:
                    if held:
                        page.keyboard.up(held)
                    held = key
                page.keyboard.down(key)  # a repeat, as a held key sends
            presses += 1
            time.sleep(max(0.0, presses / key_rate - (time.perf_counter() - started)))
        if held:
            page.keyboard.up(held)
        page.wait_for_timeout(500)  # the last frames on their way
        frames = page.evaluate(counter)
        browser.close()
    return {
        "engine": engine,
        "frames": frames,
        "seconds": elapsed,
        "requests": len(requests),
        "realtime": realtime,
    }


def run_play_benchmark(url: str, seconds: float) -> dict:
    """Both engines, one after the other: frames/s and requests per second of play."""
    results = {}
    for engine in ("browser", "server"):
        r = measure_live_play(url, seconds, engine=engine)
        rate, per_second = r["frames"] / r["seconds"], r["requests"] / r["seconds"]
        where = "in the page" if engine == "browser" else "on the server"
        real = f" (real time {r['realtime']:g})" if r["realtime"] else ""
        print(
            f"live play {where}: {r['frames']} frames in {r['seconds']:.1f} s of held keys = {rate:.1f} "
            f"frames/s{real}; {r['requests']} requests to the app = {per_second:.1f}/s"
        )
        results[engine] = {"frames_per_s": rate, "requests_per_s": per_second, **r}
    return results
