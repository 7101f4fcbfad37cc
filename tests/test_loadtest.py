"""The load and soak drivers against `python app.py`, on budgets of a few requests."""

from pathlib import Path
from urllib.parse import urlparse

import pytest

from worldsim.tools.loadtest import (
    VALID_KIND,
    Requester,
    format_load_report,
    format_soak_report,
    run_loadtest,
    run_soak,
    server_pid,
)

pytestmark = pytest.mark.slow  # starts `python app.py`


def test_loadtest_serves_valid_requests_and_refuses_bad_ones(app_url):
    report = run_loadtest(app_url, users=3, requests=12, timeout=60, steps=10, seed=3, progress=False)
    kinds = {kind["kind"]: kind for kind in report["kinds"]}
    assert sum(kind["count"] for kind in kinds.values()) == 12
    assert len(kinds) >= 3  # this seed's mix holds valid and bad requests
    assert kinds[VALID_KIND.name]["outcomes"] == {"ok": kinds[VALID_KIND.name]["count"]}
    assert report["valid_failed"] == 0 and report["timeouts"] == 0
    assert all(kind["outcomes"].get("accepted", 0) == 0 for kind in kinds.values())  # nothing bad let in
    table = format_load_report(report)
    assert "p95 s" in table and "valid requests that failed: 0" in table


def test_a_request_past_its_deadline_is_reported_as_a_timeout(app_url, tmp_path):
    requester = Requester(app_url, timeout=0.05, steps=300, download_dir=tmp_path)
    result = requester.send(VALID_KIND, 0)
    assert result.outcome == "timeout" and "no answer within 0.05 s" in result.message
    assert result.seconds < 5  # reported at the deadline, not when the rollout finishes


def test_soak_reads_the_server_memory_and_counts_its_temp_files(app_url):
    pid = server_pid(urlparse(app_url).port)
    assert pid is not None and "app.py" in Path(f"/proc/{pid}/cmdline").read_text()
    report = run_soak(app_url, requests=3, sample_every=2, progress=False)
    assert report["pid"] == pid and report["failed"] == 0
    assert [n for n, _ in report["rss_mb"]] == [0, 2, 3] and all(mb > 50 for _, mb in report["rss_mb"])
    assert report["temp_files_before"].keys() == report["temp_files_after"].keys()
    assert "RSS: start" in format_soak_report(report)
