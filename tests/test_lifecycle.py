"""The lake's lifecycle on the Hive layout: `voicelake forget` removes every row, WAV and byte of a
call and keeps it out of every later run; `voicelake expire` removes the days past a cut-off; both
refuse what is not a lake.  The oracle of the lake's rows is DuckDB; of its bytes, the files."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main as voicelake
from pipeline.run import run
from runners.local.fingerprint import lake_fingerprint
from tests.pipeline_runs import file_digests, pipeline_args, table
from voicelake import layout, lifecycle

TABLES = ("calls", "channels", "segments", "gaps", "phases", "failures")
FOLDERS = (*TABLES, "audio")


@pytest.fixture(scope="module")
def landed(world, tmp_path_factory):
    """A lake the demo day's first run landed; every test works on a copy of it."""
    lake = tmp_path_factory.mktemp("landed") / "lake"
    run(pipeline_args(world, lake))
    return lake


@pytest.fixture
def lake(landed, tmp_path):
    copy = tmp_path / "lake"
    shutil.copytree(landed, copy)
    return copy


@pytest.fixture
def call_id(world):
    return world.truth.calls[0]["call_id"]


def files_naming(lake: Path, text: str) -> list[str]:
    """`grep -rl text lake`: every file whose bytes or name hold the text's ASCII bytes."""
    needle = text.encode()
    return sorted(str(p.relative_to(lake)) for p in lake.rglob("*")
                  if p.is_file() and (needle in p.read_bytes() or needle in str(p).encode()))


def rows_of(lake: Path, call: str) -> dict[str, list[tuple[str, str]]]:
    """table -> the (date, voice_connector_id) of each row of the call, as DuckDB reads the lake."""
    return {name: [(r["date"], r["voice_connector_id"]) for r in table(lake, name) if r["call_id"] == call]
            for name in TABLES}


def forget(lake: Path, capsys, *args: str) -> tuple[int, str, str]:
    status = voicelake(["forget", "--lake", str(lake), *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_forget_removes_every_row_wav_and_byte_of_the_call_and_nothing_else(lake, call_id, capsys):
    before_rows = rows_of(lake, call_id)
    before = file_digests(lake)
    held = {(name, *place) for name, places in before_rows.items() for place in places}
    assert len(before_rows["calls"]) == 1
    date, partition = before_rows["calls"][0]
    wavs = [layout.wav_relpath(date, partition, call_id), layout.wav_relpath(date, partition, call_id, source=True)]
    assert set(wavs) <= set(before)
    # what the partitions that held the call become: rewritten when another call is left, else removed
    others = {(name, r["date"], r["voice_connector_id"]) for name in TABLES
              for r in table(lake, name) if r["call_id"] != call_id}
    rewritten = sorted(f"{t}/date={d}/voice_connector_id={p}/part-00000.parquet" for t, d, p in held & others)
    removed = sorted(f"{t}/date={d}/voice_connector_id={p}/part-00000.parquet" for t, d, p in held - others)

    status, out, err = forget(lake, capsys, "--call-id", call_id, "never-landed-1")

    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"voicelake forget {lake}: 1 of 2 calls found"
    assert lines[1:7] == [f"  {name}: {len(before_rows[name])} rows removed" for name in TABLES]
    assert lines[7] == (f"  files: {len(rewritten)} Parquet files rewritten, {len(removed)} removed, "
                        "2 WAVs removed")
    assert lines[8:-2] == ([f"    rewritten {p}" for p in rewritten]
                           + [f"    removed {p}" for p in sorted(removed + wavs)])
    assert lines[-2:] == ["  matched nothing: never-landed-1",
                          "  ledger: _erasure/ledger.txt (2 new digests, 2 in all)"]

    assert rows_of(lake, call_id) == dict.fromkeys(TABLES, [])
    assert not any((lake / wav).exists() for wav in wavs)
    assert files_naming(lake, call_id) == []
    assert (lake / "_erasure/ledger.txt").read_text() == "".join(
        f"{d}\n" for d in sorted(hashlib.sha256(b"voicelake-erasure-v1:" + c.encode()).hexdigest()
                                 for c in (call_id, "never-landed-1")))
    # every other file of the lake, the runs' own files included, is byte for byte what it was
    after = file_digests(lake)
    touched = set(rewritten) | set(removed) | set(wavs)
    assert {k: v for k, v in after.items() if k not in touched and not k.startswith("_erasure/")} == \
        {k: v for k, v in before.items() if k not in touched}
    # and the rewritten partitions hold exactly the other calls' rows
    assert sorted(after) == sorted((set(before) - set(removed) - set(wavs)) | {"_erasure/ledger.txt"})


def test_other_calls_keep_their_files_byte_for_byte(lake, call_id, capsys):
    before = lake_fingerprint(lake)
    held = {(name, *place) for name, places in rows_of(lake, call_id).items() for place in places}

    def unaffected(fingerprint):
        return {name: digest for name, digest in fingerprint.items()
                if (p := layout.partition_of(str(lake), f"{lake}/{name}")) is None
                or ((p.folder, p.date, p.partition) not in held and p.folder != "audio")
                or (p.folder == "audio" and layout.call_of_wav(name) != call_id)}

    assert forget(lake, capsys, "--call-id", call_id)[0] == 0
    after = lake_fingerprint(lake)
    assert {k: v for k, v in unaffected(after).items() if not k.startswith("_erasure/")} == unaffected(before)


def test_a_rerun_with_the_media_still_in_kvs_leaves_a_forgotten_call_out(world, lake, call_id, capsys):
    ids = tmp_ids = lake.parent / "forget.txt"
    tmp_ids.write_text(f"# erasure request 1\n\n{call_id}  # the customer asked\n")
    assert forget(lake, capsys, "--call-ids", str(ids))[0] == 0

    summary = run(pipeline_args(world, lake))

    assert summary["counters"]["lake.forgotten_calls"] == 1
    assert summary["calls"] == len(world.truth.calls) - 1
    assert rows_of(lake, call_id) == dict.fromkeys(TABLES, [])
    assert {r["call_id"] for r in table(lake, "calls")} == {c["call_id"] for c in world.truth.calls} - {call_id}
    assert files_naming(lake, call_id) == []


def test_forget_of_a_file_with_a_malformed_id_is_refused_naming_its_line_and_changes_nothing(lake, capsys):
    ids = lake.parent / "ids.txt"
    ids.write_text("# request 7\n\nabc-123\nnot an id!\n")
    before = file_digests(lake)

    assert forget(lake, capsys, "--call-ids", str(ids)) == (
        2, "", f"voicelake forget: {ids} line 4: 'not an id!' is not a call id (letters, digits, . _ -)\n")
    assert file_digests(lake) == before


@pytest.mark.parametrize("command", [["forget", "--call-id", "abc"], ["expire", "--keep-days", "3"]])
def test_a_path_that_is_not_a_lake_is_refused_in_one_line(tmp_path, capsys, command):
    (tmp_path / "photos").mkdir()
    status = voicelake([command[0], "--lake", str(tmp_path), *command[1:]])
    assert (status, capsys.readouterr().err) == (
        2, f"voicelake {command[0]}: {tmp_path} is not a voicelake lake (no calls/ folder)\n")
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]


def test_expire_removes_every_date_before_the_cutoff_and_keeps_the_rest(lake, capsys):
    for folder in FOLDERS:  # two older days, copies of the landed one
        for day in ("2024-05-01", "2024-05-10"):
            shutil.copytree(lake / folder / "date=2024-05-14", lake / folder / f"date={day}")
    kept_before = {k: v for k, v in file_digests(lake).items() if "date=2024-05-01" not in k}

    status = voicelake(["expire", "--lake", str(lake), "--keep-days", "7", "--today", "2024-05-14"])

    assert (status, capsys.readouterr().out) == (0, "\n".join([
        f"voicelake expire {lake}: dates before 2024-05-07 removed (7 date folders)",
        *[f"  {folder}: 2024-05-01" for folder in FOLDERS]]) + "\n")
    assert {r["date"] for name in TABLES for r in table(lake, name)} == {"2024-05-10", "2024-05-14"}
    assert sorted(p.name for p in (lake / "audio").iterdir()) == ["date=2024-05-10", "date=2024-05-14"]
    assert file_digests(lake) == kept_before


def test_expire_refuses_a_negative_number_of_days(lake, capsys):
    status = voicelake(["expire", "--lake", str(lake), "--keep-days", "-1"])
    assert (status, capsys.readouterr().err) == (2, "voicelake expire: --keep-days must be 0 or more, not -1\n")


def test_the_ledger_holds_digests_never_ids(tmp_path):
    (tmp_path / "calls").mkdir()
    assert lifecycle.add_to_ledger(str(tmp_path), ["b-2", "a-1", "b-2"]) == 2
    assert lifecycle.add_to_ledger(str(tmp_path), ["a-1"]) == 0
    text = (tmp_path / "_erasure/ledger.txt").read_text()
    assert text.splitlines() == sorted(lifecycle.digest(c) for c in ("a-1", "b-2"))
    assert b"a-1" not in text.encode() and lifecycle.read_ledger(str(tmp_path)) == {
        lifecycle.digest("a-1"), lifecycle.digest("b-2")}


def test_a_run_never_keeps_the_earlier_landing_of_a_call_the_ledger_names(world, lake, call_id, tmp_path):
    """A forget killed after it wrote the ledger but before its commit: the next run of the day,
    even with the media gone from KVS, does not keep the call it would otherwise keep."""
    from runners.local.kvs_emulator import start_emulator

    lifecycle.add_to_ledger(str(lake), [call_id])
    with start_emulator(tmp_path / "empty-kvs") as gone:
        summary = run(pipeline_args(world, lake, gone.url))
    assert call_id not in {r["call_id"] for r in table(lake, "calls")}
    assert summary["kept_calls"] == len(world.truth.calls) - 1
