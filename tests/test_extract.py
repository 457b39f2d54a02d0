"""Specification of ``voicelake extract``, run as a subprocess on writer-built bodies."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from runners.local import mkv_writer as w
from tests.conftest import shared_path

START_MS = 1_782_912_654_536
SPAN_MS = 1024  # 16 blocks of 64 ms per track and fragment
FIRST_NUMBER = 91343852333181551234925834077012571618243808844


def voicelake() -> str:
    script = Path(sys.executable).with_name("voicelake")
    if not script.exists():
        pytest.fail(f"the voicelake console script is missing next to {sys.executable}: pip install -e .")
    return str(script)


def run_extract(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([voicelake(), "extract", *map(str, args)], capture_output=True, text=True)


def pcm(seed: int) -> bytes:
    return random.Random(seed).randbytes(16 * 1024)


def connect(slot: int, contact: str = "contact-A") -> bytes:
    """The Connect fragment for timeline slot ``slot`` (slot k starts k * 1024 ms after START_MS)."""
    return w.connect_fragment(
        fragment_number=str(FIRST_NUMBER + slot), producer_ms=START_MS + slot * SPAN_MS,
        server_ms=START_MS + slot * SPAN_MS + 170, contact_id=contact, instance_id="instance-1",
        from_customer=pcm(2 * slot), to_customer=pcm(2 * slot + 1), to_customer_first=slot % 2 == 0)


def read_wav(path: Path) -> tuple[tuple[int, int, int], bytes]:
    with wave.open(str(path), "rb") as wav:
        return (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()), wav.readframes(wav.getnframes())


def from_customer(*slots: int) -> bytes:
    return b"".join(pcm(2 * s) for s in slots)


@pytest.fixture
def reused_stream(tmp_path: Path) -> Path:
    """Contact A in slots 0, 1 and 3 (slot 1 stored before slot 0), contact B in slot 2 on the
    same stream, and an in-band error chunk for the fragment of slot 4."""
    body = connect(1) + connect(0) + connect(2, "contact-B") + w.error_chunk(str(FIRST_NUMBER + 4)) + connect(3)
    path = tmp_path / "body.mkv"
    path.write_bytes(body)
    return path


def test_filter_order_gaps_and_errors(reused_stream, tmp_path):
    out = tmp_path / "out"
    done = run_extract(reused_stream, "--out", out, "--contact-id", "contact-A")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["AUDIO_FROM_CUSTOMER.wav", "AUDIO_TO_CUSTOMER.wav",
                                                     "summary.json"]
    params, frames = read_wav(out / "AUDIO_FROM_CUSTOMER.wav")
    assert params == (1, 2, 8000)
    assert frames == from_customer(0, 1, 3)  # timeline order, hole not filled
    assert read_wav(out / "AUDIO_TO_CUSTOMER.wav")[1] == b"".join(pcm(2 * s + 1) for s in (0, 1, 3))

    summary = json.loads((out / "summary.json").read_text())
    assert summary["filter"] == {"contact_id": "contact-A", "transaction_id": None}
    assert [f["fragment_number"] for f in summary["fragments"]] == [str(FIRST_NUMBER + s) for s in (1, 0, 3)]
    first = summary["fragments"][0]
    assert (first["index"], first["producer_ms"], first["server_ms"]) == \
        (0, START_MS + SPAN_MS, START_MS + SPAN_MS + 170)
    assert (first["byte_offset"], first["size"]) == (0, len(connect(1)))
    assert first["tags"]["ContactId"] == "contact-A" and first["truncated"] is False
    assert first["tracks"] == {"AUDIO_TO_CUSTOMER": {"track_number": 2, "blocks": 16, "bytes": 16384},
                               "AUDIO_FROM_CUSTOMER": {"track_number": 1, "blocks": 16, "bytes": 16384}}
    assert summary["skipped_fragments"] == [
        {"index": 2, "fragment_number": str(FIRST_NUMBER + 2), "reason": "ContactId is 'contact-B'"}]
    assert summary["errors"] == [{"index": 3, "fragment_number": str(FIRST_NUMBER + 4),
                                  "code": "FRAGMENT_NOT_FOUND", "error_id": 3000, "message": None}]
    hole = {"start_ms": START_MS + 2 * SPAN_MS, "end_ms": START_MS + 3 * SPAN_MS}
    assert sorted(summary["gaps"], key=lambda g: g["track"]) == [
        {"track": "AUDIO_FROM_CUSTOMER", **hole}, {"track": "AUDIO_TO_CUSTOMER", **hole}]
    assert summary["gaps_filled"] is False and summary["truncated"] is False
    assert summary["parse_error"] is None and summary["warnings"] == []
    track = {t["name"]: t for t in summary["tracks"]}["AUDIO_FROM_CUSTOMER"]
    assert track == {"name": "AUDIO_FROM_CUSTOMER", "file": "AUDIO_FROM_CUSTOMER.wav", "codec_id": "A_AAC",
                     "sample_rate": 8000, "channels": 1, "blocks": 48, "samples": 3 * 8192,
                     "duration_ms": 3 * 1024.0, "start_ms": START_MS, "end_ms": START_MS + 4 * SPAN_MS - 64}


def test_fill_gaps_writes_silence_into_holes(reused_stream, tmp_path):
    out = tmp_path / "out"
    assert run_extract(reused_stream, "--out", out, "--contact-id", "contact-A", "--fill-gaps").returncode == 0
    silence = bytes(2 * 8192)  # 1024 ms at 8 kHz
    assert read_wav(out / "AUDIO_FROM_CUSTOMER.wav")[1] == from_customer(0, 1) + silence + from_customer(3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gaps_filled"] is True and len(summary["gaps"]) == 2
    assert {t["samples"] for t in summary["tracks"]} == {4 * 8192}


def test_without_a_filter_every_contact_is_kept(reused_stream, tmp_path):
    out = tmp_path / "out"
    assert run_extract(reused_stream, "--out", out).returncode == 0
    assert read_wav(out / "AUDIO_FROM_CUSTOMER.wav")[1] == from_customer(0, 1, 2, 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_fragments"] == [] and summary["gaps"] == []


def test_chime_transaction_filter_and_file_name_sanitizing(tmp_path):
    def chime(slot: int, tx: str) -> bytes:
        return w.chime_fragment(fragment_number=str(slot), producer_ms=START_MS + 1000 * slot, server_ms=START_MS,
                                transaction_id=tx, voice_connector_id="vc", call_id="call", pcm=pcm(slot)[:16000])
    legacy = w.chunk(w.info("t", "legacy") + w.tracks([w.Track(1, 1, "Track_audio/L16", "A_AAC")])
                     + w.tags([("TransactionId", "tx-1")]) + w.aws_fragment_tags("9", START_MS, START_MS + 5000)
                     + w.cluster(START_MS + 5000, [w.simple_block(1, 0, b"\x01\x00" * 80)]))
    body = tmp_path / "chime.mkv"
    body.write_bytes(chime(0, "tx-1") + chime(1, "tx-2") + chime(2, "tx-1") + legacy)
    out = tmp_path / "out"
    assert run_extract(body, "--out", out, "--transaction-id", "tx-1").returncode == 0
    assert read_wav(out / "AUDIO.wav")[1] == pcm(0)[:16000] + pcm(2)[:16000]
    assert read_wav(out / "Track_audio_L16.wav")[1] == b"\x01\x00" * 80
    summary = json.loads((out / "summary.json").read_text())
    assert {t["name"]: t["file"] for t in summary["tracks"]} == {
        "AUDIO": "AUDIO.wav", "Track_audio/L16": "Track_audio_L16.wav"}
    assert [s["fragment_number"] for s in summary["skipped_fragments"]] == ["1"]
    assert summary["gaps"] == [{"track": "AUDIO", "start_ms": START_MS + 1000, "end_ms": START_MS + 2000}]


def test_truncated_body_keeps_whole_blocks(tmp_path):
    body = tmp_path / "cut.mkv"
    whole = connect(0) + connect(1)
    body.write_bytes(whole[:-3000])  # inside the second fragment's Cluster
    out = tmp_path / "out"
    done = run_extract(body, "--out", out)
    assert done.returncode == 0 and "ends inside a fragment" in done.stderr
    frames = read_wav(out / "AUDIO_FROM_CUSTOMER.wav")[1]
    assert len(frames) % 1024 == 0 and from_customer(0, 1).startswith(frames) and len(frames) > 16384
    summary = json.loads((out / "summary.json").read_text())
    assert summary["truncated"] is True
    assert [f["truncated"] for f in summary["fragments"]] == [False, True]


def test_malformed_body_fails_after_writing_what_came_before(tmp_path):
    body = tmp_path / "bad.mkv"
    body.write_bytes(connect(0) + connect(1) + b"\x42\x86 not matroska")  # breaks fragment 1
    out = tmp_path / "out"
    done = run_extract(body, "--out", out)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "malformed body" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parse_error"]["offset"] == len(connect(0) + connect(1))
    assert [f["index"] for f in summary["fragments"]] == [0]
    assert read_wav(out / "AUDIO_FROM_CUSTOMER.wav")[1] == from_customer(0)


def test_unreadable_body_is_a_usage_error(tmp_path):
    done = run_extract(tmp_path / "absent.mkv", "--out", tmp_path / "out")
    assert done.returncode == 2 and "cannot read" in done.stderr
    assert run_extract("--out", tmp_path).returncode == 2


def jumped(tmp_path: Path, jump_ms: int) -> Path:
    """Contact A in slots 0 and 1, then a fragment whose producer clock jumped ``jump_ms`` ahead."""
    body = tmp_path / "jumped.mkv"
    late = w.connect_fragment(
        fragment_number=str(FIRST_NUMBER + 2), producer_ms=START_MS + 2 * SPAN_MS + jump_ms,
        server_ms=START_MS + 2 * SPAN_MS + 170, contact_id="contact-A", instance_id="instance-1",
        from_customer=pcm(4), to_customer=pcm(5), to_customer_first=True)
    body.write_bytes(connect(0) + connect(1) + late)
    return body


@pytest.mark.parametrize("jump_ms, shown", [(3_600_000, "3600"), (347 * 86_400_000, "29980800")])
def test_fill_gaps_refuses_a_producer_clock_jump_beyond_the_limit_in_one_line(tmp_path, jump_ms, shown):
    out = tmp_path / "out"
    done = run_extract(jumped(tmp_path, jump_ms), "--out", out, "--fill-gaps")
    hole_start, hole_end = START_MS + 2 * SPAN_MS, START_MS + 2 * SPAN_MS + jump_ms
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"voicelake extract: track AUDIO_TO_CUSTOMER has a {shown} s hole from producer time {hole_start} to "
        f"{hole_end} ms; --fill-gaps fills at most --max-gap-s=600 s: raise it, or extract without "
        "--fill-gaps; nothing written\n")
    assert not out.exists()  # nothing half-written, no 57 MB of silence, no MemoryError


def test_the_gap_limit_is_an_option_and_holes_within_it_are_filled(tmp_path):
    body, out = jumped(tmp_path, 90_000), tmp_path / "out"
    assert run_extract(body, "--out", out, "--fill-gaps", "--max-gap-s", "60").returncode == 1
    done = run_extract(body, "--out", out, "--fill-gaps", "--max-gap-s", "90")
    assert done.returncode == 0, done.stderr
    assert read_wav(out / "AUDIO_FROM_CUSTOMER.wav")[1] == from_customer(0, 1) + bytes(2 * 8 * 90_000) + pcm(4)


def test_without_fill_gaps_a_jump_is_only_listed_as_a_gap(tmp_path):
    out = tmp_path / "out"
    assert run_extract(jumped(tmp_path, 3_600_000), "--out", out).returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"track": "AUDIO_FROM_CUSTOMER", "start_ms": START_MS + 2 * SPAN_MS,
            "end_ms": START_MS + 2 * SPAN_MS + 3_600_000} in summary["gaps"]
    assert read_wav(out / "AUDIO_FROM_CUSTOMER.wav")[1] == from_customer(0, 1) + pcm(4)


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_the_gap_limit_must_be_a_number_of_seconds(tmp_path, value):
    done = run_extract(tmp_path / "body.mkv", "--out", tmp_path / "out", "--max-gap-s", value)
    assert done.returncode == 2
    assert f"argument --max-gap-s: not a number of seconds >= 0: {value!r}" in done.stderr


def test_a_body_whose_only_track_is_video_is_refused_in_one_line(tmp_path):
    body = shared_path("samples", "kvs", "output_get_media.mkv")  # a real H.264 GetMedia body
    out = tmp_path / "out"
    done = run_extract(body, "--out", out)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("voicelake extract: no audio track in the body, only track_1 (V_MPEG4/ISO/AVC); "
                           "nothing written\n")
    assert not out.exists()


def test_a_video_track_beside_audio_is_left_out_with_a_warning(tmp_path):
    video = w.Track(3, 3, "VIDEO", "V_MPEG4/ISO/AVC")
    audio = w.Track(1, 1, "AUDIO", "A_AAC")
    body = tmp_path / "mixed.mkv"
    body.write_bytes(w.chunk(w.info("t", "mixed") + w.tracks([audio, video])
                             + w.aws_fragment_tags("1", START_MS, START_MS)
                             + w.cluster(START_MS, [w.simple_block(1, 0, b"\x01\x00" * 80),
                                                    w.simple_block(3, 0, b"\x00\x00\x00\x01 h264")])))
    out = tmp_path / "out"
    done = run_extract(body, "--out", out)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["AUDIO.wav", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["warnings"] == ["track VIDEO is V_MPEG4/ISO/AVC, not audio: not written"]
    assert [t["name"] for t in summary["tracks"]] == ["AUDIO"]
