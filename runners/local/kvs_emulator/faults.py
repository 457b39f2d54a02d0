"""Fault injection: what may go wrong (:class:`Faults`), when it does (:class:`FaultInjector`, the
seeded draws of one server) and where a media body breaks off (:class:`StreamFault`)."""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, fields

from runners.local.kvs_emulator.wire import ApiError, throttled


@dataclass(frozen=True)
class Faults:
    """Fault-injection probabilities, per request (``missing_fragment``: per fragment); all off by default."""

    throttle_probability: float = 0.0
    error_500_probability: float = 0.0
    reset_probability: float = 0.0
    truncate_probability: float = 0.0
    block_cut_probability: float = 0.0  # a clean end of body between two SimpleBlocks
    missing_fragment_probability: float = 0.0
    seed: int = 0
    # every call, control plane included, answers 403 AccessDeniedException, as KVS does for
    # credentials whose IAM policy does not allow the action (draws nothing)
    deny_all: bool = False

    def __post_init__(self):
        for f in fields(self):
            if f.name.endswith("_probability") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"{f.name} must be within [0, 1]")


@dataclass(frozen=True)
class StreamFault:
    """Where and how a GetMediaForFragmentList body breaks off: inside chunk ``chunk_index``."""

    mode: str  # "reset" (RST, no terminating chunk), "truncate" or "block_cut" (clean end of body)
    chunk_index: int
    fraction: float  # how far into that chunk the body stops, in [0, 1)

    def cut(self, chunk: bytes) -> int:
        """Where the chunk stops: at least one byte is sent and at least one withheld; a block cut
        stops right after a SimpleBlock that is not the chunk's last, so what arrives parses clean."""
        if self.mode == "block_cut":
            ends = simple_block_ends(chunk)[:-1]
            return ends[min(int(len(ends) * self.fraction), len(ends) - 1)] if ends else 0
        return min(len(chunk) - 1, max(1, int(len(chunk) * self.fraction)))


_MASTERS = {0x18538067, 0x1F43B675}  # Segment and Cluster: walked into
_SIMPLE_BLOCK = 0xA3


def _vint(data: bytes, p: int, keep_marker: bool) -> tuple[int, int, bool]:
    """(value, length, all ones) of the EBML variable-length integer at ``p``."""
    first = data[p]
    length = 9 - first.bit_length()
    value = int.from_bytes(data[p:p + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, length, value == (1 << (7 * length)) - 1


def simple_block_ends(chunk: bytes) -> list[int]:
    """Offsets just past every SimpleBlock of one fragment's chunk, in order."""
    ends, p = [], 0
    while p < len(chunk):
        eid, id_len, _ = _vint(chunk, p, keep_marker=True)
        size, size_len, unknown = _vint(chunk, p + id_len, keep_marker=False)
        body = p + id_len + size_len
        if eid in _MASTERS:
            p = body  # children follow (an unknown size runs to the end of the chunk)
            continue
        p = body + size
        if eid == _SIMPLE_BLOCK:
            ends.append(p)
    return ends


class FaultInjector:
    """The draws of one server: every knob shares one ``random.Random(seed)``, so the same seed and
    the same requests in the same order give the same faults."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._rng_lock = threading.Lock()

    def draw(self, probability: float) -> bool:
        """One seeded coin flip; a knob at 0 draws nothing, so it cannot shift the other knobs' faults."""
        with self._rng_lock:
            return probability > 0 and self._rng.random() < probability

    def inject_request_faults(self) -> None:
        """Fail an archived-media request as throttled or with an internal failure, when drawn."""
        if self.draw(self.faults.throttle_probability):
            raise throttled("Injected fault: rate exceeded")
        if self.draw(self.faults.error_500_probability):
            raise ApiError("InternalFailure", 500, "Injected fault: internal failure")

    def fragment_missing(self) -> bool:
        """Whether one fragment of a media body is sent as the in-band not-yet-consistent error chunk."""
        return self.draw(self.faults.missing_fragment_probability)

    def stream_fault(self, chunk_count: int) -> StreamFault | None:
        mode = ("reset" if self.draw(self.faults.reset_probability)
                else "truncate" if self.draw(self.faults.truncate_probability)
                else "block_cut" if self.draw(self.faults.block_cut_probability) else None)
        if mode is None:
            return None
        with self._rng_lock:
            return StreamFault(mode, self._rng.randrange(chunk_count), self._rng.random())
