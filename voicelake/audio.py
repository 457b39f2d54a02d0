"""PCM on a call's sample timeline, and the float / WAV forms of it.

Pure functions on whole arrays or chunks (shared/domain/dsp.md: never per sample in Python): the
timeline's ms <-> sample rule, runs of blocks that follow on, int16 <-> float32, streaming soxr
resampling, and the 16-bit WAV writer. The pipeline places blocks with ``channel_file`` and
streams a call through ``call_audio``; ``tests/reference_audio.py`` keeps whole-array versions of
both as the tests' second implementation.

Timeline rule: a block stamped ``t`` ms lands at sample ``round((t - start_ms) * rate / 1000)``
(halves round up).  KVS block timecodes are whole milliseconds, so at 8 and 16 kHz the rule is exact.
"""
from __future__ import annotations

import io
import wave
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import soxr

FULL_SCALE = 32768.0  # int16 -> float divides by this, so -32768 maps to exactly -1.0


@dataclass(frozen=True)
class Gap:
    """A hole in a channel's timeline that was filled with silence; epoch ms, end exclusive."""
    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


def ms_to_samples(ms, rate: int):
    """round(ms * rate / 1000), halves up; works on ints and int64 arrays alike."""
    return (2 * ms * rate + 1000) // 2000


def samples_to_ms(samples, rate: int):
    """round(samples * 1000 / rate), halves up; works on ints and int64 arrays alike."""
    return (2 * samples * 1000 + rate) // (2 * rate)


def coalesce_blocks(blocks: Iterable[tuple[int, bytes]], sample_rate: int = 8000) -> list[tuple[int, bytes]]:
    """Join blocks that follow on exactly (next start == this start + its duration) into runs.

    A fragment's 16-50 blocks become one run, so what crosses a shuffle is a few large byte
    strings per fragment rather than thousands of small tuples; assembling gives the same samples.
    Blocks whose duration is not a whole millisecond, or that overlap, stay as they are.
    """
    runs: list[tuple[int, bytes]] = []
    pending: list[bytes] = []
    start = end = None
    for t, pcm in blocks:
        if pending and t == end:
            pending.append(pcm)
        else:
            if pending:
                runs.append((start, b"".join(pending)))
            pending, start = [pcm], t
        samples = len(pcm) // 2
        end = t + samples * 1000 // sample_rate if samples * 1000 % sample_rate == 0 else None
    if pending:
        runs.append((start, b"".join(pending)))
    return runs


def to_float(x: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1)."""
    y = x.astype(np.float32)
    y *= np.float32(1.0 / FULL_SCALE)
    return y


def to_int16(y: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16, the inverse of ``to_float``; out-of-range values clip, never wrap."""
    scaled = y * np.float32(FULL_SCALE)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -FULL_SCALE, FULL_SCALE - 1, out=scaled)
    return scaled.astype(np.int16)


class Resampler:
    """soxr "HQ" over a stream of chunks (one channel), for signals too long to hold whole."""

    def __init__(self, rate: int, target_rate: int):
        self._stream = None if rate == target_rate else soxr.ResampleStream(
            rate, target_rate, 1, dtype="float32", quality="HQ")

    def resample(self, y: np.ndarray, *, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return y
        return self._stream.resample_chunk(y, last=last)


def wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """A 16-bit PCM WAV file (44-byte header) of int16 or float [-1, 1] audio, (n,) or (n, k).

    The stdlib writer: the header is fixed by the arguments, so equal audio gives equal bytes
    (and it skips soundfile's per-sample conversion, dsp.md).
    """
    if audio.dtype != np.int16:
        audio = to_int16(audio)
    frames = np.ascontiguousarray(audio.reshape(len(audio), -1), dtype="<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(frames)
    return buffer.getvalue()
