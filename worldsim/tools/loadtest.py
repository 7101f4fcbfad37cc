"""Load and soak tests of a running app, driven through gradio_client as other programs drive it.

    python app.py &
    python -m worldsim loadtest --url http://127.0.0.1:7860/ --users 20 --requests 200
    python -m worldsim soak --url http://127.0.0.1:7860/ --requests 500 [--pid PID]

`loadtest`: concurrent users (one thread and one Client each) send a shuffled mix of valid 60-step
rollouts and bad input. A valid request passes when its video arrives; a bad one when the app
refuses it with our message (the text matches what that mistake should produce). Every request
has a client-side deadline, so a hang shows up as a timeout instead of stalling the run.

`soak`: sequential rollouts, with the server's resident memory (VmRSS) sampled along the way and
the files in its temp folders (gradio's cache, worldsim's videos) counted before and after.
"""

from __future__ import annotations

import os
import queue
import random
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

FRAMES_DIR = Path(__file__).resolve().parents[2] / "assets" / "cartpole"
POLL_S = 0.2  # how often a waiting user looks at its queue position (and its deadline)
STREAM_GRACE_S = 30.0  # gradio's event stream sends a heartbeat every 15 s


@dataclass(frozen=True)
class RequestKind:
    """One kind of request a simulated user sends: a rollout, or a live-play key press."""

    name: str
    valid: bool  # valid requests must succeed; bad ones must be refused with our message
    model: str
    actions: str  # "{steps}" is replaced by the rollout length
    frame: str = "start"  # "start": a real start frame; "not-image": a text file named .png
    expect: str = ""  # regex a refusal's message must match to count as clear
    weight: float = 1.0  # share of the mix
    endpoint: str = "/rollout"  # or a live-play key, e.g. "/play_right" (model, start frame)


KINDS: tuple[RequestKind, ...] = (
    RequestKind("rollout", True, "cartpole", "right*{half} left*{rest}", weight=5),
    # A key press in the Play tab: each user's client keeps its own game (session state).
    RequestKind("play step", True, "cartpole", "", weight=2, endpoint="/play_right"),
    RequestKind("negative repeat", False, "cartpole", "left*-3", expect="repeat count must be"),
    RequestKind("unknown action", False, "cartpole", "right jump", expect="Unknown action 'jump'"),
    RequestKind(
        "not an image", False, "cartpole", "right*5", frame="not-image", expect="(?i)not a readable image"
    ),
    RequestKind("path-like model", False, "../../etc", "right*5", expect="Unknown model|not in the list"),
)
VALID_KIND = KINDS[0]


@dataclass
class Result:
    """What happened to one request."""

    kind: str
    outcome: str  # "ok", "failed" (valid request errored), "refused" (with our message),
    # "unclear" (refused, but not with our message), "accepted" (bad input let through), "timeout"
    seconds: float
    max_queue_rank: int = -1  # highest queue position the server reported while this one waited
    message: str = ""


@dataclass
class KindStats:
    kind: str
    valid: bool
    count: int
    outcomes: dict[str, int]
    p50_s: float
    p95_s: float
    max_s: float
    max_queue_rank: int
    examples: list[str] = field(default_factory=list)  # a few messages of unexpected outcomes


def summarize(results: list[Result], kinds: tuple[RequestKind, ...] = KINDS) -> list[KindStats]:
    """Per request kind: outcome counts and latency percentiles (seconds, submit to result)."""
    stats = []
    for kind in kinds:
        mine = [r for r in results if r.kind == kind.name]
        if not mine:
            continue
        seconds = np.array([r.seconds for r in mine])
        outcomes: dict[str, int] = {}
        for r in mine:
            outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
        expected = "ok" if kind.valid else "refused"
        examples = sorted({r.message[:200] for r in mine if r.outcome != expected})[:3]
        stats.append(
            KindStats(
                kind=kind.name,
                valid=kind.valid,
                count=len(mine),
                outcomes=outcomes,
                p50_s=float(np.percentile(seconds, 50)),
                p95_s=float(np.percentile(seconds, 95)),
                max_s=float(seconds.max()),
                max_queue_rank=max(r.max_queue_rank for r in mine),
                examples=examples,
            )
        )
    return stats


class Requester:
    """Sends requests of each kind through one gradio_client.Client, each with a deadline."""

    def __init__(
        self, url: str, timeout: float, steps: int, download_dir: Path, bad_image: Path | None = None
    ):
        from gradio_client import Client

        # The deadline below is ours. httpx's timeout only guards each read of the shared event
        # stream: were it as short as the deadline, a quiet stream would die and cancel every job.
        self.client = Client(
            url,
            verbose=False,
            download_files=str(download_dir),
            httpx_kwargs={"timeout": timeout + STREAM_GRACE_S},
        )
        self.timeout = timeout
        self.steps = steps
        self.bad_image = bad_image
        self.frames = sorted(FRAMES_DIR.glob("*.png"))

    def send(self, kind: RequestKind, number: int) -> Result:
        from gradio_client import handle_file

        frame = self.bad_image if kind.frame == "not-image" else self.frames[number % len(self.frames)]
        half = self.steps // 2
        actions = kind.actions.format(half=half, rest=self.steps - half)
        started = time.perf_counter()
        rank = -1
        arguments = (kind.model, handle_file(str(frame))) + (
            (actions,) if kind.endpoint == "/rollout" else ()
        )
        job = self.client.submit(*arguments, api_name=kind.endpoint)
        while not wait([job.future], timeout=POLL_S).done:
            status = job.status()  # what a waiting browser shows: its place in the queue
            rank = max(rank, status.rank if status.rank is not None else -1)
            if time.perf_counter() - started > self.timeout:
                job.cancel()
                message = f"no answer within {self.timeout:g} s"
                return Result(kind.name, "timeout", time.perf_counter() - started, rank, message)
        seconds = time.perf_counter() - started
        error = job.future.exception()  # the app's refusal arrives as the client's exception
        output = None if error else job.future.result()
        if error is None:
            if not kind.valid:
                return Result(kind.name, "accepted", seconds, rank, "bad input was not refused")
            if kind.endpoint == "/rollout":
                ok = bool(output) and Path(output[0]).is_file()
            else:  # a play step answers with the new frame inline
                ok = bool(output) and "data:image/png;base64," in output[0]
            message = "" if ok else f"no frame or video in the answer: {str(output)[:200]}"
            return Result(kind.name, "ok" if ok else "failed", seconds, rank, message)
        message = str(error) or type(error).__name__  # a lost event stream cancels with no message
        if isinstance(error, TimeoutError) or type(error).__name__.endswith("Timeout"):  # httpx's
            return Result(kind.name, "timeout", seconds, rank, message)
        if kind.valid:
            return Result(kind.name, "failed", seconds, rank, message)
        clear = re.search(kind.expect, message) is not None
        return Result(kind.name, "refused" if clear else "unclear", seconds, rank, message)


def _bad_image(folder: Path) -> Path:
    path = folder / "not-an-image.png"
    path.write_text("this is text, not a PNG")
    return path


def run_loadtest(
    url: str,
    users: int = 20,
    requests: int = 200,
    timeout: float = 60.0,
    steps: int = 60,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """`users` threads share `requests` requests drawn from KINDS by weight; returns the report
    (see `format_load_report`) as a dict."""
    rng = random.Random(seed)
    plan = rng.choices(KINDS, weights=[k.weight for k in KINDS], k=requests)
    todo: queue.Queue[tuple[int, RequestKind]] = queue.Queue()
    for item in enumerate(plan):
        todo.put(item)
    results: list[Result] = []
    lock = threading.Lock()
    folder = Path(tempfile.mkdtemp(prefix="worldsim-loadtest-"))
    bar = tqdm(total=requests, desc=f"loadtest {users} users", unit="req", disable=not progress)

    def user(requester: Requester) -> None:
        while True:
            try:
                number, kind = todo.get_nowait()
            except queue.Empty:
                return
            try:
                result = requester.send(kind, number)
            except Exception as error:  # a client-side failure (connection, upload) counts too
                result = Result(kind.name, "failed" if kind.valid else "unclear", 0.0, -1, repr(error))
            with lock:
                results.append(result)
            bar.update()

    try:
        bad_image = _bad_image(folder)
        # Clients connect before the clock starts: the load is the requests, not the handshakes.
        requesters = [Requester(url, timeout, steps, folder / f"user{i}", bad_image) for i in range(users)]
        threads = [threading.Thread(target=user, args=(r,), daemon=True) for r in requesters]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        bar.close()
        shutil.rmtree(folder, ignore_errors=True)
    stats = summarize(results)
    valid = [r for r in results if r.kind in {k.name for k in KINDS if k.valid}]
    return {
        "url": url,
        "users": users,
        "requests": requests,
        "steps": steps,
        "timeout_s": timeout,
        "wall_s": wall,
        "throughput_rps": len(results) / wall,
        "rollouts_per_s": sum(r.outcome == "ok" and r.kind == VALID_KIND.name for r in results) / wall,
        "valid_failed": sum(r.outcome != "ok" for r in valid),
        "bad_refused_clearly": sum(r.outcome == "refused" for r in results),
        "bad_total": len(results) - len(valid),
        "timeouts": sum(r.outcome == "timeout" for r in results),
        "kinds": [asdict(s) for s in stats],
    }


def format_load_report(report: dict) -> str:
    """A plain-text table of a `run_loadtest` report."""
    lines = [
        f"{report['users']} users, {report['requests']} requests ({report['steps']}-step rollouts) "
        f"in {report['wall_s']:.1f} s: {report['throughput_rps']:.2f} requests/s, "
        f"{report['rollouts_per_s']:.2f} rollouts/s",
        "",
        f"{'kind':<18}{'n':>5}  {'outcomes':<34}{'p50 s':>7}{'p95 s':>7}{'max s':>7}{'max queue pos':>15}",
    ]
    for kind in report["kinds"]:
        outcomes = ", ".join(f"{name} {n}" for name, n in sorted(kind["outcomes"].items()))
        lines.append(
            f"{kind['kind']:<18}{kind['count']:>5}  {outcomes:<34}{kind['p50_s']:>7.2f}"
            f"{kind['p95_s']:>7.2f}{kind['max_s']:>7.2f}{kind['max_queue_rank']:>15}"
        )
    lines += [
        "",
        f"valid requests that failed: {report['valid_failed']}; bad requests refused with our message: "
        f"{report['bad_refused_clearly']} of {report['bad_total']}; timeouts: {report['timeouts']}",
    ]
    for kind in report["kinds"]:
        lines += [f"  {kind['kind']}: {example!r}" for example in kind["examples"]]
    return "\n".join(lines)


# --- Soak -------------------------------------------------------------------------------------


def server_pid(port: int) -> int | None:
    """The pid of the local process listening on this TCP port (Linux /proc), if it is ours to see."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in targets for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:  # another user's process, or it exited
            continue
    return None


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"No VmRSS for pid {pid}.")


def server_temp_dirs(pid: int | None) -> list[Path]:
    """Where the server leaves files: gradio's cache (worldsim's outputs live inside it), from its
    environment (GRADIO_TEMP_DIR, TMPDIR) when readable, else this process's defaults."""
    environ = dict(os.environ)
    if pid is not None:
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            environ = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
        except OSError:  # not ours to read: assume it runs with our environment
            pass
    tmp = Path(environ.get("TMPDIR") or tempfile.gettempdir())
    gradio_dir = Path(environ.get("GRADIO_TEMP_DIR") or tmp / "gradio")
    return [gradio_dir]


def count_files(folders: list[Path]) -> dict[str, int]:
    return {str(f): sum(1 for p in f.rglob("*") if p.is_file()) if f.is_dir() else 0 for f in folders}


def run_soak(
    url: str,
    requests: int = 500,
    pid: int | None = None,
    timeout: float = 60.0,
    steps: int = 60,
    sample_every: int = 50,
    progress: bool = True,
) -> dict:
    """`requests` sequential valid rollouts; the server's RSS before, every `sample_every`
    requests and at the end, and the file counts of its temp folders before and after."""
    from urllib.parse import urlparse

    if pid is None:
        pid = server_pid(urlparse(url).port or 80)
    folders = server_temp_dirs(pid)
    files_before = count_files(folders)
    samples = [(0, rss_mb(pid))] if pid is not None else []
    results = []
    exited_after = None
    folder = Path(tempfile.mkdtemp(prefix="worldsim-soak-"))
    try:
        requester = Requester(url, timeout, steps, folder / "downloads")
        for number in tqdm(range(requests), desc="soak", unit="req", disable=not progress):
            results.append(requester.send(VALID_KIND, number))
            # Downloaded videos are the client's, not the server's: drop them as we go.
            shutil.rmtree(folder / "downloads", ignore_errors=True)
            done = number + 1
            if pid is not None and (done % sample_every == 0 or done == requests):
                try:
                    samples.append((done, rss_mb(pid)))
                except (OSError, ValueError):  # the server is gone: say so, not soak a dead port
                    exited_after = done
                    break
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    files_after = count_files(folders)
    stats = summarize(results)[0]
    return {
        "url": url,
        "requests": requests,
        "steps": steps,
        "pid": pid,
        "failed": sum(r.outcome != "ok" for r in results),
        "server_exited_after": exited_after,  # requests sent when the server pid was found gone
        "rss_mb": samples,  # (requests done, MiB)
        "temp_files_before": files_before,
        "temp_files_after": files_after,
        "latency": asdict(stats),
    }


def format_soak_report(report: dict) -> str:
    latency = report["latency"]
    lines = [
        f"{report['requests']} sequential {report['steps']}-step rollouts: {report['failed']} failed; "
        f"latency p50 {latency['p50_s']:.2f} s, p95 {latency['p95_s']:.2f} s, max {latency['max_s']:.2f} s",
    ]
    if report["rss_mb"]:
        samples = report["rss_mb"]
        lines.append(
            f"server pid {report['pid']} RSS: start {samples[0][1]:.0f} MiB, end {samples[-1][1]:.0f} MiB "
            f"(after request: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in samples) + ")"
        )
    else:
        lines.append("server RSS: unknown (no pid given or found; pass --pid)")
    if report["server_exited_after"]:
        lines.append(f"the server process was gone after {report['server_exited_after']} requests")
    for folder, before in report["temp_files_before"].items():
        lines.append(f"files in {folder}: {before} before, {report['temp_files_after'][folder]} after")
    return "\n".join(lines)
