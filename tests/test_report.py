"""`voicelake report`: one HTML page of the runs' numbers and the lake's figures, as a browser shows it.

The page is opened in headless Chromium (Debian's package, which test.sh installs); the DOM it
dumps after the load event says how many figures decoded, and carries the run's numbers.
"""
from __future__ import annotations

import re
import struct
import subprocess
import sys

import pytest

from pipeline import report
from runners import engines
from tests.conftest import ROOT
from tests.demo_lake import demo_lake

FIGURES = 10
# Debian's Chromium as root, on a machine without a network or a desktop session.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def lake_and_summary(world, tmp_path_factory):
    return demo_lake(world, tmp_path_factory)


@pytest.fixture(scope="module")
def page(lake_and_summary):
    lake, summary = lake_and_summary
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", "--lake", str(lake),
                           "--dates", summary["dates"][0]], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    path = lake / "_runs" / summary["dates"][0] / "report.html"
    assert done.stdout == f"{path}\n"
    return path


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    binary = engines.require_or_skip("chromium")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([str(binary), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def test_every_figure_loads_in_chromium_and_the_page_shows_the_runs_numbers(page, lake_and_summary, tmp_path):
    _, summary = lake_and_summary
    done = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert f'id="figures-status" data-loaded="{FIGURES}">{FIGURES} of {FIGURES} figures loaded<' in dom
    assert dom.count("<figure><img") == FIGURES
    cells = re.findall(r"<td>([^<]*)</td>", dom.split('id="run-numbers"', 1)[1].split("</table>", 1)[0])
    assert cells == [
        summary["dates"][0], str(summary["records"]), str(summary["calls"]),
        str(summary["partial_calls"]), str(summary["failed"]), f"{summary['audio_seconds'] / 3600:.3f}",
        f"{summary['run']['wall_seconds']} s", f"{summary['run']['cpu_seconds']} s",
        str(summary["run"]["audio_hours_per_cpu_hour"]), "0 / 0",
        f"{summary['bytes_fetched'] / 1e6:.1f}", "none",
    ]
    assert (summary["records"], summary["calls"], summary["partial_calls"], summary["failed"]) == (21, 7, 1, 2)


def test_a_screenshot_of_the_page_is_a_full_png(page, tmp_path):
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, "--hide-scrollbars", "--window-size=1200,2400", f"--screenshot={shot}",
                    page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1200, 2400)


def test_a_day_without_data_still_has_every_figure_saying_so(tmp_path):
    html = report.render(str(tmp_path), ["2024-05-15"])
    assert html.count("<figure><img") == FIGURES
    assert '<p id="run-numbers">no run summary for these dates</p>' in html


def test_the_run_numbers_count_throttling_from_failures_and_retry_counters():
    summary = {"dates": ["2024-05-14"], "records": 3, "calls": 1, "failed": 2, "audio_seconds": 7200,
               "bytes_fetched": 2_500_000, "failures_by_reason": {"throttled": 2},
               "counters": {"failures.throttled": 2, "kvs.throttle_retries": 5}}
    numbers = report.run_numbers(summary)
    assert numbers["throttled (failures / retries)"] == "2 / 5"
    assert numbers["audio hours"] == "2.000" and numbers["wall time"] == "n/a"
    assert numbers["partial calls"] == "n/a" and numbers["warnings"] == "none"
