"""The nightly job end to end, over real HTTP (local S3 + KVS emulator), checked against the truth.

The demo generator's ground truth says, per seeded call, which PCM each channel must carry before
normalisation; the pipeline's un-normalised 8 kHz WAV is compared with it sample for sample.
DuckDB reads the lake the way Athena does (Hive partitions as strings).
"""
from __future__ import annotations

import hashlib
import json
import time
import wave
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.run import run
from runners.local.fingerprint import lake_fingerprint
from runners.local.kvs_emulator import Faults, start_emulator
from runners.local.processes import job_service_command, serving
from runners.local.seed import WorldConfig
from runners.processes import free_port
from schemas import tables
from tests.conftest import make_world
from tests.pipeline_runs import file_digests, pipeline_args, raw_channels, table, without_run


@pytest.fixture(scope="module")
def first_run(world, tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    summary = run(pipeline_args(world, lake))
    return lake, summary, file_digests(lake)


def test_every_seeded_call_lands_exactly_once_in_calls(world, first_run):
    lake, summary, _ = first_run
    calls = table(lake, "calls")
    assert sorted(r["call_id"] for r in calls) == sorted(c["call_id"] for c in world.truth.calls)
    truth = {c["call_id"]: c for c in world.truth.calls}
    for row in calls:
        expected = truth[row["call_id"]]
        assert row["source"] == expected["source"]
        assert row["voice_connector_id"] == expected["partition_id"]
        assert row["date"] == world.config.date
        assert row["channel_map"] == "0=customer,1=agent"
        assert row["missing_fragments"] == 0
        assert row["partial"] is bool(expected.get("gaps"))
        assert row["fragments"] == sum(len(s["fragments"]) for s in expected["streams"])
    assert summary["calls"] == len(world.truth.calls)


def test_channels_carry_exactly_the_seeded_pcm_before_normalisation(world, first_run):
    lake, _, _ = first_run
    for call in world.truth.calls:
        wav = lake / f"audio/date={call['date']}/voice_connector_id={call['partition_id']}/{call['call_id']}.8k.wav"
        channels = raw_channels(wav)
        assert len(channels) == 2
        for samples, expected in zip(channels, call["channels"], strict=True):
            assert len(samples) == expected["samples"], call["call_id"]
            assert hashlib.sha256(samples.astype("<i2").tobytes()).hexdigest() == expected["sha256"]


def test_a_dropped_fragment_becomes_silence_and_one_gap_per_channel(world, first_run):
    lake, _, _ = first_run
    dropped = [c for c in world.truth.calls if c.get("gaps")]
    assert len(dropped) == 1
    call = dropped[0]
    gaps = sorted((g["channel"], g["start_ms"], g["end_ms"]) for g in table(lake, "gaps")
                  if g["call_id"] == call["call_id"])
    assert gaps == [(ch, g["start_ms"], g["end_ms"]) for ch in (0, 1) for g in call["gaps"]]
    assert [r["gap_ms"] for r in table(lake, "calls") if r["call_id"] == call["call_id"]] == [2 * 1024]


def test_ml_wav_is_stereo_16_bit_at_the_target_rate(world, first_run):
    lake, _, _ = first_run
    for row in table(lake, "calls"):
        with wave.open(str(lake / row["wav_path"]), "rb") as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 16000)
            assert abs(w.getnframes() - row["duration_ms"] * 16) <= 16


def test_reused_streams_drop_the_other_calls_fragments(first_run):
    _, summary, _ = first_run
    # each pooled stream's window also lists the neighbouring calls' fragments
    assert summary["foreign_fragments"] > 0


def test_a_redelivered_ctr_yields_one_call(world, first_run):
    lake, _, _ = first_run
    redelivered = next(c for c in world.truth.calls if c.get("redelivered"))
    assert [r["call_id"] for r in table(lake, "calls")].count(redelivered["call_id"]) == 1


def test_bad_records_land_in_failures_with_their_source(world, first_run):
    lake, summary, _ = first_run
    failures = table(lake, "failures")
    assert sorted(f["reason"] for f in failures) == sorted(b["reason"] for b in world.truth.bad_records)
    sdr = next(b for b in world.truth.bad_records if b["source"] == "chime")
    missing = next(f for f in failures if f["reason"] == "missing_field")
    assert missing["source_key"] == world.s3_uri(sdr["key"])
    broken = next(f for f in failures if f["reason"] == "bad_json")
    assert "/connect-ctr/2024/05/14/10/" in broken["source_key"] and broken["source_offset"] >= 0
    assert summary["failed"] == len(failures)


def test_duckdb_counts_agree_with_the_run_summary(world, first_run):
    lake, summary, _ = first_run
    calls, channels = table(lake, "calls"), table(lake, "channels")
    assert len(calls) == summary["calls"] and len(channels) == 2 * summary["calls"]
    assert sum(r["duration_ms"] for r in calls) == round(summary["audio_seconds"] * 1000)
    assert len(table(lake, "segments")) == sum(r["segment_count"] for r in channels)
    written = json.loads((lake / "_runs" / world.config.date / "summary.json").read_text())
    assert written == summary


def test_every_parquet_file_uses_athena_safe_types_and_no_partition_columns(first_run):
    lake, _, _ = first_run
    files = sorted(lake.rglob("*.parquet"))
    assert files
    for path in files:
        schema = pq.read_schema(path)
        tables.lint_schema(schema)
        assert schema.names == tables.TABLES[path.relative_to(lake).parts[0]].names


def test_a_second_run_of_the_same_date_leaves_byte_identical_files(world, first_run):
    lake, _, digests = first_run
    stale = lake / "calls/date=2024-05-14/voice_connector_id=gone/part-00000.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by an earlier run")
    (lake / "audio/date=2024-05-14/voice_connector_id=gone").mkdir(parents=True)
    (lake / "audio/date=2024-05-14/voice_connector_id=gone/old.wav").write_bytes(b"x")
    summary_file = f"_runs/{world.config.date}/summary.json"
    before = json.loads((lake / summary_file).read_text())
    again = run(pipeline_args(world, lake))
    after = file_digests(lake)
    assert {k: v for k, v in after.items() if k != summary_file} == \
        {k: v for k, v in digests.items() if k != summary_file}
    # the run log says what it cleaned up, and is otherwise the same but for the CPU it took
    assert again["counters"].pop("lake.stale_files_removed") == 2
    assert without_run(again) == without_run(before)


def test_throttling_server_errors_cut_bodies_and_missing_chunks_are_retried_away(world, tmp_path):
    faults = Faults(throttle_probability=0.2, error_500_probability=0.1, truncate_probability=0.2,
                    reset_probability=0.1, missing_fragment_probability=0.05, seed=7)
    with start_emulator(world.root / "kvs", faults=faults) as flaky:
        summary = run(pipeline_args(world, tmp_path, flaky.url, "--max_attempts=12"))
    assert summary["calls"] == len(world.truth.calls)
    for call in world.truth.calls:
        wav = tmp_path / f"audio/date={call['date']}/voice_connector_id={call['partition_id']}/{call['call_id']}.8k.wav"
        got = [hashlib.sha256(c.astype("<i2").tobytes()).hexdigest() for c in raw_channels(wav)]
        assert got == [c["sha256"] for c in call["channels"]]


def test_expired_media_sends_every_call_to_failures_once_with_the_reason(world, tmp_path):
    twenty_years_later = int(time.time() * 1000) + 20 * 365 * 86_400_000
    with start_emulator(world.root / "kvs", now_ms=twenty_years_later) as later:
        summary = run(pipeline_args(world, tmp_path, later.url))
    failures = table(tmp_path, "failures")
    expired = sorted(f["call_id"] for f in failures if f["reason"] == "outside_retention")
    assert expired == sorted(c["call_id"] for c in world.truth.calls)
    assert table(tmp_path, "calls") == [] and summary["calls"] == 0


def test_the_portable_runner_with_a_loopback_worker_writes_the_same_lake(world, first_run, tmp_path):
    lake, _, digests = first_run
    port = free_port()
    with serving(job_service_command(port), port):
        args = [a for a in pipeline_args(world, tmp_path) if not a.startswith("--runner")]
        run(args + ["--runner=PortableRunner", f"--job_endpoint=localhost:{port}",
                    "--environment_type=LOOPBACK"])
    # the run log (_runs/) records which runner wrote the lake; the lake itself is the same
    assert lake_fingerprint(tmp_path) == lake_fingerprint(lake)


def test_without_streaming_events_chime_calls_are_found_by_their_transaction_tags(world, tmp_path):
    args = [a for a in pipeline_args(world, tmp_path) if not a.startswith(("--events_prefix", "--ctr_prefix"))]
    summary = run(args)
    chime = [c for c in world.truth.calls if c["source"] == "chime"]
    assert summary["calls"] == len(chime)
    for call in chime:
        wav = tmp_path / f"audio/date={call['date']}/voice_connector_id={call['partition_id']}/{call['call_id']}.8k.wav"
        got = [hashlib.sha256(c.astype("<i2").tobytes()).hexdigest() for c in raw_channels(wav)]
        expected = [c["sha256"] for c in call["channels"]]
        # Legs are ordered by their first audio (the caller first) and the caller is taken to be
        # the customer: right for Inbound calls, swapped for Outbound ones (no direction without events).
        assert got == (expected if call["direction"] == "Inbound" else expected[::-1])


def test_a_call_split_over_many_small_ranges_reassembles_to_the_same_pcm(world, first_run, tmp_path):
    lake, _, digests = first_run
    run(pipeline_args(world, tmp_path, None, "--fragments_per_range=7"))
    assert lake_fingerprint(tmp_path) == lake_fingerprint(lake)


def test_fragments_kvs_never_serves_send_their_call_to_failures_or_with_the_flag_to_gaps(world, tmp_path):
    # every request loses about a third of its fragments to in-band FRAGMENT_NOT_FOUND chunks,
    # and a single attempt leaves no chance to get them back
    faults = Faults(missing_fragment_probability=0.3, seed=3)
    with start_emulator(world.root / "kvs", faults=faults) as lossy:
        strict = run(pipeline_args(world, tmp_path / "strict", lossy.url, "--max_attempts=1"))
        lenient = run(pipeline_args(world, tmp_path / "lenient", lossy.url, "--max_attempts=1",
                                    "--allow_missing_fragments"))
    failed = [f for f in table(tmp_path / "strict", "failures") if f["reason"] == "fragment_not_found"]
    assert sorted(f["call_id"] for f in failed) == sorted(c["call_id"] for c in world.truth.calls)
    assert strict["calls"] == 0 and lenient["calls"] == len(world.truth.calls)
    calls = table(tmp_path / "lenient", "calls")
    assert all(r["partial"] and r["missing_fragments"] > 0 and r["gap_ms"] > 0 for r in calls)
    assert sum(r["missing_fragments"] for r in calls) == lenient["missing_fragments"]


def test_a_stream_that_stays_throttled_past_the_retry_budget_fails_its_calls_with_the_reason(world, tmp_path):
    with start_emulator(world.root / "kvs", faults=Faults(throttle_probability=1.0)) as throttled:
        summary = run(pipeline_args(world, tmp_path, throttled.url, "--kvs_retry_budget_s=1"))
    reasons = {f["call_id"]: f["reason"] for f in table(tmp_path, "failures") if f["stage"] != "records"}
    assert reasons == {c["call_id"]: "throttled" for c in world.truth.calls}
    assert summary["calls"] == 0


def test_a_call_whose_first_fragments_expired_fails_instead_of_silently_losing_its_start(world, tmp_path):
    first = min((c for c in world.truth.calls if c["source"] == "connect"), key=lambda c: c["start_ms"])
    retention_ms = 87600 * 3_600_000  # the demo streams' DataRetentionInHours
    # ten seconds into the call have left the retention period; its end has not
    with start_emulator(world.root / "kvs", now_ms=first["start_ms"] + retention_ms + 10_000) as later:
        run(pipeline_args(world, tmp_path, later.url, "--max_attempts=1"))
    failures = {f["call_id"]: f for f in table(tmp_path, "failures") if f["stage"] != "records"}
    # the operator ran too late: expired media, not media KVS lost (fragment_not_found)
    assert failures[first["call_id"]]["reason"] == "outside_retention"
    assert "past the stream's DataRetentionInHours=87600" in failures[first["call_id"]]["detail"]
    assert first["call_id"] not in [r["call_id"] for r in table(tmp_path, "calls")]


def test_calls_spread_over_larger_stream_pools_land_exactly_like_the_demo_pools(s3_server, tmp_path):
    """The seeded pools' size is a setting (benchmarks spread a large night over many streams): every
    call still lands once, with exactly its seeded PCM, whatever stream of the pool carried it."""
    config = WorldConfig(bucket="world-pools", connect_calls=5, connect_streams=5, chime_calls=3,
                         chime_streams=6, call_seconds=6.0, bad_records=False)
    world = make_world(tmp_path / "world", s3_server, config)
    try:
        lake = tmp_path / "lake"
        summary = run(pipeline_args(world, lake))
    finally:
        world.kvs.stop()
    streams = {s["stream_arn"] for c in world.truth.calls for s in c["streams"]}
    assert len(streams) == 5 + 6
    assert summary["calls"] == len(world.truth.calls) == 8
    for call in world.truth.calls:
        wav = lake / f"audio/date={call['date']}/voice_connector_id={call['partition_id']}/{call['call_id']}.8k.wav"
        for samples, expected in zip(raw_channels(wav), call["channels"], strict=True):
            assert hashlib.sha256(samples.astype("<i2").tobytes()).hexdigest() == expected["sha256"]


def test_a_relative_output_keeps_every_wav_it_wrote(world, tmp_path, monkeypatch):
    """--output as an operator types it (relative to where they stand) names the same lake for
    every stage: the WAVs the run wrote are the ones it keeps."""
    monkeypatch.chdir(tmp_path)
    summary = run(pipeline_args(world, Path("lake")))
    wavs = sorted((tmp_path / "lake" / "audio").rglob("*.wav"))
    assert summary["calls"] == len(world.truth.calls)
    assert len(wavs) == 2 * len(world.truth.calls)  # the ML WAV and the 8 kHz source WAV
    assert {row["wav_path"] for row in table(tmp_path / "lake", "calls")} == \
        {str(p) for p in wavs if not p.name.endswith(".8k.wav")}
