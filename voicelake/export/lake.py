"""Reading a finished lake through its files only: the Parquet tables and the call WAVs.

Nothing here knows how the lake was produced.  It relies on the documented layout
(``voicelake.layout``): the tables' Parquet files with the partition values in the folder names,
and each call's WAV with the un-normalised source audio beside it.
"""
from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from voicelake import layout, storage
from voicelake.analysis.phases import CALL


@dataclass(frozen=True)
class LakeCall:
    """One call with its channel and segment rows, as the lake's tables have them."""
    date: str
    partition: str
    call: dict
    channels: tuple[dict, ...]
    segments: tuple[dict, ...]

    @property
    def call_id(self) -> str:
        return self.call["call_id"]


def partitions(root: str, date: str) -> list[str]:
    """The voice_connector_id values that have calls on a date."""
    places = (layout.partition_of(root, p) for p in storage.list_paths(layout.table_files(root, "calls", date)))
    return sorted({p.partition for p in places if p})


def read_table(root: str, table: str, date: str, partition: str) -> list[dict]:
    rows = []
    for path in storage.list_paths(layout.table_files(root, table, date, partition)):
        rows += pq.read_table(io.BytesIO(storage.read_bytes(path))).to_pylist()
    return rows


def read_partition(root: str, date: str, partition: str) -> list[LakeCall]:
    """Every call of one (date, voice connector) partition, in call_id order."""
    by_call = {r["call_id"]: r for r in read_table(root, "calls", date, partition)}
    channels: dict[str, list[dict]] = {c: [] for c in by_call}
    segments: dict[str, list[dict]] = {c: [] for c in by_call}
    for row in read_table(root, "channels", date, partition):
        channels.setdefault(row["call_id"], []).append(row)
    for row in read_table(root, "segments", date, partition):
        segments.setdefault(row["call_id"], []).append(with_phase(row))
    return [LakeCall(date, partition, by_call[c],
                     tuple(sorted(channels[c], key=lambda r: r["channel"])),
                     tuple(sorted(segments[c], key=lambda r: (r["channel"], r["start_ms"]))))
            for c in sorted(by_call)]


def with_phase(segment: dict) -> dict:
    """A segments row with its phase.  A lake written before phases existed has no phase column:
    its calls were measured whole, one phase, so each of its segments is in ``call``."""
    return segment if "phase" in segment else {**segment, "phase": CALL}


def wav_uri(root: str, call: LakeCall, source: bool = False) -> str:
    """Where the call's ML WAV (or, with ``source``, its 8 kHz source WAV) is in the lake at ``root``.

    Always from the documented layout under the root given, never from ``calls.wav_path``: that
    names where the WAV was written, and a lake that was copied or moved since has it elsewhere.
    """
    return layout.wav_path(root, call.date, call.partition, call.call_id, source=source)


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV bytes -> (int16 samples (n, channels), sample rate)."""
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"expected 16-bit PCM, found {8 * w.getsampwidth()}-bit samples")
        frames = w.readframes(w.getnframes())
        return np.frombuffer(frames, "<i2").reshape(-1, w.getnchannels()), w.getframerate()


def is_missing(exc: Exception) -> bool:
    """A read that failed because the object is not there (local or S3)."""
    if isinstance(exc, FileNotFoundError):
        return True
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404", "NotFound")
