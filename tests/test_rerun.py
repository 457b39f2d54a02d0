"""A re-run never makes the lake worse: what landed stays until something better replaces it, and a
run commits once, so a run killed at any moment leaves each day as it was or as the run would have
left it, never a mix."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.run import run
from runners.local.fingerprint import lake_fingerprint
from runners.local.kvs_emulator import start_emulator
from tests.conftest import ROOT
from tests.pipeline_runs import pipeline_args, table
from voicelake import lake_commit, layout, storage

CALL_TABLES = ("calls", "channels", "segments", "gaps", "phases")


def landed(lake: Path) -> dict[str, str]:
    """Every file of the lake but the failures table (each run's own account) and a run's scratch."""
    return {name: digest for name, digest in lake_fingerprint(lake).items()
            if not name.startswith(("failures/", f"{layout.SCRATCH}/"))}


@pytest.fixture
def first_run(world, tmp_path):
    """A lake the first run of the demo day landed (the lake is where it was landed: calls.wav_path
    names it), and its files."""
    lake = tmp_path / "lake"
    run(pipeline_args(world, lake))
    return lake, landed(lake)


@pytest.fixture
def lake(first_run):
    return first_run[0]


def test_a_rerun_after_the_media_is_gone_keeps_every_call_byte_for_byte(world, first_run, lake, tmp_path):
    with start_emulator(tmp_path / "empty-kvs") as gone:  # a KVS whose streams no longer exist
        summary = run(pipeline_args(world, lake, gone.url))
    assert landed(lake) == first_run[1]
    calls = {c["call_id"] for c in world.truth.calls}
    kept = [f for f in table(lake, "failures") if f["kept"]]
    assert {f["call_id"] for f in kept} == calls
    assert {f["reason"] for f in kept} == {"stream_not_found"}
    assert all(f["detail"].endswith("keeps the rows and WAVs an earlier run landed") for f in kept)
    assert summary["calls"] == 0 and summary["kept_calls"] == len(calls)
    assert summary["kept_by_reason"] == {"stream_not_found": len(calls)}


def test_a_call_whose_record_is_no_longer_listed_keeps_its_landing(world, first_run, lake):
    """The same day re-run from the Chime records alone: the Connect contacts' records are not read,
    and every one of them keeps what the first run landed."""
    args = [a for a in pipeline_args(world, lake) if not a.startswith("--ctr_prefix")]
    summary = run(args)
    assert landed(lake) == first_run[1]
    connect = {c["call_id"] for c in world.truth.calls if c["source"] == "connect"}
    kept = [f for f in table(lake, "failures") if f["kept"]]
    assert {f["call_id"] for f in kept} == connect and {f["reason"] for f in kept} == {"not_in_records"}
    assert summary["kept_by_reason"] == {"not_in_records": len(connect)}


def test_replace_is_the_operators_explicit_clean_replace(world, lake, tmp_path):
    with start_emulator(tmp_path / "empty-kvs") as gone:
        summary = run(pipeline_args(world, lake, gone.url, "--replace"))
    assert summary["kept_calls"] == 0
    assert not [p for t in CALL_TABLES for p in (lake / t).rglob("*.parquet")]
    assert not list((lake / "audio").rglob("*.wav"))


def test_a_rerun_that_lands_again_replaces_exactly_what_it_lands(world, first_run, lake):
    run(pipeline_args(world, lake, None, "--vad=energy"))
    assert {r["vad_method"] for r in table(lake, "calls")} == {"energy-v1"}
    assert not [f for f in table(lake, "failures") if f["kept"]]


def test_a_commit_that_died_half_way_is_completed_by_the_next_run(world, first_run, lake, tmp_path,
                                                                    monkeypatch):
    """The energy run's files are staged and its commit under way when it dies after a few moves:
    the day is a mix only until the next run on the lake, which completes that commit first (even
    with KVS gone)."""
    reference = tmp_path / "energy"
    run(pipeline_args(world, reference, None, "--vad=energy"))
    moves = []
    real_move = storage.move

    def dying_move(source, target):  # dies after one partition of calls has come in, not the other
        if "/calls/" in target and any("/calls/" in m for m in moves):
            raise KeyboardInterrupt("killed while committing")
        moves.append(target)
        real_move(source, target)
    monkeypatch.setattr(storage, "move", dying_move)
    monkeypatch.setattr(lake_commit, "MOVERS", 1)
    with pytest.raises(KeyboardInterrupt):
        run(pipeline_args(world, lake, None, "--vad=energy"))
    monkeypatch.setattr(storage, "move", real_move)
    assert storage.list_paths(layout.commit_markers(str(lake)))  # under way
    assert landed(lake) not in (first_run[1], landed(reference))  # a mix, for now
    with start_emulator(tmp_path / "empty-kvs") as gone:
        run(pipeline_args(world, lake, gone.url, "--vad=energy"))
    assert landed(lake) == landed(reference)


@pytest.mark.parametrize("moment", ["fetching", "analysing", "writing"])
def test_a_run_killed_before_it_commits_leaves_the_day_as_it_was(world, first_run, lake, moment):
    """A run that would change every call (another VAD) is killed while it fetches, while it writes
    WAVs, or while it writes the tables: the day is exactly as the first run left it, and the next
    run makes it what the killed run would have."""
    scratch = Path(layout.scratch_date_dir(str(lake), world.config.date))
    sign = {"fetching": lambda: any(scratch.rglob("*.pcm")),
            "analysing": lambda: any((scratch / layout.STAGED / "audio").rglob("*.wav")),
            "writing": lambda: any((scratch / layout.STAGED).rglob("*.parquet"))}[moment]
    args = pipeline_args(world, lake, None, "--vad=energy")
    job = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", *args], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not sign() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert sign(), f"the run ended before it was {moment}"
    assert landed(lake) == first_run[1]
    assert not storage.list_paths(layout.commit_markers(str(lake)))
    summary = run(args)
    assert summary["calls"] == len(world.truth.calls)
    assert {r["vad_method"] for r in table(lake, "calls")} == {"energy-v1"}
    assert not scratch.exists()
    assert json.loads((lake / "_runs" / world.config.date / "summary.json").read_text())["calls"] == \
        len(world.truth.calls)
