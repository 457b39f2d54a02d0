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
    assert (first["index"], first["producer_ms"], first["server_ms"]) == (0, START_MS + SPAN_MS, START_MS + SPAN_MS + 170)
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
