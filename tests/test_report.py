"""`voicelake report`: one HTML page of the runs' numbers and the lake's figures, as a browser shows it.

The page is opened in headless Chromium (Debian's package, which test.sh installs); the DOM it
dumps after the load event says how many figures decoded, and carries the run's numbers.
"""
from __future__ import annotations

import datetime as dt
import re
import struct
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import report
from runners import engines
from schemas.tables import TABLES
from tests.conftest import ROOT
from tests.demo_lake import demo_lake
from voicelake import plots

FIGURES = 11
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


def phases_rows(*rows: tuple[str, str, str, int]) -> dict[str, list]:
    """The phases table as the report reads it, from (date, call_id, phase, duration_ms)."""
    return {"date": [r[0] for r in rows], "call_id": [r[1] for r in rows],
            "phase": [r[2] for r in rows], "duration_ms": [r[3] for r in rows]}


def test_time_per_phase_takes_each_hold_out_of_the_agent_phase_it_lies_in():
    phases = phases_rows(("2024-05-14", "a", "ivr", 12_000), ("2024-05-14", "a", "queue", 20_000),
                         ("2024-05-14", "a", "agent", 55_000), ("2024-05-14", "a", "hold", 8_000),
                         ("2024-05-14", "a", "hold", 6_000), ("2024-05-14", "a", "after", 5_000),
                         ("2024-05-14", "b", "ivr", 12_000), ("2024-05-14", "b", "after", 3_000),
                         ("2024-05-15", "c", "call", 41_000))
    assert report.phase_ms_by_day(phases) == {
        "2024-05-14": {"ivr": 24_000, "queue": 20_000, "agent": 41_000, "hold": 14_000, "after": 8_000},
        "2024-05-15": {"call": 41_000}}
    # a day's phases add up to its audio: 92 s of a, 15 s of b
    assert sum(report.phase_ms_by_day(phases)["2024-05-14"].values()) == 92_000 + 15_000
    assert report.calls_per_phase(phases) == {"ivr": 2, "queue": 1, "agent": 1, "hold": 1, "after": 2,
                                              "call": 1}


def test_a_null_talk_share_is_no_measurement_and_is_never_drawn_as_zero():
    roles = ["customer", "agent", "customer", "agent", None]
    assert plots.values_by_role(roles, [0.4, 0.3, None, None, 0.2]) == \
        {"customer": [0.4], "agent": [0.3], None: [0.2]}
    assert report.without_conversation(["a", "a", "b", "b", "c"], [0.4, 0.3, None, None, 0.2]) == 1
    assert report.left_out(1) == " (1 contact that reached no agent left out)"
    assert report.left_out(0) == ""


def write_table(lake, table: str, date: str, rows: list[dict], schema: pa.Schema | None = None) -> None:
    schema = schema or TABLES[table]
    path = lake / table / f"date={date}" / "voice_connector_id=instance-1" / "part-00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{**dict.fromkeys(schema.names), **r} for r in rows], schema), path)


def test_a_day_from_before_phases_and_a_contact_without_an_agent_still_draw_every_figure(tmp_path):
    start = dt.datetime(2024, 5, 14, 9, tzinfo=dt.timezone.utc)
    call = {"source": "connect", "start_time": start, "end_time": start, "duration_ms": 60_000}
    before_phases = pa.schema([f for f in TABLES["calls"]
                               if f.name not in ("conversation_start_ms", "conversation_end_ms")])
    write_table(tmp_path, "calls", "2024-05-14", [{**call, "call_id": "old", "overlap_ratio": 0.1}],
                before_phases)
    write_table(tmp_path, "calls", "2024-05-15", [
        {**call, "call_id": "talked", "overlap_ratio": 0.05, "conversation_start_ms": 20_000,
         "conversation_end_ms": 60_000},
        {**call, "call_id": "abandoned", "overlap_ratio": None, "conversation_start_ms": None}])
    write_table(tmp_path, "channels", "2024-05-15", [
        {"call_id": c, "source": "connect", "channel": n, "role": role, "talk_share": share}
        for c, shares in (("talked", (0.3, 0.4)), ("abandoned", (None, None)))
        for n, (role, share) in enumerate(zip(("customer", "agent"), shares, strict=True))])
    write_table(tmp_path, "phases", "2024-05-15", [
        {"call_id": "talked", "source": "connect", "phase": p, "start_ms": a, "end_ms": b, "duration_ms": b - a}
        for p, a, b in (("ivr", 0, 10_000), ("queue", 10_000, 20_000), ("agent", 20_000, 60_000))])
    dates = ["2024-05-14", "2024-05-15"]
    assert report.read_table(str(tmp_path), "calls", dates)["conversation_start_ms"] == [None, 20_000, None]
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", report.render(str(tmp_path), dates))
    assert len(captions) == FIGURES
    assert "Talk share by role over the conversation (1 contact that reached no agent left out)" in captions
    assert "Overlap and interruptions over the conversation (1 contact that reached no agent left out)" \
        in captions
    assert "Time per phase: IVR, queue, agent, hold, after, or one-phase call" in captions
