"""A bad night, end to end over real HTTP: every broken record object ends as the failure rows it
should, under the run's date, and a re-run replaces everything under its dates, at any depth,
and nothing else.

Planted beside a small seeded day (its own bucket, so the default world's truth stays as it is):
a 50 MB object of random bytes and a gzip that inflates to 1 GiB in a CTR folder, an object of
NUL padding and an empty one, CTRs dated 2014, 9999 and the day before, and an SDR dated 2014.
"""
from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.run import run
from runners.local.seed import PREFIX_CTR, PREFIX_SDR, WorldConfig
from tests.conftest import make_world
from tests.pipeline_runs import file_digests, pipeline_args, table
from transforms import failure_rows, read_records
from voicelake.model import Failure
from voicelake.records import firehose

DATE = "2024-05-14"
JUNK_BYTES = 50 * 2**20
INSTANCE = "5b2c4d6e-1f3a-4b5c-8d7e-9f0a1b2c3d4e"
STREAM = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
          "voicelake-demo-connect-contact-00000000-0000-4000-8000-000000000000/1714521600412")
JUNK_KEY = f"{PREFIX_CTR}2024/05/14/11/voicelake-ctr-firehose-1-2024-05-14-11-00-00-junk"
BOMB_KEY = f"{PREFIX_CTR}2024/05/14/12/voicelake-ctr-firehose-1-2024-05-14-12-00-00-bomb"
NUL_KEY = f"{PREFIX_CTR}2024/05/14/13/voicelake-ctr-firehose-1-2024-05-14-13-00-00-nul"
EMPTY_KEY = f"{PREFIX_CTR}2024/05/14/13/voicelake-ctr-firehose-1-2024-05-14-13-30-00-empty"
DATED_KEY = f"{PREFIX_CTR}2024/05/14/14/voicelake-ctr-firehose-1-2024-05-14-14-00-00-dated"
SDR_TX = "0e2c4a6b-8d0f-4e1a-9b3c-5d7e9f1a2b3c"


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip file of NUL bytes that inflates to ``inflated_bytes`` (members of 1 MiB each: one
    compression, repeated, so building 1 GiB takes milliseconds)."""
    member = gzip.compress(bytes(2**20), compresslevel=1, mtime=0)
    return member * (inflated_bytes // 2**20)


def voice_ctr(contact_id: str, start: str, stop: str) -> bytes:
    return json.dumps({
        "ContactId": contact_id, "Channel": "VOICE", "InitiationMethod": "INBOUND",
        "InstanceARN": f"arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE}",
        "InitiationTimestamp": start, "DisconnectTimestamp": stop, "LastUpdateTimestamp": stop,
        "Recordings": [{"StorageType": "KINESIS_VIDEO_STREAM", "Location": STREAM,
                        "StartTimestamp": start, "StopTimestamp": stop}],
    }, separators=(",", ":")).encode()


DATED_CTRS = [  # (contact id, start, stop): 2014 and 9999 no run reads; the day before its own run does
    ("c2014000-0000-4000-8000-000000000001", "2014-05-14T10:00:00Z", "2014-05-14T10:05:00Z"),
    ("c9999000-0000-4000-8000-000000000002", "9999-12-30T10:00:00Z", "9999-12-30T10:05:00Z"),
    ("c2024051-3000-4000-8000-000000000003", "2024-05-13T23:50:00Z", "2024-05-13T23:58:00Z"),
]


@pytest.fixture(scope="module")
def bad_night(tmp_path_factory, s3_server):
    config = WorldConfig(bucket="bad-night", connect_calls=1, chime_calls=1, call_seconds=6.0,
                         dropout_fragment=None)
    world = make_world(tmp_path_factory.mktemp("bad-night"), s3_server, config)
    vc_id = next(c["partition_id"] for c in world.truth.calls if c["source"] == "chime")
    s3 = s3_server.client()
    planted = {
        JUNK_KEY: random.Random(10).randbytes(JUNK_BYTES),
        BOMB_KEY: gzip_bomb(2**30),
        NUL_KEY: bytes(2**20),
        EMPTY_KEY: b"",
        DATED_KEY: b"".join(voice_ctr(*ctr) for ctr in DATED_CTRS),
        f"{PREFIX_SDR}Amazon-Chime-Voice-Connector-SDRs/json/{vc_id}/2024/05/14/15.00.00.000_{SDR_TX}":
            json.dumps({"TransactionId": SDR_TX, "VoiceConnectorId": vc_id, "CallId": "x@192.0.2.10",
                        "StartTimeEpochSeconds": 1400061600, "EndTimeEpochSeconds": 1400061900}).encode(),
    }
    for key, body in planted.items():
        s3.put_object(Bucket=config.bucket, Key=key, Body=body)
    lake = tmp_path_factory.mktemp("bad-night-lake")
    summary = run(pipeline_args(world, lake))
    yield world, vc_id, lake, summary, file_digests(lake)
    world.kvs.stop()


def failures_by_key(world, lake: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in table(lake, "failures"):
        key = row["source_key"].removeprefix(world.s3_uri(""))
        rows.setdefault(key, []).append(row)
    return {key: sorted(found, key=lambda r: r["source_offset"]) for key, found in sorted(rows.items())}


def shown(rows: list[dict]) -> list[tuple]:
    return [(r["date"], r["voice_connector_id"], r["stage"], r["reason"], r["source"], r["call_id"],
             r["source_offset"], r["detail"]) for r in rows]


def test_the_seeded_calls_still_land_whole_beside_the_bad_objects(bad_night):
    world, _, lake, summary, _ = bad_night
    assert sorted(r["call_id"] for r in table(lake, "calls")) == sorted(c["call_id"] for c in world.truth.calls)
    assert summary["calls"] == len(world.truth.calls)


def test_a_50_mb_junk_object_is_one_bad_json_row_at_offset_0(bad_night):
    world, _, lake, _, _ = bad_night
    assert shown(failures_by_key(world, lake)[JUNK_KEY]) == [
        (DATE, "unknown", "records", "bad_json", "connect", None, 0,
         f"not valid JSON (Expecting value); {JUNK_BYTES} bytes skipped to the end of the object")]


def test_a_gzip_that_inflates_to_1_gib_is_one_too_large_row(bad_night):
    world, _, lake, _, _ = bad_night
    assert shown(failures_by_key(world, lake)[BOMB_KEY]) == [
        (DATE, "unknown", "records", "too_large", "connect", None, 0,
         "the object inflates to more than the 256 MB a record object may hold (--max_record_object_mb); "
         "none of it was read")]


def test_nul_only_and_empty_objects_are_reported_not_lost(bad_night):
    world, _, lake, _, _ = bad_night
    found = failures_by_key(world, lake)
    assert shown(found[NUL_KEY]) == [
        (DATE, "unknown", "records", "empty_object", "connect", None, 0,
         "the object holds no record: 1048576 bytes of whitespace or NUL padding, no record")]
    assert shown(found[EMPTY_KEY]) == [
        (DATE, "unknown", "records", "empty_object", "connect", None, 0, "the object holds no record: empty")]


def test_records_dated_where_no_run_reads_them_are_date_out_of_range_under_the_run_s_date(bad_night):
    world, vc_id, lake, _, _ = bad_night
    found = failures_by_key(world, lake)
    first = len(voice_ctr(*DATED_CTRS[0]))
    window = "which the run of {} does not read (it reads 1 h before its day to 24 h after it, --lookahead_hours)"
    assert shown(found[DATED_KEY]) == [
        (DATE, INSTANCE, "records", "date_out_of_range", "connect", DATED_CTRS[0][0], 0,
         "the call starts on 2014-05-14 (UTC) but its record arrived in the 2024/05/14/14 folder, "
         + window.format("2014-05-14")),
        (DATE, INSTANCE, "records", "date_out_of_range", "connect", DATED_CTRS[1][0], first,
         "the call starts on 9999-12-30 (UTC) but its record arrived in the 2024/05/14/14 folder, "
         + window.format("9999-12-30")),
    ]  # the CTR of 2024-05-13 is left to that day's run, which lists this folder in its look-ahead
    [sdr] = [rows for key, rows in found.items() if SDR_TX in key]
    assert shown(sdr) == [
        (DATE, vc_id, "records", "date_out_of_range", "chime", SDR_TX, 0,
         "the call starts on 2014-05-14 (UTC) but its SDR is filed under 2024-05-14, a folder only the "
         "run of 2024-05-14 reads")]


def test_a_failed_sdr_is_filed_under_the_voice_connector_its_key_names(bad_night):
    world, vc_id, lake, _, _ = bad_night
    planted = next(b for b in world.truth.bad_records if b["source"] == "chime")
    [row] = failures_by_key(world, lake)[planted["key"]]
    assert (row["voice_connector_id"], row["reason"], row["detail"]) == (
        vc_id, "missing_field", "TransactionId is missing")


def test_every_failure_row_is_one_planted_or_seeded_bad_record(bad_night):
    world, _, lake, summary, _ = bad_night
    found = failures_by_key(world, lake)
    assert sum(len(rows) for rows in found.values()) == 7 + len(world.truth.bad_records) == summary["failed"]
    assert summary["failures_by_reason"] == {"bad_json": 2, "date_out_of_range": 3, "empty_object": 2,
                                             "missing_field": 1, "too_large": 1}


def test_the_cap_is_the_run_s_max_record_object_mb_and_a_listed_size_over_it_is_never_read(bad_night, tmp_path):
    world, _, _, _, _ = bad_night
    args = [a for a in pipeline_args(world, tmp_path) if not a.startswith(("--sdr_prefix", "--events_prefix"))]
    run(args + ["--max_record_object_mb=5"])  # the bomb's 4.5 MiB pass the listing, not the inflation
    found = failures_by_key(world, tmp_path)
    assert shown(found[JUNK_KEY]) == [
        (DATE, "unknown", "records", "too_large", "connect", None, 0,
         f"the object is {JUNK_BYTES} bytes, more than the 5 MB a record object may hold (--max_record_object_mb); "
         "none of it was read")]
    assert shown(found[BOMB_KEY]) == [
        (DATE, "unknown", "records", "too_large", "connect", None, 0,
         "the object inflates to more than the 5 MB a record object may hold (--max_record_object_mb); "
         "none of it was read")]
    assert [r["reason"] for r in found[NUL_KEY]] == ["empty_object"]


def test_a_re_run_removes_strays_at_any_depth_under_its_dates_and_nothing_else(bad_night):
    world, vc_id, lake, _, digests = bad_night
    strays = [f"calls/date={DATE}/stray.parquet", f"audio/date={DATE}/voice_connector_id={vc_id}/sub/nested.wav",
              f"failures/date={DATE}/voice_connector_id=unknown/a/b/c/deep.parquet",
              f"_work/date={DATE}/chime/{vc_id}/call/channel-0.f32", f"_work/date={DATE}/loose"]
    kept = [f"calls/date=2024-05-13/voice_connector_id={vc_id}/part-00000.parquet", "calls/README.txt",
            f"audio/date=2024-05-15/voice_connector_id={vc_id}/sub/nested.wav", "_work/date=2024-05-13/loose",
            f"notes/date={DATE}/mine.txt", "_runs/2024-05-13/summary.json"]
    for relative in strays + kept:
        (lake / relative).parent.mkdir(parents=True, exist_ok=True)
        (lake / relative).write_bytes(b"not written by this run")
    again = run(pipeline_args(world, lake))
    after = file_digests(lake)
    assert [p for p in strays if (lake / p).exists()] == []
    assert not (lake / "_work" / f"date={DATE}").exists()
    assert all((lake / p).read_bytes() == b"not written by this run" for p in kept)
    summary_file = f"_runs/{DATE}/summary.json"
    assert {k: v for k, v in after.items() if k != summary_file and k not in kept} == \
        {k: v for k, v in digests.items() if k != summary_file}
    assert again["counters"]["lake.stale_files_removed"] == 3  # the scratch is not counted as stale


def test_an_object_listed_larger_than_the_cap_is_refused_unread():
    failure = read_records.too_large(f"s3://b/{PREFIX_SDR}Amazon-Chime-Voice-Connector-SDRs/json/vc1/2024/05/14/"
                                     "15.00.00.000_tx", 3 * 2**20, 2**20, "chime")
    assert (failure.reason, failure.date, failure.partition_id, failure.source_offset, failure.detail) == (
        "too_large", DATE, "vc1", 0, "the object is 3145728 bytes, more than the 1 MB a record object may hold "
                                     "(--max_record_object_mb); none of it was read")
    assert read_records.too_large("s3://b/x", 2**20, 2**20, "connect") is None


@pytest.mark.parametrize("key, day, listed", [
    ("ctr/2024/05/13/23/x", "2024-05-14", True),  # the hour before the day
    ("ctr/2024/05/13/22/x", "2024-05-14", False),
    ("ctr/2024/05/15/23/x", "2024-05-14", True),  # the last hour of a 24 h look-ahead
    ("ctr/2024/05/16/00/x", "2024-05-14", False),
    ("ctr/2024/05/14/14/x", "9999-12-31", False),
    ("ctr/no-date-folder/x", "2024-05-14", False),
    (f"{PREFIX_SDR}Amazon-Chime-Voice-Connector-SDRs/json/vc1/2024/05/14/15.00.00.000_tx", "2024-05-14", True),
    (f"{PREFIX_SDR}Amazon-Chime-Voice-Connector-SDRs/json/vc1/2024/05/14/15.00.00.000_tx", "2024-05-15", False),
])
def test_which_run_reads_a_record_follows_the_folders_each_run_lists(key, day, listed):
    assert read_records.read_by_run_of(key, day, 24) is listed


# --------------------------------------------------------------------------- cost, measured apart

# Peak RSS from VmHWM: getrusage's ru_maxrss survives exec, so a child forked from a big pytest
# process would report the parent's size.
MEASURE = """
import json, re, sys, time
from voicelake.records import firehose
from voicelake.model import Failure
data = open(sys.argv[1], "rb").read()
started = time.perf_counter()
rows = [f.__dict__ for f in firehose.read_records(data, source="connect", source_key="k")]
seconds = time.perf_counter() - started
peak_kb = int(re.search(r"VmHWM:\\s*(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}))
"""


def measured(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    print(f"{path.name}: {result['seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
    return result


def test_junk_and_a_gzip_bomb_are_read_in_bounded_memory(tmp_path):
    junk, bomb = tmp_path / "junk-50mb", tmp_path / "bomb-1gib.gz"
    junk.write_bytes(random.Random(10).randbytes(JUNK_BYTES))
    bomb.write_bytes(gzip_bomb(2**30))
    junk_result, bomb_result = measured(junk), measured(bomb)
    assert [(r["reason"], r["source_offset"]) for r in junk_result["rows"]] == [("bad_json", 0)]
    assert [(r["reason"], r["source_offset"]) for r in bomb_result["rows"]] == [("too_large", 0)]
    # 50 MB of bytes, their text (2 bytes a character once non-UTF-8 bytes are escaped) and its
    # byte offsets come to ~250 MB; the bomb never holds more than a 1 MiB piece of what it inflates.
    assert junk_result["peak_rss_mb"] < 600
    assert bomb_result["peak_rss_mb"] < 100
    assert firehose.DEFAULT_MAX_OBJECT_MB == 256


def test_a_failure_whose_key_names_no_day_is_the_run_s_own_and_one_of_another_day_is_left_to_it():
    rows = failure_rows._ToRow([DATE, "2024-05-15"])
    undated = Failure(stage="records", reason="bad_json", detail="d", source="connect", source_key="s3://b/x")
    assert [row[:3] for row in rows.process(undated)] == [("failures", DATE, "unknown")]
    assert list(rows.process(read_records.dated(
        Failure(stage="records", reason="bad_json", detail="d", source_key="s3://b/ctr/2024/05/16/00/x")))) == []
