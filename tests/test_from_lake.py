"""`voicelake run --from_lake`: history re-analysed from the lake's own source audio, never from KVS.

A day landed from KVS (with the source WAVs, now the default) is run again with --from_lake into a
copy of its lake, against a KVS that holds no media at all: the lake must come out byte for byte
as it was, with another VAD exactly as a first run with that VAD writes it, and a call whose source
WAV is gone must fail as no_source_audio while the others land as before.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import apache_beam as beam
import pytest

from pipeline import graph
from pipeline.options import VoicelakeOptions
from pipeline.run import run, voicelake_options
from runners.local.fingerprint import lake_fingerprint
from runners.local.kvs_emulator import start_emulator
from tests.pipeline_runs import pipeline_args, table
from voicelake.analysis.call_audio import CallWindow, channel_gaps, grid, plan_call_audio
from voicelake.analysis.features import _relative
from voicelake.analysis.source_audio import (
    Landing,
    WavShape,
    audio_channels,
    channel_piece,
    covered,
    mismatch,
    streams_of,
)
from voicelake.audio import ms_to_samples
from voicelake.media.channel_file import Coverage
from voicelake.model import CHIME, CONNECT, CallSpec, StreamSpan

CALL_TABLES = ("calls", "channels", "segments", "gaps", "phases")
# KVS APIs that list or serve media: a --from_lake run calls none of them
MEDIA_APIS = {"/describeStream", "/getDataEndpoint", "/listFragments", "/getMediaForFragmentList"}


@pytest.fixture(scope="module")
def first_lake(world, tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("first") / "lake"
    run(pipeline_args(world, lake))
    return lake


def copy_of(lake: Path, where: Path) -> Path:
    shutil.copytree(lake, where)
    return where


@contextlib.contextmanager
def kvs_without_media(folder: Path):
    """A KVS emulator over an empty store, and the API paths it was asked for."""
    asked: list[str] = []
    with start_emulator(folder) as kvs:
        serve = kvs.service.operation
        kvs.service.operation = lambda path: (asked.append(path), serve(path))[1]
        yield kvs, asked


def source_wav(lake: Path, row: dict) -> Path:
    return lake / f"audio/date={row['date']}/voice_connector_id={row['voice_connector_id']}/{row['call_id']}.8k.wav"


def rows_without(lake: Path, name: str, call_id: str) -> list[dict]:
    """A table's rows but those of one call, with the lake's own location taken out of wav_path."""
    rows = [{k: (v.replace(str(lake), "<lake>") if k == "wav_path" else v) for k, v in row.items()}
            for row in table(lake, name) if row["call_id"] != call_id]
    return sorted(rows, key=repr)


def test_source_audio_is_kept_by_default_and_can_be_left_out():
    assert voicelake_options([]).write_raw_channels is True
    assert voicelake_options(["--write_raw_channels"]).write_raw_channels is True
    assert voicelake_options(["--no_write_raw_channels"]).write_raw_channels is False
    assert VoicelakeOptions(["--no_write_raw_channels"]).view_as(VoicelakeOptions).write_raw_channels is False
    assert VoicelakeOptions([]).view_as(VoicelakeOptions).from_lake is False


def test_from_lake_refuses_to_drop_the_source_audio_it_reads(world, tmp_path):
    opts = VoicelakeOptions(pipeline_args(world, tmp_path, None, "--from_lake", "--no_write_raw_channels"))
    with pytest.raises(ValueError, match="--from_lake rewrites the source audio it reads"):
        graph.build(beam.Pipeline(), opts.view_as(VoicelakeOptions))


@pytest.mark.parametrize("inner_only", [False, True])
def test_covered_ranges_give_back_the_gaps_the_rows_say_to_the_ms(inner_only):
    """Gap rows say their ends to the ms; the channel's covered ranges rebuilt from them must make
    call_audio find the same gaps again, whatever sample inside the ms a hole began or ended on."""
    rate, samples = 8000, 80_000
    window = CallWindow(start_ms=1_000_000, end_ms=1_010_000, shift=0, samples=samples, cut_at_end=True)
    holes = [(803, 9_000), (16_004, 16_013), (40_001, 40_010), (79_990, samples - 1)]
    if not inner_only:  # a Connect channel may start late and be cut at the end: gaps there too
        holes = [(0, 515), *holes[:-1], (79_990, samples)]
    expected = gap_rows(Coverage([(0, samples)]).minus(Coverage(holes)), window, rate, inner_only)
    assert len(expected) == len(holes)
    rebuilt = covered(expected, samples, rate, inner_only=inner_only)
    assert gap_rows(rebuilt, window, rate, inner_only) == expected


def gap_rows(coverage: Coverage, window: CallWindow, rate: int, inner_only: bool) -> list[tuple[int, int]]:
    gaps = channel_gaps(coverage, window, window.samples, rate, inner_only=inner_only)
    return _relative(gaps, window.start_ms, window.end_ms - window.start_ms)


def a_call(source: str) -> CallSpec:
    start = 1_715_680_000_000
    legs = () if source == CONNECT else (StreamSpan("arn:leg-0", start, start + 10_000, channel=0, role="customer"),
                                         StreamSpan("arn:leg-1", start, start + 10_000, channel=1, role="agent"))
    return CallSpec(source=source, call_id="c-1", partition_id="p-1", date="2024-05-14", start_ms=start,
                    end_ms=start + 10_000, streams=legs or (StreamSpan("arn:s", start, start + 10_000),),
                    tag_name="ContactId" if source == CONNECT else "TransactionId", source_key="k")


# (source, stream of each channel, gap rows): a Connect contact may have gaps at a channel's start and,
# cut at the grid's end, at its end; a Chime leg only inner ones; a Connect agent may never have streamed.
LANDINGS = {
    "connect": (CONNECT, ("arn:s", "arn:s"), ((0, 0, 300), (0, 4_000, 4_500), (1, 9_001, 10_000))),
    "chime": (CHIME, ("arn:leg-0", "arn:leg-1"), ((0, 2_000, 2_600), (1, 5_000, 5_001))),
    "connect-silent-agent": (CONNECT, ("arn:s", None), ((0, 7_000, 7_040),)),
}


@pytest.mark.parametrize("name", LANDINGS)
def test_the_streams_made_from_the_lake_plan_the_landed_window_gaps_and_streams(name):
    source, arns, gaps = LANDINGS[name]
    call = a_call(source)
    origin, _ = grid(call)
    landing = Landing(start_ms=origin + 1_234, end_ms=origin + 11_234, sample_rate=8000, channel_count=2,
                      fragments=12, missing_fragments=0, bytes_fetched=34_567, arns=arns, gaps=gaps)
    shift = ms_to_samples(1_234, 8000)
    pieces = {c: channel_piece(f"/scratch/{c}.pcm", landing, c, 80_000, shift=shift, inner_only=source == CHIME)
              for c in audio_channels(landing)}
    streams = streams_of(call, landing, pieces)
    plan = plan_call_audio(call, streams)
    assert (plan.window.start_ms, plan.window.end_ms, plan.window.shift, plan.window.samples) == \
        (landing.start_ms, landing.end_ms, shift, 80_000)
    assert plan.arns == {c: arn for c, arn in enumerate(arns) if arn}
    assert plan.roles == ["customer", "agent"]
    assert [(c, *g) for c, channel in enumerate(plan.gaps)
            for g in _relative(channel, landing.start_ms, 10_000)] == list(gaps)
    assert (sum(s.fragments_kept for s in streams), sum(s.fragment_bytes for s in streams)) == (12, 34_567)


def test_a_source_wav_that_disagrees_with_its_rows_is_named():
    landing = Landing(start_ms=0, end_ms=10_000, sample_rate=8000, channel_count=2, fragments=1,
                      missing_fragments=0, bytes_fetched=1, arns=("a", "a"), gaps=())
    assert mismatch(landing, WavShape(2, 8000, 2, 80_000), 8, 120_000) is None
    assert mismatch(landing, WavShape(2, 16000, 2, 160_000), 8, 120_000) == (
        "the source WAV holds 2 channel(s) of 16-bit audio at 16000 Hz; the call's rows say 2 channel(s) "
        "of 16-bit audio at 8000 Hz")
    assert mismatch(landing, WavShape(2, 8000, 2, 79_992), 8, 120_000) == (
        "the source WAV's 79992 samples end the call at 9999; the call's rows say 10000")
    assert mismatch(landing, WavShape(2, 8000, 2, 80_000), -8, 120_000).startswith(
        "the call's record no longer spans its landed audio")


def test_from_lake_writes_the_same_lake_without_asking_kvs_for_media(world, first_lake, tmp_path):
    lake = copy_of(first_lake, tmp_path / "lake")
    with kvs_without_media(tmp_path / "empty-kvs") as (kvs, asked):
        summary = run(pipeline_args(world, lake, kvs.url, "--from_lake"))
    assert lake_fingerprint(lake) == lake_fingerprint(first_lake)
    assert summary["calls"] == len(world.truth.calls) == 7
    assert summary["counters"]["lake_audio.calls"] == 7
    assert (summary["fragments"], summary["bytes_fetched"]) == (0, 0)
    # at most the preflight's one ListStreams: nothing lists or serves media
    assert not set(asked) & MEDIA_APIS and set(asked) <= {"/listStreams"}


def test_from_lake_with_another_vad_writes_what_a_first_run_with_it_writes(world, first_lake, tmp_path):
    lake = copy_of(first_lake, tmp_path / "lake")
    with kvs_without_media(tmp_path / "empty-kvs") as (kvs, asked):
        run(pipeline_args(world, lake, kvs.url, "--from_lake", "--vad=energy"))
    run(pipeline_args(world, tmp_path / "from-kvs", None, "--vad=energy"))
    assert lake_fingerprint(lake) == lake_fingerprint(tmp_path / "from-kvs")
    assert lake_fingerprint(lake) != lake_fingerprint(first_lake)
    assert {r["vad_method"] for r in table(lake, "calls")} == {"energy-v1"}
    assert not set(asked) & MEDIA_APIS


def test_a_call_without_its_source_wav_fails_as_no_source_audio_and_the_others_land_as_before(
        world, first_lake, tmp_path):
    lake = copy_of(first_lake, tmp_path / "lake")
    gone = min((r for r in table(lake, "calls") if r["source"] == "connect"), key=lambda r: r["call_id"])
    source_wav(lake, gone).unlink()
    with kvs_without_media(tmp_path / "empty-kvs") as (kvs, _):
        summary = run(pipeline_args(world, lake, kvs.url, "--from_lake"))
    failed = [f for f in table(lake, "failures") if f["stage"] != "records"]
    assert [(f["call_id"], f["stage"], f["reason"]) for f in failed] == \
        [(gone["call_id"], "audio", "no_source_audio")]
    assert failed[0]["detail"].startswith(
        f"the lake keeps no source audio for this call ({source_wav(lake, gone)} is missing): "
        "re-run it from KVS while KVS still holds its media, with --write_raw_channels")
    assert summary["failures_by_reason"]["no_source_audio"] == 1
    assert summary["calls"] == 6
    for name in CALL_TABLES:
        assert rows_without(lake, name, gone["call_id"]) == rows_without(first_lake, name, gone["call_id"])
    others = {k: v for k, v in lake_fingerprint(lake).items() if k.startswith("audio/") and gone["call_id"] not in k}
    assert others == {k: v for k, v in lake_fingerprint(first_lake).items()
                      if k.startswith("audio/") and gone["call_id"] not in k}
    assert len(others) == 2 * 6
