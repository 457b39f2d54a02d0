"""Fuzzing voicelake.media.mkv_parser with mutated real bodies.

Whatever the bytes, the parser may only return fragments or raise ParseError; it must not hang,
its memory must not follow what headers claim, and the read size must not change the result.
The two tests together run for about 20 s (bounded by ``max_examples``, not by a clock).
"""
from __future__ import annotations

import contextlib
import io
import signal
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runners.local import mkv_writer as w
from tests.conftest import shared_path
from voicelake.media.mkv_parser import ParseError, iter_fragments


def _sample(name: str, limit: int | None = None) -> bytes:
    return shared_path("samples", "kvs", name).read_bytes()[:limit]


def _connect() -> bytes:
    pcm = bytes(range(256)) * 2
    return b"".join(w.connect_fragment(
        fragment_number=str(10**46 + i), producer_ms=1_700_000_000_000 + 64 * i, server_ms=1,
        contact_id="c", instance_id="i", from_customer=pcm, to_customer=pcm[::-1], block_bytes=128)
        for i in range(2)) + w.error_chunk("5")


# Small bodies keep each example fast; prefixes of the large samples are themselves realistic
# (truncated) bodies with known-size clusters, SeekHead, Cues and CRC-32.
BASES = [
    _sample("test_mixed_tags.mkv"),
    _sample("empty-mkv-with-tags.mkv"),
    _sample("test_tags_empty_cluster.mkv"),
    _sample("output_get_media.mkv", 30_000),
    _sample("output-get-media-non-increasing-timecode.mkv", 30_000),
    _connect(),
]

_position = st.integers(min_value=0, max_value=2**31)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), _position, st.integers(1, 255)),
    st.tuples(st.just("set"), _position, st.sampled_from([0x00, 0x01, 0x08, 0x7F, 0x80, 0xFF])),
    st.tuples(st.just("insert"), _position, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _position, st.integers(1, 64)),
    st.tuples(st.just("truncate"), _position, st.just(0)),
    st.tuples(st.just("splice"), _position, st.tuples(st.integers(0, len(BASES) - 1), _position,
                                                      st.integers(1, 2048))),
)


def mutate(body: bytes, mutations: list) -> bytes:
    data = bytearray(body)
    for kind, position, arg in mutations:
        at = position % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= arg
        elif kind == "set" and at < len(data):
            data[at] = arg
        elif kind == "insert":
            data[at:at] = arg
        elif kind == "delete":
            del data[at:at + arg]
        elif kind == "truncate":
            del data[at:]
        elif kind == "splice":
            source, start, length = arg
            donor = BASES[source]
            start %= len(donor)
            data[at:at] = donor[start:start + length]
    return bytes(data)


@contextlib.contextmanager
def watchdog(seconds: float):
    """Fail instead of hanging: a parse of these small bodies takes milliseconds."""
    def expire(signum, frame):
        raise TimeoutError(f"parse did not finish within {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(body: bytes, read_size: int):
    """The fragments, or the ParseError's (message, offset); anything else propagates."""
    try:
        return list(iter_fragments(io.BytesIO(body), read_size=read_size))
    except ParseError as exc:
        assert 0 <= exc.offset <= len(body)
        return ("ParseError", exc.message, exc.offset)


def check_fragments(fragments: list, body: bytes) -> None:
    assert [f.index for f in fragments] == list(range(len(fragments)))
    ends = [f.byte_offset + f.size for f in fragments]
    assert [f.byte_offset for f in fragments[1:]] == ends[:-1] and ends[-1:] in ([], [len(body)])
    assert all(f.size > 0 for f in fragments)
    assert not any(f.truncated for f in fragments[:-1])
    payload = sum(len(p) for f in fragments for t in f.tracks.values() for _, p in t.blocks)
    assert payload <= len(body)


FUZZ = settings(max_examples=8000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(base=st.integers(0, len(BASES) - 1), mutations=st.lists(MUTATION, min_size=1, max_size=6))
def test_mutated_bodies_parse_or_raise_parse_error(base, mutations):
    body = mutate(BASES[base], mutations)
    tracemalloc.start()
    try:
        with watchdog(10):
            result = outcome(body, 4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if isinstance(result, list):
        check_fragments(result, body)
    # The result itself holds at most one copy of the body; the rest is one read and bookkeeping.
    assert peak < 3 * len(body) + 1_000_000


@settings(FUZZ, max_examples=3000)
@given(base=st.integers(0, len(BASES) - 1), mutations=st.lists(MUTATION, min_size=1, max_size=4),
       read_size=st.integers(1, 64))
def test_read_size_does_not_change_the_result(base, mutations, read_size):
    body = mutate(BASES[base], mutations)
    with watchdog(20):
        assert outcome(body, read_size) == outcome(body, 65536)
