"""Whole-array reference implementations of what the pipeline does in a stream: the tests' oracle.

The pipeline writes each block straight to its place in a channel file (``voicelake.media.channel_file``)
and resamples and levels a call chunk by chunk (``voicelake.analysis.call_audio``). These functions do the
same on whole arrays in memory, written independently, so a test can compare the two:

  blocks (abs ms, s16le bytes) --assemble_channel--> AssembledChannel (int16 + gaps + counts)
  AssembledChannel* --align_channels--> (n, k) int16, one column per channel, sample 0 = call start
  int16 --normalise--> float32 at 16 kHz, DC removed
  float32 --level_normalise--> peak at -1 dBFS --wav_bytes--> 16-bit PCM WAV file bytes
  (ml_wav_bytes: the last three in one go, a channel at a time)

Where blocks overlap, the earliest-starting block keeps its samples (for equal starts, the longer
one), so a duplicated fragment changes nothing and arrival order does not matter (of two blocks with
the same start and length but different bytes, the first given wins).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import soxr

from voicelake.audio import Gap, ms_to_samples, samples_to_ms, to_float, to_int16, wav_bytes


@dataclass(frozen=True, eq=False)
class AssembledChannel:
    """One channel on the call timeline: ``samples[0]`` is at ``start_ms``."""
    samples: np.ndarray  # int16, mono
    start_ms: int
    sample_rate: int
    gaps: tuple[Gap, ...]
    blocks: int  # blocks received, duplicates included
    samples_present: int  # timeline samples that came from a block (the rest are zero fill)
    overlap_samples: int  # block samples dropped because an earlier block already covered them

    @property
    def end_ms(self) -> int:
        return self.start_ms + samples_to_ms(len(self.samples), self.sample_rate)

    @property
    def gap_ms(self) -> int:
        return sum(g.duration_ms for g in self.gaps)


def assemble_channel(blocks: Iterable[tuple[int, bytes]], *, start_ms: int | None = None,
                     end_ms: int | None = None, sample_rate: int = 8000,
                     min_gap_ms: int = 1) -> AssembledChannel:
    """Place s16le mono blocks on one timeline, zero-fill the holes and report them.

    ``start_ms`` / ``end_ms`` (end exclusive) trim the timeline; ``None`` takes the span of the
    blocks.  Holes longer than ``min_gap_ms`` (including a missing head or tail of the window)
    become ``Gap`` rows; shorter ones are only ms-rounding of block timecodes and are zero-filled
    silently.  A trailing odd byte of a block is ignored (it is half a sample).
    """
    items = list(blocks)
    if not items and (start_ms is None or end_ms is None):
        raise ValueError("no blocks and no start_ms/end_ms: the channel has no extent")
    times = np.fromiter((t for t, _ in items), dtype=np.int64, count=len(items))
    lengths = np.fromiter((len(p) // 2 for _, p in items), dtype=np.int64, count=len(items))
    if start_ms is None:
        start_ms = int(times.min())
    starts = ms_to_samples(times - start_ms, sample_rate)
    ends = starts + lengths
    if end_ms is None:
        n = int(ends.max(initial=0))
    elif end_ms < start_ms:
        raise ValueError(f"end_ms {end_ms} is before start_ms {start_ms}")
    else:
        n = int(ms_to_samples(end_ms - start_ms, sample_rate))

    # Earliest start first, then longest: the block placed first keeps its samples, whatever the
    # arrival order (of identical start and length, the first given).
    order = np.lexsort((-lengths, starts))
    starts, ends = starts[order], ends[order]
    covered = np.maximum.accumulate(np.concatenate(([0], ends)))[:-1]  # reach of earlier blocks
    eff_starts = np.maximum(starts, covered)
    eff_ends = np.minimum(ends, n)
    keep = eff_ends > eff_starts
    overlap = int(np.clip(np.minimum(covered, np.minimum(ends, n)) - np.maximum(starts, 0),
                          0, None).sum())

    samples = np.zeros(n, dtype=np.int16)
    used = order[keep]
    eff_starts, eff_ends = eff_starts[keep], eff_ends[keep]
    firsts, stops = eff_starts - starts[keep], eff_ends - starts[keep]  # within each block
    # Blocks that follow on without a hole form one run, copied with a single join; plain
    # Python ints in the loop (numpy scalars cost 10x more per operation).
    holes_before = eff_starts[1:] - eff_ends[:-1]
    bounds = [0, *(np.flatnonzero(holes_before > 0) + 1).tolist(), len(used)] if len(used) else []
    used_l, firsts_l, stops_l = used.tolist(), firsts.tolist(), stops.tolist()
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        pieces = [_block_slice(items[i][1], f, s)
                  for i, f, s in zip(used_l[a:b], firsts_l[a:b], stops_l[a:b], strict=True)]
        samples[eff_starts[a]:eff_ends[b - 1]] = np.frombuffer(b"".join(pieces), dtype="<i2")

    gaps = _gaps(eff_starts, eff_ends, n, start_ms, sample_rate, min_gap_ms)
    return AssembledChannel(samples=samples, start_ms=int(start_ms), sample_rate=sample_rate,
                            gaps=gaps, blocks=len(items),
                            samples_present=int((eff_ends - eff_starts).sum()),
                            overlap_samples=overlap)


def _block_slice(pcm: bytes, first: int, stop: int) -> bytes:
    """Samples [first, stop) of a block, without copying when the whole block is used."""
    if first == 0 and stop * 2 == len(pcm):
        return pcm
    return pcm[2 * first:2 * stop]


def _gaps(starts: np.ndarray, ends: np.ndarray, n: int, start_ms: int, rate: int,
          min_gap_ms: int) -> tuple[Gap, ...]:
    """Holes between the placed (sorted, disjoint) sample ranges and the edges of [0, n)."""
    hole_starts = np.concatenate(([0], ends))
    hole_ends = np.concatenate((starts, [n]))
    long_enough = (hole_ends - hole_starts) * 1000 > min_gap_ms * rate
    first_ms = start_ms + samples_to_ms(hole_starts[long_enough], rate)
    last_ms = start_ms + samples_to_ms(hole_ends[long_enough], rate)
    return tuple(Gap(int(a), int(b)) for a, b in zip(first_ms, last_ms, strict=True))


def align_channels(channels: Sequence[AssembledChannel]) -> np.ndarray:
    """Stack channels into an (n, k) int16 array, zero-padding the shorter ones at the end
    (only channels assembled without ``end_ms`` can differ in length).

    All channels must be assembled on the same ``start_ms`` and rate (the call window): their
    sample indices are then the same absolute times, and any missing head is already a Gap.
    """
    if not channels:
        raise ValueError("no channels to align")
    first = channels[0]
    for ch in channels[1:]:
        if (ch.start_ms, ch.sample_rate) != (first.start_ms, first.sample_rate):
            raise ValueError(
                f"channels start at {first.start_ms} ms / {first.sample_rate} Hz and "
                f"{ch.start_ms} ms / {ch.sample_rate} Hz: assemble all of them on the call window")
    stereo = np.zeros((max(len(ch.samples) for ch in channels), len(channels)), dtype=np.int16)
    for column, ch in enumerate(channels):
        stereo[:len(ch.samples), column] = ch.samples
    return stereo


def normalise(x: np.ndarray, sr: int, target_sr: int = 16000) -> np.ndarray:
    """int16 (n,) or (n, k) -> float32 at ``target_sr`` with each channel's DC removed.

    soxr "HQ" directly: it is librosa's own resampling backend, without the validation and copies
    that make ``librosa.resample`` 5x dearer (dsp.md).  Channels are resampled one at a time:
    soxr on an interleaved (n, 2) array costs more than twice one channel.
    """
    if x.ndim == 2:
        return np.stack([normalise(x[:, c], sr, target_sr) for c in range(x.shape[1])], axis=1)
    y = to_float(x)
    y -= np.float32(y.mean(dtype=np.float64))
    if sr == target_sr:
        return y
    return soxr.resample(y, sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def level_normalise(y: np.ndarray, peak_dbfs: float = -1.0) -> np.ndarray:
    """Scale each channel of float (n,) or (n, k) audio so its peak is at ``peak_dbfs``.

    For the ML WAV only: per channel, because each channel is one speaker and models want every
    speaker at a usable level; the original levels stay in the features.  Silence stays silent.
    """
    if y.ndim == 2:
        return np.stack([level_normalise(y[:, c], peak_dbfs) for c in range(y.shape[1])], axis=1)
    # max and -min: no |y| temporary, and a 1-D reduction (an axis-0 one over (n, 2) is 20x slower)
    peak = max(float(y.max(initial=0)), -float(y.min(initial=0)))
    gain = 10.0 ** (peak_dbfs / 20.0) / peak if peak > 0 else 1.0
    return y * np.float32(gain)


def ml_wav_bytes(x: np.ndarray, sr: int, target_sr: int = 16000, peak_dbfs: float = -1.0) -> bytes:
    """The ML WAV of int16 (n,) or (n, k) channels: normalise, level_normalise, 16-bit WAV.

    One channel at a time down to int16, then one interleave: interleaving the float32 channels
    first would move twice the bytes through memory.
    """
    columns = x.reshape(len(x), -1)
    pcm = [to_int16(level_normalise(normalise(columns[:, c], sr, target_sr), peak_dbfs))
           for c in range(columns.shape[1])]
    return wav_bytes(np.column_stack(pcm) if len(pcm) > 1 else pcm[0], target_sr)
