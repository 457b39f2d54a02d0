"""A channel's samples on its call's sample grid, written as blocks stream in, read back in chunks.

Fetched PCM never waits in memory for the rest of its call: each block goes straight to its place
in a file of raw s16le samples, at sample ``ms_to_samples(t - origin_ms)`` of a grid that every
leg of the call shares (the record's window, padded by the window slack).  Holes stay zero (the
file is sparse), and the file remembers which sample ranges a block really covered, so gaps are
reported from that small list, never guessed from zeros.

Where blocks overlap, the samples written first stay (blocks arrive in fragment-number order, so a
duplicated or re-sent fragment changes nothing).  Blocks outside the grid are cut off: nothing
before the record's padded start or after its padded end belongs to the call.
"""
from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from voicelake.audio import ms_to_samples


class Coverage:
    """Sorted, disjoint, non-touching [start, end) ranges of sample positions."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()):
        self.starts: list[int] = []
        self.ends: list[int] = []
        for a, b in ranges:
            self.add(a, b)

    def __iter__(self):
        return iter(zip(self.starts, self.ends, strict=True))

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def total(self) -> int:
        return sum(b - a for a, b in self)

    def uncovered(self, a: int, b: int) -> list[tuple[int, int]]:
        """The parts of [a, b) that no range covers, in order."""
        if a >= b:
            return []
        if not self.starts or a >= self.ends[-1]:  # the usual case: a block after all others
            return [(a, b)]
        out, at = [], a
        i = max(bisect.bisect_right(self.starts, a) - 1, 0)
        while i < len(self.starts) and self.starts[i] < b:
            if self.ends[i] > at:
                if self.starts[i] > at:
                    out.append((at, self.starts[i]))
                at = max(at, self.ends[i])
            i += 1
        if at < b:
            out.append((at, b))
        return out

    def add(self, a: int, b: int) -> None:
        if a >= b:
            return
        if not self.starts or a > self.ends[-1]:
            self.starts.append(a)
            self.ends.append(b)
            return
        if a >= self.starts[-1]:  # extends the last range
            self.ends[-1] = max(self.ends[-1], b)
            return
        lo = bisect.bisect_left(self.ends, a)  # first range ending at or after a
        hi = bisect.bisect_right(self.starts, b)  # ranges starting at or before b touch
        if lo < hi:
            a, b = min(a, self.starts[lo]), max(b, self.ends[hi - 1])
        self.starts[lo:hi] = [a]
        self.ends[lo:hi] = [b]

    def minus(self, other: Coverage) -> Coverage:
        out = Coverage()
        for a, b in self:
            for piece in other.uncovered(a, b):
                out.add(*piece)
        return out

    def ranges(self) -> tuple[tuple[int, int], ...]:
        return tuple(self)


class ChannelWriter:
    """Writes one track's blocks into ``path`` at their place on the grid."""

    def __init__(self, path: str, *, origin_ms: int, end_ms: int, sample_rate: int):
        self.path, self.origin_ms, self.rate = path, origin_ms, sample_rate
        self.limit = int(ms_to_samples(end_ms - origin_ms, sample_rate))
        self.coverage = Coverage()
        self.blocks = 0
        self.overlap_samples = 0
        self.cut_at_end = False
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._file = open(path, "wb")
        self._position = 0

    def write(self, t_ms: int, pcm: bytes) -> None:
        """A block of s16le mono samples starting at epoch ms ``t_ms``."""
        self.blocks += 1
        start = int(ms_to_samples(t_ms - self.origin_ms, self.rate))
        n = len(pcm) // 2
        a, b = max(start, 0), min(start + n, self.limit)
        self.cut_at_end |= start + n > self.limit
        if a >= b:
            return
        pieces = self.coverage.uncovered(a, b)
        self.overlap_samples += (b - a) - sum(y - x for x, y in pieces)
        view = memoryview(pcm)
        for x, y in pieces:
            if x != self._position:
                self._file.seek(2 * x)
            self._file.write(view[2 * (x - start):2 * (y - start)])
            self._position = y
            self.coverage.add(x, y)

    def close(self) -> ChannelPiece:
        self._file.close()
        return ChannelPiece(path=self.path, sample_rate=self.rate, ranges=self.coverage.ranges(),
                            blocks=self.blocks, overlap_samples=self.overlap_samples,
                            cut_at_end=self.cut_at_end)


@dataclass(frozen=True)
class ChannelPiece:
    """A written channel file and the grid ranges its blocks covered (small: one per hole + 1)."""
    path: str
    sample_rate: int
    ranges: tuple[tuple[int, int], ...]
    blocks: int = 0
    overlap_samples: int = 0
    cut_at_end: bool = False  # a block went on past the end of the grid and was cut there

    @property
    def first(self) -> int | None:
        return self.ranges[0][0] if self.ranges else None

    @property
    def last(self) -> int | None:
        return self.ranges[-1][1] if self.ranges else None


class ChannelReader:
    """Reads the grid samples [offset, offset + n) of a channel made of one or more pieces.

    A Chime leg that reconnects on another stream leaves its channel in two pieces; where pieces
    overlap, the earlier piece keeps its samples (as for blocks).  Outside every range the channel
    is silence.
    """

    def __init__(self, pieces: Sequence[tuple[str, Sequence[tuple[int, int]]]]):
        self._pieces = []
        seen = Coverage()
        for path, ranges in pieces:
            own = Coverage(ranges)
            self._pieces.append((path, own.minus(seen) if len(seen) else own))
            for a, b in own:
                seen.add(a, b)
        self.coverage = seen
        self._files = [open(path, "rb") for path, _ in self._pieces]

    def read(self, offset: int, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        for index, ((_, ranges), f) in enumerate(zip(self._pieces, self._files, strict=True)):
            if index == 0:  # the first piece's holes are zeros in its file: one read serves
                self._copy(f, out, offset, offset, offset + n)
                continue
            for a, b in ranges:
                lo, hi = max(a, offset), min(b, offset + n)
                if lo < hi:
                    self._copy(f, out, offset, lo, hi)
        return out

    @staticmethod
    def _copy(f, out: np.ndarray, offset: int, lo: int, hi: int) -> None:
        data = os.pread(f.fileno(), 2 * (hi - lo), 2 * lo)
        got = len(data) // 2  # past the end of the file is silence
        if got:
            out[lo - offset:lo - offset + got] = np.frombuffer(data, dtype="<i2", count=got)

    def close(self) -> None:
        for f in self._files:
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
