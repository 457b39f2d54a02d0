"""`voicelake export`: the demo lake as ML training sets, read back by the real libraries.

The lake comes from the pipeline run on the seeded demo day (which keeps the 8 kHz source WAVs
by default); the S3 copy of it is served by the local S3 server.  Oracles:
``datasets`` and ``lhotse`` loading the export, soundfile reading the lake's own WAVs, DuckDB
summing the segments table, and librosa's own feature calls.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import duckdb
import librosa
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.export import main as export_main
from pipeline.export import run as export
from pipeline.run import run as run_lake
from tests.pipeline_runs import HIVE, file_digests, pipeline_args
from voicelake.export.lake import LakeCall, wav_uri
from voicelake.export.shards import assign_shards
from voicelake.export.units import Segment, SplitOptions, UnitOptions, make_units, split_of

SPLITS = "--splits=train=0.5,dev=0.25,test=0.25"
EVERY_PHASE = "--phases=ivr,queue,agent,hold,after,call"


@pytest.fixture(scope="module")
def lake(world, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export-lake")
    run_lake(pipeline_args(world, root))
    return root


@pytest.fixture(scope="module")
def s3_lake(world, lake) -> str:
    """The same lake under s3://, uploaded file by file."""
    client = world.s3.client()
    bucket = "export-lake"
    client.create_bucket(Bucket=bucket)
    for path in sorted(lake.rglob("*")):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=f"lake/{path.relative_to(lake)}", Body=path.read_bytes())
    return f"s3://{bucket}/lake"


def run_export(lake_root, out: Path, *args: str) -> dict:
    return export([f"--lake={lake_root}", f"--out={out}", "--dates=2024-05-14", "--runner=FnApiRunner",
                   SPLITS, *args])


def segments_table(lake: Path) -> list[dict]:
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{lake}/segments/**/*.parquet', {HIVE})")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def conversation_segments(lake: Path) -> list[dict]:
    """The segments a default export takes: those of the agent phase or of a one-phase call."""
    return [s for s in segments_table(lake) if s["phase"] in ("agent", "call")]


def segment_key(row: dict) -> tuple:
    return row["call_id"], row["channel"], row["start_ms"], row["end_ms"], row["phase"]


def units_per_phase(lines: list[dict]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for line in lines:
        counted[line["phase"]] = counted.get(line["phase"], 0) + 1
    return counted


def segments_per_phase(lake: Path) -> dict[str, int]:
    return dict(duckdb.sql(f"SELECT phase, count(*) FROM read_parquet('{lake}/segments/**/*.parquet', "
                           f"{HIVE}) GROUP BY phase").fetchall())


def lake_channel(lake: Path, date: str, partition: str, call_id: str, channel: int, source=False):
    """A channel of the lake's WAV as float32, read with soundfile (not the export's reader)."""
    name = f"{call_id}.8k.wav" if source else f"{call_id}.wav"
    samples, rate = sf.read(lake / f"audio/date={date}/voice_connector_id={partition}/{name}",
                            dtype="float32", always_2d=True)
    return samples[:, channel], rate


def split_rule(call_id: str) -> str:
    """The documented split rule, recomputed: sha256 of the call id over 2^64 vs 0.5, 0.75."""
    place = int(hashlib.sha256(call_id.encode()).hexdigest()[:16], 16) / 2 ** 64
    return "train" if place < 0.5 else "dev" if place < 0.75 else "test"


# --- Hugging Face -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_export(s3_lake, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf")
    summary = run_export(s3_lake, out, "--format=hf", "--features=logmel,mfcc", "--shard_mb=1")
    return out, summary


@pytest.fixture(scope="module")
def hf_rows(hf_export):
    from datasets import Audio, load_dataset

    out, _ = hf_export
    ds = load_dataset("parquet", data_files={s: str(out / f"data/{s}-*.parquet")
                                             for s in ("train", "dev", "test")})
    assert isinstance(ds["train"].features["audio"], Audio)  # the schema's huggingface metadata
    # datasets 5 decodes Audio with torchcodec; without it, take the WAV bytes and read them
    return {split: list(ds[split].cast_column("audio", Audio(decode=False)).with_format("numpy"))
            for split in ds}


def test_hf_shards_load_with_datasets_and_hold_the_speakers_channel(lake, hf_rows):
    rows = [r for split in hf_rows.values() for r in split]
    # by default, exactly the conversation's segments, each unit labelled with its segment's phase
    assert sorted(segment_key(r) for r in rows) == sorted(segment_key(s) for s in conversation_segments(lake))
    for row in rows:
        samples, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
        assert rate == row["sample_rate"] == 16000 and samples.ndim == 1
        channel, _ = lake_channel(lake, row["date"], row["voice_connector_id"], row["call_id"],
                                  int(row["channel"]))
        assert np.array_equal(samples, channel[row["start_ms"] * 16:row["end_ms"] * 16]), row["id"]
        assert row["audio"]["path"] == f"{row['id']}.wav"


def test_hf_export_is_sharded_by_size_and_named_like_hf_splits(hf_export):
    out, _ = hf_export
    names = sorted(p.name for p in (out / "data").iterdir())
    train = [n for n in names if n.startswith("train-")]
    assert len(train) > 1, names  # --shard_mb=1 and ~3 MB of training audio
    assert train == [f"train-{i:05d}-of-{len(train):05d}.parquet" for i in range(len(train))]


def test_no_call_is_in_two_splits_and_each_follows_the_hash_rule(lake, hf_rows):
    calls = {split: {r["call_id"] for r in rows} for split, rows in hf_rows.items()}
    assert not calls["train"] & calls["dev"] and not calls["train"] & calls["test"] \
        and not calls["dev"] & calls["test"]
    assert all(split_rule(c) == split for split, ids in calls.items() for c in ids)
    # every call with a conversation: a contact that never reached an agent has no unit
    assert sum(len(ids) for ids in calls.values()) == len({s["call_id"] for s in conversation_segments(lake)})


def test_total_duration_per_role_equals_the_segments_table(lake, hf_rows):
    expected = dict(duckdb.sql(f"SELECT role, sum(duration_ms) FROM read_parquet("
                               f"'{lake}/segments/**/*.parquet', {HIVE}) "
                               "WHERE phase IN ('agent', 'call') GROUP BY role").fetchall())
    exported: dict[str, int] = {}
    for rows in hf_rows.values():
        for r in rows:
            exported[r["role"]] = exported.get(r["role"], 0) + int(r["duration_ms"])
    assert exported == expected


def test_features_have_the_shapes_of_the_parameters_and_equal_librosa(hf_rows):
    for row in hf_rows["train"]:
        y, sr = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
        frames = 1 + len(y) // 160  # centred 10 ms hops at 16 kHz
        assert row["logmel"].shape == (frames, 80) and row["mfcc"].shape == (frames, 13)
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=160, win_length=400,
                                             n_mels=80)
        assert np.array_equal(row["logmel"], librosa.power_to_db(mel).T)
        mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_fft=512, hop_length=160, win_length=400,
                                    n_mels=80)
        assert np.array_equal(row["mfcc"], mfcc.T)


def test_the_dataset_card_counts_units_and_hours_per_split_and_role(hf_export, hf_rows):
    out, summary = hf_export
    card = (out / "README.md").read_text()
    assert card.startswith("---\npretty_name:")
    assert "    path: data/train-*.parquet" in card and "        sampling_rate: 16000" in card
    for split, rows in hf_rows.items():
        for role in ("customer", "agent"):
            mine = [r for r in rows if r["role"] == role]
            hours = sum(int(r["duration_ms"]) for r in mine) / 3_600_000
            calls = len({r["call_id"] for r in rows})
            assert f"| {split} | {role} | {len(mine)} | {hours:.3f} | {calls} |" in card
    rows = [r for split in hf_rows.values() for r in split]
    for phase in ("agent", "call"):
        mine = [r for r in rows if r["phase"] == phase]
        assert f"| {phase} | {len(mine)} | {sum(int(r['duration_ms']) for r in mine) / 3_600_000:.3f} |" in card
    assert "- **Phases:** segments in agent, call: the conversation, i.e. the agent phase of an Amazon " \
           "Connect contact or the whole of a one-phase call. Left out: ivr, queue, hold, after. In " \
           "ivr, queue, hold and after no agent talks to the customer: the agent channel carries a " \
           "flow's prompts, bot speech or music, which the lake files as agent speech" in card
    assert "| `phase` | Phase of the call the unit's segments lie in:" in card
    assert "method silero-v5(threshold=0.5,background_db=15.0) (silero-v5: Silero VAD v5" in card
    assert "Source dates:** 2024-05-14" in card
    assert summary["failures"] == {} and (out / "failures.jsonl").read_bytes() == b""


def test_reexport_from_a_local_copy_gives_byte_identical_files(lake, hf_export):
    out, _ = hf_export
    first = file_digests(out)
    (out / "data" / "stale-00000-of-00001.parquet").write_bytes(b"left by an earlier export")
    run_export(lake, out, "--format=hf", "--features=logmel,mfcc", "--shard_mb=1")
    assert file_digests(out) == first


# --- lhotse -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lhotse_export(lake, tmp_path_factory):
    out = tmp_path_factory.mktemp("lhotse")
    run_export(lake, out, "--format=lhotse", "--sample_rate=8000", "--roles=customer",
               "--merge_pause_ms=300", "--max_duration_ms=4000", "--min_duration_ms=500",
               "--pad_ms=100", "--features=logmel")
    return out


def test_lhotse_cuts_load_the_customers_source_samples(lake, lhotse_export, monkeypatch):
    from lhotse import CutSet, RecordingSet, SupervisionSet

    monkeypatch.chdir(lhotse_export)  # manifest paths are relative to the export folder
    cuts = []
    for split in ("train", "dev", "test"):
        for n in sorted(lhotse_export.glob(f"recordings_{split}-*.jsonl")):
            shard = n.name.split("_", 1)[1]
            recordings = RecordingSet.from_file(n).to_eager()
            supervisions = SupervisionSet.from_file(f"supervisions_{shard}").to_eager()
            cuts += list(CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
                         .trim_to_supervisions(keep_overlapping=False))
    assert cuts
    for cut in cuts:
        meta = cut.supervisions[0].custom
        assert meta["role"] == "customer" and cut.channel == 0 and cut.sampling_rate == 8000
        assert meta["phase"] in ("agent", "call")
        assert 500 + 0 <= meta["duration_ms"] <= 4000 + 2 * 100
        source, _ = lake_channel(lake, meta["date"], meta["voice_connector_id"], cut.recording_id, 0,
                                 source=True)
        assert np.array_equal(cut.load_audio()[0], source[meta["start_ms"] * 8:meta["end_ms"] * 8])


def test_lhotse_cut_manifests_carry_the_features_as_arrays(lhotse_export, monkeypatch):
    from lhotse import CutSet

    monkeypatch.chdir(lhotse_export)
    for path in sorted(lhotse_export.glob("cuts_*.jsonl")):
        for cut in CutSet.from_file(path):
            y = cut.load_audio()[0]
            whole = cut.custom["logmel"].array.load()  # the stored array, every centred frame
            assert whole.shape == (1 + len(y) // 80, 80)  # 10 ms hops at 8 kHz
            mel = librosa.feature.melspectrogram(y=y, sr=8000, n_fft=512, hop_length=80,
                                                 win_length=200, n_mels=80)
            assert np.array_equal(whole, librosa.power_to_db(mel).T)
            # lhotse's own view: its frame count for the cut's duration, from the start
            assert np.array_equal(cut.load_logmel(), whole[:len(cut.load_logmel())])


# --- NeMo -------------------------------------------------------------------------------------

def nemo_lines(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(out.glob("manifest_*.jsonl"))
            for line in path.read_text().splitlines()]


def test_nemo_manifests_point_into_channel_wavs_with_offset_and_duration(lake, tmp_path):
    run_export(lake, tmp_path, "--format=nemo", "--unit=channel")
    lines = nemo_lines(tmp_path)
    assert len(lines) == 7 * 2
    for line in lines:
        info = sf.info(tmp_path / line["audio_filepath"])
        start = round(line["offset"] * info.samplerate)
        samples, _ = sf.read(tmp_path / line["audio_filepath"], dtype="float32", start=start,
                             frames=round(line["duration"] * info.samplerate))
        channel, _ = lake_channel(lake, line["date"], line["voice_connector_id"], line["call_id"],
                                  line["channel"])
        assert info.channels == 1 and line["offset"] == 0 and line["duration_ms"] == line["call_duration_ms"]
        assert line["phase"] is None  # a whole channel spans every phase
        assert np.array_equal(samples, channel[:len(samples)]) and len(channel) - len(samples) < 16


def test_call_units_keep_every_channel(lake, tmp_path):
    run_export(lake, tmp_path, "--format=nemo", "--unit=call")
    lines = nemo_lines(tmp_path)
    assert len(lines) == 7 and {line["channel"] for line in lines} == {None}
    for line in lines:
        assert sf.info(tmp_path / line["audio_filepath"]).channels == 2
        assert line["duration_ms"] == line["call_duration_ms"] and line["role"] is None


def test_the_default_takes_the_conversations_segments_and_phases_asks_for_others(lake, tmp_path):
    in_lake = segments_per_phase(lake)
    assert set(in_lake) - {"agent", "call"}, in_lake  # the lake has segments outside conversations
    run_export(lake, tmp_path / "default", "--format=nemo")
    assert units_per_phase(nemo_lines(tmp_path / "default")) == \
        {p: n for p, n in in_lake.items() if p in ("agent", "call")}
    run_export(lake, tmp_path / "every", "--format=nemo", EVERY_PHASE)
    assert units_per_phase(nemo_lines(tmp_path / "every")) == in_lake
    card = (tmp_path / "every/README.md").read_text()
    assert "- **Phases:** segments in ivr, queue, agent, hold, after, call (ivr, queue, hold, after: " \
           "outside the conversation, asked for with --phases). In ivr, queue, hold and after" in card
    assert "That is why only agent and call are exported by default." in card
    assert f"| ivr | {in_lake['ivr']} |" in card


def test_the_phase_travels_with_each_lhotse_supervision(lake, tmp_path):
    run_export(lake, tmp_path, "--format=lhotse", "--phases=ivr")
    supervisions = [json.loads(line) for path in sorted(tmp_path.glob("supervisions_*.jsonl"))
                    for line in path.read_text().splitlines()]
    assert len(supervisions) == segments_per_phase(lake)["ivr"]
    assert {s["custom"]["phase"] for s in supervisions} == {"ivr"}


def test_a_lake_written_before_phases_exports_every_segment_as_one_phase_call(lake, tmp_path):
    old = tmp_path / "lake"
    shutil.copytree(lake, old)
    for path in (old / "segments").rglob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["phase"]), path)
    run_export(old, tmp_path / "out", "--format=nemo")
    assert units_per_phase(nemo_lines(tmp_path / "out")) == {"call": len(segments_table(lake))}


@pytest.mark.parametrize("args, message", [
    (["--phases=agent,lunch"],
     "unknown phase 'lunch': the phases are ivr, queue, agent, hold, after, call"),
    (["--unit=channel", "--phases=agent"],
     "phases pick segments: channel units span the whole call, every phase; use segment units to "
     "choose phases"),
])
def test_phases_that_cannot_be_exported_are_refused_in_one_line(tmp_path, capsys, args, message):
    status = export_main([f"--lake={tmp_path}", f"--out={tmp_path / 'out'}", "--dates=2024-05-14", *args])
    assert (status, capsys.readouterr().err) == (2, f"voicelake export: {message}\n")
    assert not (tmp_path / "out").exists()


def test_a_call_without_its_source_wav_is_a_failure_with_the_fix_in_its_detail(lake, tmp_path):
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    talking = {s["call_id"] for s in conversation_segments(lake)}
    gone = next(p for p in sorted(copy.rglob("*.8k.wav")) if p.name[:-len(".8k.wav")] in talking)
    gone.unlink()
    summary = run_export(copy, tmp_path / "out", "--format=nemo", "--sample_rate=8000")
    failures = [json.loads(line) for line in (tmp_path / "out/failures.jsonl").read_text().splitlines()]
    assert [(f["call_id"], f["reason"]) for f in failures] == [(gone.name[:-len(".8k.wav")], "no_source_wav")]
    assert "--no_write_raw_channels" in failures[0]["detail"]
    assert summary["failures"] == {"no_source_wav": 1}
    assert len({line["call_id"] for line in nemo_lines(tmp_path / "out")}) == len(talking) - 1


# --- units, splits, shards, paths: pure functions ---------------------------------------------

SEGMENTS = [Segment(0, 1000, 2000), Segment(0, 2200, 3000), Segment(0, 5000, 14000),
            Segment(1, 1800, 2500)]
ROLES = {0: "customer", 1: "agent"}


def spans(units):
    return [(u.channel, u.start_ms, u.end_ms) for u in units]


def test_segment_units_are_the_segments_by_default():
    units = make_units("c", 20000, ROLES, SEGMENTS, UnitOptions())
    assert spans(units) == [(0, 1000, 2000), (0, 2200, 3000), (0, 5000, 14000), (1, 1800, 2500)]
    assert [u.id for u in units] == ["c-0-00000", "c-0-00001", "c-0-00002", "c-1-00003"]
    assert [u.overlap_ms for u in units] == [200, 300, 0, 500]


def test_merging_splitting_dropping_and_padding():
    options = UnitOptions(merge_pause_ms=300, max_ms=4000, min_ms=1500, pad_ms=250, roles=("customer",))
    units = make_units("c", 14100, ROLES, SEGMENTS, options)
    # 1000-2000 + 2200-3000 merge (pause 200); 5000-14000 splits into 3 x 3000; padding is clipped
    # at the call's end; the agent's channel is not wanted
    assert spans(units) == [(0, 750, 3250), (0, 4750, 8250), (0, 7750, 11250), (0, 10750, 14100)]
    assert [(u.segments, u.speech_ms) for u in units] == [(2, 1800), (1, 3250), (1, 3500), (1, 3250)]


def test_merging_stops_at_the_maximum_duration():
    units = make_units("c", 20000, ROLES, SEGMENTS[:3], UnitOptions(merge_pause_ms=5000, max_ms=2500))
    assert spans(units) == [(0, 1000, 3000), (0, 5000, 7250), (0, 7250, 9500), (0, 9500, 11750),
                            (0, 11750, 14000)]


def test_channel_and_call_units_span_the_call():
    assert spans(make_units("c", 20000, ROLES, SEGMENTS, UnitOptions(kind="channel"))) == \
        [(0, 0, 20000), (1, 0, 20000)]
    (call,) = make_units("c", 20000, ROLES, SEGMENTS, UnitOptions(kind="call"))
    assert (call.channel, call.start_ms, call.end_ms, call.speech_ms, call.overlap_ms, call.id) == \
        (None, 0, 20000, 1000 + 800 + 9000 + 200, 500, "c")


# ivr, queue, agent with a hold inside, after: agent on channel 1, customer on channel 0
PHASED = [Segment(1, 0, 2000, "ivr"), Segment(0, 2500, 3000, "ivr"), Segment(1, 5000, 6000, "queue"),
          Segment(0, 8000, 9000, "agent"), Segment(1, 9200, 10000, "agent"),
          Segment(0, 10100, 10500, "agent"), Segment(1, 12000, 13000, "hold"),
          Segment(1, 13100, 14000, "agent"), Segment(0, 16000, 17000, "after")]


def phased(units):
    return [(u.channel, u.start_ms, u.end_ms, u.phase) for u in units]


def test_segment_units_come_from_the_conversation_unless_other_phases_are_asked_for():
    assert phased(make_units("c", 20000, ROLES, PHASED, UnitOptions())) == \
        [(0, 8000, 9000, "agent"), (0, 10100, 10500, "agent"), (1, 9200, 10000, "agent"),
         (1, 13100, 14000, "agent")]
    assert phased(make_units("c", 20000, ROLES, PHASED, UnitOptions(phases=("ivr", "hold")))) == \
        [(0, 2500, 3000, "ivr"), (1, 0, 2000, "ivr"), (1, 12000, 13000, "hold")]


def test_merging_never_crosses_a_phase_change_or_a_segment_left_out():
    everything = ("ivr", "queue", "agent", "hold", "after", "call")
    # the agent's two segments around the hold stay apart: the hold's music would sit between them
    assert phased(make_units("c", 20000, ROLES, PHASED, UnitOptions(merge_pause_ms=5000))) == \
        [(0, 8000, 10500, "agent"), (1, 9200, 10000, "agent"), (1, 13100, 14000, "agent")]
    assert phased(make_units("c", 20000, ROLES, PHASED,
                             UnitOptions(merge_pause_ms=5000, phases=everything))) == \
        [(0, 2500, 3000, "ivr"), (0, 8000, 10500, "agent"), (0, 16000, 17000, "after"),
         (1, 0, 2000, "ivr"), (1, 5000, 6000, "queue"), (1, 9200, 10000, "agent"),
         (1, 12000, 13000, "hold"), (1, 13100, 14000, "agent")]


def test_channel_and_call_units_span_every_phase():
    assert phased(make_units("c", 20000, ROLES, PHASED, UnitOptions(kind="channel"))) == \
        [(0, 0, 20000, None), (1, 0, 20000, None)]


def test_date_ranges_override_the_hash_and_fractions_cover_every_call():
    options = SplitOptions(fractions=(("train", 0.9), ("dev", 0.1)),
                           date_ranges=(("test", "2024-05-20", "2024-05-31"),))
    assert split_of("any", "2024-05-25", options) == "test"
    assert {split_of(f"call-{i}", "2024-05-14", options) for i in range(200)} == {"train", "dev"}
    assert options.names == ("train", "dev", "test")


def test_shards_take_calls_in_id_order_up_to_the_size():
    assert assign_shards([("c", 5), ("a", 6), ("b", 5), ("d", 20)], 10) == \
        {"a": (0, 3), "b": (1, 3), "c": (1, 3), "d": (2, 3)}


def test_wavs_are_found_under_the_lake_given_wherever_the_lake_was_written():
    def call(wav_path):
        return LakeCall("2024-05-14", "vc1", {"call_id": "c1", "wav_path": wav_path}, (), ())

    written_elsewhere = call("s3://old-bucket/lake/audio/date=2024-05-14/voice_connector_id=vc1/c1.wav")
    assert wav_uri("s3://b/lake", written_elsewhere) == \
        "s3://b/lake/audio/date=2024-05-14/voice_connector_id=vc1/c1.wav"
    assert wav_uri("/lake", call(None), source=True) == \
        "/lake/audio/date=2024-05-14/voice_connector_id=vc1/c1.8k.wav"


def test_lhotse_call_units_are_multi_channel_cuts(lake, tmp_path, monkeypatch):
    from lhotse import CutSet

    run_export(lake, tmp_path, "--format=lhotse", "--unit=call", "--splits=train=1")
    monkeypatch.chdir(tmp_path)
    (path,) = tmp_path.glob("cuts_train-*.jsonl")
    cuts = list(CutSet.from_file(path))
    assert len(cuts) == 7
    for cut in cuts:
        stereo, _ = sf.read(cut.recording.sources[0].source, dtype="float32", always_2d=True)
        audio = cut.load_audio()
        assert type(cut).__name__ == "MultiCut" and audio.shape[0] == 2
        n = min(audio.shape[1], len(stereo))  # the unit ends on the call's whole ms
        assert abs(audio.shape[1] - len(stereo)) < 16 and np.array_equal(audio[:, :n], stereo[:n].T)
