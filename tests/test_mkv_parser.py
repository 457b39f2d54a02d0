"""Specification of voicelake.media.mkv_parser.

Real KVS bodies (../shared/samples/kvs) are checked frame by frame against mkvtoolnix; bodies built
with runners/local/mkv_writer.py (plus hand-built elements) pin down every rule of kvs.md §1 and §6.
"""
from __future__ import annotations

import io
import json
import random
import re
import shutil
import struct
import subprocess
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import ebmlite
import pytest

from runners.local import mkv_writer as w
from tests.conftest import shared_path
from voicelake.media.mkv_parser import (
    MAX_BUFFERED_SIZE,
    ErrorChunk,
    Fragment,
    ParseError,
    is_audio,
    iter_fragments,
    parse_bytes,
)

# Every .mkv of ../shared/samples/kvs (PROVENANCE.md); test_sample_set_is_complete keeps this honest.
SAMPLE_NAMES = [
    "empty-mkv-with-tags.mkv",
    "output-get-media-equal-timecode.mkv",
    "output-get-media-non-increasing-timecode.mkv",
    "output_get_media.mkv",
    "output_get_media_sparse_fragments.mkv",
    "test_mixed_tags.mkv",
    "test_tags_empty_cluster.mkv",
]
TRUNCATED_SAMPLES = {"output-get-media-equal-timecode.mkv", "output-get-media-non-increasing-timecode.mkv"}
SCHEMA = ebmlite.loadSchema("matroska.xml")

PRODUCER_MS = 1_782_912_654_536
FRAGMENT_NUMBER = 91343852333181551234925834077012571618243808844
BLOCK_GROUP, BLOCK, VOID, CRC32 = 0xA0, 0xA1, 0xEC, 0xBF


def require_tools() -> None:
    missing = [tool for tool in ("mkvextract", "mkvinfo", "mkvmerge") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"mkvtoolnix is required for the oracle tests; not on PATH: {', '.join(missing)}")


def sample_bytes(name: str) -> bytes:
    return shared_path("samples", "kvs", name).read_bytes()


# -- building bodies -------------------------------------------------------------------------

def noise(nbytes: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(nbytes)


def connect_body(n_fragments: int = 3, *, to_customer_first: bool = True, contact_id: str = "contact-A",
                 first: int = 0, block_bytes: int = 1024, blocks_per_track: int = 16,
                 step_ms: int | None = None) -> tuple[bytes, list[dict]]:
    """A Connect GMFFL body and, per fragment, what it holds."""
    span_ms = blocks_per_track * w.block_ms(block_bytes)
    chunks, expected = [], []
    for i in range(first, first + n_fragments):
        producer_ms = PRODUCER_MS + i * (step_ms or span_ms)
        from_pcm = noise(block_bytes * blocks_per_track, 2 * i)
        to_pcm = noise(block_bytes * blocks_per_track, 2 * i + 1)
        chunks.append(w.connect_fragment(
            fragment_number=str(FRAGMENT_NUMBER + i), producer_ms=producer_ms,
            server_ms=producer_ms + 170, contact_id=contact_id, instance_id="instance-1",
            from_customer=from_pcm, to_customer=to_pcm, to_customer_first=to_customer_first,
            block_bytes=block_bytes))
        expected.append({"number": str(FRAGMENT_NUMBER + i), "producer_ms": producer_ms,
                         w.CONNECT_FROM: from_pcm, w.CONNECT_TO: to_pcm})
    return b"".join(chunks), expected


def block_data(track: int, timecode: int, payload: bytes, flags: int = 0x80) -> bytes:
    return w.size_vint(track) + struct.pack(">hB", timecode, flags) + payload


def cluster(timecode: int, *children: bytes, size_width: int | None = None) -> bytes:
    """An unknown-size Cluster, or a sized one when ``size_width`` is given."""
    body = w.uint(w.TIMECODE, timecode, 8) + b"".join(children)
    if size_width is None:
        return w._element_id(w.CLUSTER) + w.UNKNOWN_SIZE_1 + body
    return w.element(w.CLUSTER, body, size_width)


def one_track(name: str = "AUDIO", number: int = 1, codec: str = "A_PCM/INT/LIT") -> bytes:
    return w.tracks([w.Track(number, number, name, codec)])


def aws(number: str = "1", producer: str | None = "1782912654.536", server: str | None = "1782912654.706",
        side: bool = False) -> bytes:
    infix = "_SIDE" if side else ""
    pairs = [("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number)]
    if server is not None:
        pairs.append((f"AWS_KINESISVIDEO_SERVER{infix}_TIMESTAMP", server))
    if producer is not None:
        pairs.append((f"AWS_KINESISVIDEO_PRODUCER{infix}_TIMESTAMP", producer))
    return w.tags(pairs)


def chunk(*parts: bytes) -> bytes:
    return w.chunk(b"".join(parts))


def frames(fragment: Fragment, track: str) -> list[bytes]:
    return [payload for _, payload in fragment.tracks[track].blocks]


def times(fragment: Fragment, track: str) -> list[int]:
    return [time_ms for time_ms, _ in fragment.tracks[track].blocks]


class TinyReads(io.RawIOBase):
    """A stream that returns 1-7 bytes per read, like a slow socket."""

    def __init__(self, data: bytes, seed: int = 0):
        self.data, self.pos, self.rng = data, 0, random.Random(seed)

    def read(self, n: int = -1) -> bytes:
        k = min(n, self.rng.randint(1, 7))
        out = self.data[self.pos:self.pos + k]
        self.pos += len(out)
        return out


class CountingReads(io.RawIOBase):
    def __init__(self, data: bytes):
        self.stream, self.consumed = io.BytesIO(data), 0

    def read(self, n: int = -1) -> bytes:
        out = self.stream.read(n)
        self.consumed += len(out)
        return out


# -- real samples against mkvtoolnix ---------------------------------------------------------

def test_sample_set_is_complete():
    assert sorted(p.name for p in shared_path("samples", "kvs").glob("*.mkv")) == SAMPLE_NAMES


@dataclass
class ChunkOracle:
    """What mkvtoolnix reports for one chunk written to its own file."""
    frames: list[tuple[int, int, bytes]]  # (track number, block timestamp ns, frame bytes)
    first_cluster_ns: int | None
    tags: dict[str, str]
    extracted: dict[int, bytes] | None  # track number -> mkvextract --raw; None if it refused


_TIME = r"(\d+):(\d+):(\d+)\.(\d+)"
_BLOCK_LINE = re.compile(r"\+ (?:Simple block|Block): .*track number (\d+), (\d+) frame\(s\), timestamp " + _TIME)
_FRAME_LINE = re.compile(r"\+ Frame with size (\d+)(?: hexdump ?(.*))?$")
_CLUSTER_LINE = re.compile(r"\+ Cluster timestamp: " + _TIME)
_TAG_LINE = re.compile(r"\+ (Name|String): (.*)$")


def _ns(h: str, m: str, s: str, frac: str) -> int:
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 10**9 + int(frac.ljust(9, "0"))


def _mkvinfo(path: Path) -> tuple[list, int | None, dict]:
    out = subprocess.run(["mkvinfo", "-v", "--full-hexdump", str(path)], capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stdout[-500:] + out.stderr
    found, first_cluster, tags = [], None, {}
    block = None
    simple, name = False, None
    for line in out.stdout.splitlines():
        if m := _BLOCK_LINE.search(line):
            block = (int(m[1]), _ns(*m.groups()[2:]))
        elif m := _FRAME_LINE.search(line):
            data = bytes.fromhex(m[2] or "")
            assert len(data) == int(m[1])
            found.append((*block, data))
        elif m := _CLUSTER_LINE.search(line):
            first_cluster = _ns(*m.groups()) if first_cluster is None else first_cluster
        elif line.endswith("+ Simple"):
            simple, name = True, None
        elif simple and (m := _TAG_LINE.search(line)):
            if m[1] == "Name":
                name = m[2]
            else:
                tags[name] = m[2]
                simple = False
    return found, first_cluster, tags


def _mkvextract(path: Path, tmp: Path) -> dict[int, bytes] | None:
    info = json.loads(subprocess.run(["mkvmerge", "-J", str(path)], capture_output=True, text=True).stdout)
    numbers = {t["id"]: t["properties"]["number"] for t in info["tracks"]}
    if not numbers:
        return {}
    args = [a for tid in numbers for a in ("--raw", f"{tid}:{tmp / f'{tid}.raw'}")]
    out = subprocess.run(["mkvextract", str(path), "tracks", *args], capture_output=True, text=True)
    if out.returncode == 2 and "could not be opened" in out.stdout:
        # output-get-media-equal-timecode.mkv: its SeekHead points into the Cluster, and
        # mkvextract refuses the file; mkvinfo's frame dump is then the only oracle.
        return None
    assert out.returncode in (0, 1), out.stdout
    return {number: (tmp / f"{tid}.raw").read_bytes() for tid, number in numbers.items()}


def chunk_oracles(body: bytes, tmp: Path) -> list[tuple[int, ChunkOracle]]:
    """Split the body at the EBML headers ebmlite finds and ask mkvtoolnix about each chunk.

    mkvinfo/mkvextract stop at the first chunk of a body whose Clusters have known sizes, so each
    chunk is given to them as a file of its own.
    """
    path = tmp / "body.mkv"
    path.write_bytes(body)
    starts = [0] + [el.offset for el in SCHEMA.load(str(path)) if el.name == "EBML"]
    oracles = []
    for i, (start, end) in enumerate(zip(starts, starts[1:] + [len(body)], strict=True)):
        part = tmp / f"chunk{i}.mkv"
        part.write_bytes(body[start:end])
        found, first_cluster, tags = _mkvinfo(part)
        oracles.append((start, ChunkOracle(found, first_cluster, tags, _mkvextract(part, tmp))))
    return oracles


def check_against_mkvtoolnix(body: bytes, fragments: list[Fragment], tmp: Path) -> None:
    oracles = chunk_oracles(body, tmp)
    assert [f.byte_offset for f in fragments] == [start for start, _ in oracles]
    assert [f.byte_offset + f.size for f in fragments] == [start for start, _ in oracles[1:]] + [len(body)]
    for fragment, (_, oracle) in zip(fragments, oracles, strict=True):
        by_number = {t.track_number: t for t in fragment.tracks.values()}
        numbers = {n for n, _, _ in oracle.frames} | set(oracle.extracted or {})
        assert numbers <= set(by_number)
        for number, track in by_number.items():
            expected = [(ts, data) for n, ts, data in oracle.frames if n == number]
            assert [p for _, p in track.blocks] == [data for _, data in expected]
            assert len(track.blocks) == len(expected)
            base = fragment.producer_ms
            assert [t for t, _ in track.blocks] == [
                base + (ts - oracle.first_cluster_ns) // 10**6 for ts, _ in expected]
            if oracle.extracted is not None and number in oracle.extracted:
                assert track.pcm() == oracle.extracted[number]
        assert {**fragment.tags, **fragment.aws_tags} == oracle.tags


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_frames_match_mkvtoolnix(name, tmp_path):
    require_tools()
    body = sample_bytes(name)
    fragments = parse_bytes(body)
    check_against_mkvtoolnix(body, fragments, tmp_path)
    assert [f.index for f in fragments] == list(range(len(fragments)))
    assert [f.truncated for f in fragments] == [name in TRUNCATED_SAMPLES and f is fragments[-1]
                                                 for f in fragments]
    assert all(f.error is None for f in fragments)


def test_sample_metadata():
    mixed = parse_bytes(sample_bytes("test_mixed_tags.mkv"))
    assert [f.producer_ms for f in mixed] == [i * 5000 for i in range(10)]  # relative producer time
    assert mixed[0].tags["testTag_0"] == "testTag_0_Value"  # Tags before Info
    assert mixed[3].aws_tags["AWS_KINESISVIDEO_CONTINUATION_TOKEN"] == mixed[3].fragment_number
    assert all(len(f.fragment_number) == 47 for f in mixed)
    got = parse_bytes(sample_bytes("output_get_media.mkv"))
    assert [f.producer_ms for f in got] == [1511852108513 + 2000 * i for i in range(5)]
    assert got[0].server_ms == 1511852109126
    sparse = parse_bytes(sample_bytes("output_get_media_sparse_fragments.mkv"))
    assert [f.fragment_number for f in sparse] == [got[i].fragment_number for i in (0, 2, 4)]
    assert [frames(f, "track_1") for f in sparse] == [frames(got[i], "track_1") for i in (0, 2, 4)]
    skewed = parse_bytes(sample_bytes("output-get-media-non-increasing-timecode.mkv"))
    assert all(f.server_ms - f.producer_ms > 259_000_000 for f in skewed)  # 3 days of clock skew
    empty = parse_bytes(sample_bytes("empty-mkv-with-tags.mkv"))
    assert empty[0].tracks["track_1"].blocks == [] and empty[0].fragment_number is not None
    only_tags = parse_bytes(sample_bytes("test_tags_empty_cluster.mkv"))
    assert only_tags[0].tracks == {} and len(only_tags[0].tags) == 5


# -- Connect and Chime bodies from the writer ------------------------------------------------

@pytest.mark.parametrize("to_customer_first", [True, False])
def test_connect_tracks_are_keyed_by_name_in_either_number_order(to_customer_first):
    body, expected = connect_body(3, to_customer_first=to_customer_first)
    fragments = parse_bytes(body)
    assert len(fragments) == 3
    for i, (fragment, want) in enumerate(zip(fragments, expected, strict=True)):
        assert fragment.index == i and not fragment.truncated and fragment.error is None
        assert fragment.fragment_number == want["number"]
        assert (fragment.producer_ms, fragment.server_ms) == (want["producer_ms"], want["producer_ms"] + 170)
        assert fragment.tags == {"ContactId": "contact-A", "InstanceId": "instance-1",
                                 "MimeType": w.MIME_8K, w.CONNECT_TO: "2", w.CONNECT_FROM: "1"}
        assert set(fragment.aws_tags) == {"AWS_KINESISVIDEO_FRAGMENT_NUMBER",
                                          "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
                                          "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"}
        assert list(fragment.tracks) == ([w.CONNECT_TO, w.CONNECT_FROM] if to_customer_first
                                         else [w.CONNECT_FROM, w.CONNECT_TO])
        for name in (w.CONNECT_FROM, w.CONNECT_TO):
            track = fragment.tracks[name]
            assert track.name == name and track.codec_id == "A_AAC"
            assert (track.sample_rate, track.channels) == (8000, 1)
            assert track.track_number == (1 if (name == w.CONNECT_TO) == to_customer_first else 2)
            assert track.pcm() == want[name]
            assert times(fragment, name) == [want["producer_ms"] + 64 * k for k in range(16)]
            assert track.samples == 16 * 512 and track.duration_ms == 1024


def test_connect_body_matches_mkvextract(tmp_path):
    require_tools()
    body, expected = connect_body(4, to_customer_first=False)
    path = tmp_path / "connect.mkv"
    path.write_bytes(body)
    out = subprocess.run(["mkvextract", str(path), "tracks", "--raw", f"0:{tmp_path / 'a.raw'}",
                          "--raw", f"1:{tmp_path / 'b.raw'}"], capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stdout  # 1: it warns about each later chunk's Segment
    info = json.loads(subprocess.run(["mkvmerge", "-J", str(path)], capture_output=True, text=True).stdout)
    names = {t["properties"]["track_name"]: t["id"] for t in info["tracks"]}
    raw = {0: (tmp_path / "a.raw").read_bytes(), 1: (tmp_path / "b.raw").read_bytes()}
    fragments = parse_bytes(body)
    for name in (w.CONNECT_FROM, w.CONNECT_TO):
        ours = b"".join(f.tracks[name].pcm() for f in fragments)
        assert ours == raw[names[name]] == b"".join(e[name] for e in expected)
    check_against_mkvtoolnix(body, fragments, tmp_path)


def test_chime_leg():
    pcm = noise(320 * 50, 7)
    body = w.chime_fragment(fragment_number="42", producer_ms=PRODUCER_MS, server_ms=PRODUCER_MS - 900,
                            transaction_id="tx-1", voice_connector_id="vc-1", call_id="call-1", pcm=pcm)
    (fragment,) = parse_bytes(body)
    assert fragment.tags == {"TransactionId": "tx-1", "VoiceConnectorId": "vc-1", "CallId": "call-1",
                             "MimeType": w.MIME_8K}
    assert fragment.server_ms == PRODUCER_MS - 900  # server earlier than producer is fine
    track = fragment.tracks["AUDIO"]
    assert (track.track_number, track.codec_id, track.sample_rate) == (1, "A_PCM/INT/LIT", 8000)
    assert track.pcm() == pcm and times(fragment, "AUDIO") == [PRODUCER_MS + 20 * k for k in range(50)]


@pytest.mark.parametrize("magic", [w.EBML, w.SEGMENT, w.CLUSTER, w.TAGS])
def test_pcm_containing_element_ids_is_not_split(magic):
    magic_bytes = magic.to_bytes(4, "big")
    # The ID at every alignment, each time followed by a plausible size (unknown / 8-byte / 1-byte).
    payload = b"".join(b"\x00" * k + magic_bytes + size for k in range(4)
                       for size in (w.UNKNOWN_SIZE_8, w.UNKNOWN_SIZE_1, b"\x84"))
    payload += bytes(1024 - len(payload) % 1024 if len(payload) % 1024 else 0)
    pcm = payload * 2
    body = b"".join(w.connect_fragment(
        fragment_number=str(i), producer_ms=PRODUCER_MS + 1024 * i, server_ms=PRODUCER_MS,
        contact_id="c", instance_id="i", from_customer=pcm, to_customer=pcm[::-1]) for i in range(2))
    fragments = parse_bytes(body)
    assert [f.fragment_number for f in fragments] == ["0", "1"]
    for f in fragments:
        assert f.tracks[w.CONNECT_FROM].pcm() == pcm and f.tracks[w.CONNECT_TO].pcm() == pcm[::-1]


def test_reused_stream_keeps_each_fragments_contact():
    a, _ = connect_body(2, contact_id="contact-A")
    b, _ = connect_body(2, contact_id="contact-B", first=2)
    c, _ = connect_body(1, contact_id="contact-A", first=4)
    assert [f.tags["ContactId"] for f in parse_bytes(a + b + c)] == \
        ["contact-A"] * 2 + ["contact-B"] * 2 + ["contact-A"]


def test_error_chunk_between_good_fragments():
    first, expected = connect_body(1)
    last, expected_last = connect_body(1, first=2)
    body = first + w.error_chunk(str(FRAGMENT_NUMBER + 1)) + last
    good, missing, after = parse_bytes(body)
    assert missing.error == ErrorChunk(code="FRAGMENT_NOT_FOUND", error_id=3000, message=None)
    assert missing.fragment_number == str(FRAGMENT_NUMBER + 1)
    assert (missing.producer_ms, missing.server_ms, missing.tracks, missing.tags) == (None, None, {}, {})
    assert not missing.truncated and missing.index == 1
    assert good.error is None and after.error is None
    assert after.tracks[w.CONNECT_FROM].pcm() == expected_last[0][w.CONNECT_FROM]


def test_documented_exception_error_spelling():
    body = chunk(w.tags([("AWS_KINESISVIDEO_FRAGMENT_NUMBER", "7"),
                         ("AWS_KINESISVIDEO_EXCEPTION_ERROR_CODE", "KMS_KEY_DISABLED"),
                         ("AWS_KINESISVIDEO_EXCEPTION_MESSAGE", "key disabled")]))
    (fragment,) = parse_bytes(body)
    assert fragment.error == ErrorChunk("KMS_KEY_DISABLED", None, "key disabled")


def test_tags_before_and_after_the_cluster_all_count():
    body = chunk(
        one_track(), w.tags([("MimeType", "audio/L16;rate=16000;channels=1;")]), aws(),
        cluster(PRODUCER_MS, w.simple_block(1, 0, b"\x01\x00")),
        w.tags([("ContactId", "after-only")]), w.tags([("MimeType", "audio/L16;rate=8000;channels=2;")]))
    (fragment,) = parse_bytes(body)
    assert fragment.tags == {"ContactId": "after-only", "MimeType": "audio/L16;rate=8000;channels=2;"}
    assert (fragment.tracks["AUDIO"].sample_rate, fragment.tracks["AUDIO"].channels) == (8000, 2)


@pytest.mark.parametrize("side", [False, True])
def test_both_timestamp_spellings(side):
    body = chunk(one_track(), aws("9", producer="1782912654.536", server="1782912654.706", side=side),
                 cluster(5, w.simple_block(1, 0, b"ab")))
    (fragment,) = parse_bytes(body)
    assert (fragment.producer_ms, fragment.server_ms) == (1782912654536, 1782912654706)
    assert times(fragment, "AUDIO") == [1782912654536]


@pytest.mark.parametrize("text, ms", [
    ("1782912654.536", 1782912654536), ("1511852109.126", 1511852109126), ("0.000", 0),
    ("5.000", 5000), ("45", 45000), ("1.5", 1500), ("1.2349", 1234), ("0.001", 1),
    ("999999999999.999", 999999999999999), ("soon", None), ("", None), ("-1.000", None),
])
def test_timestamps_convert_to_exact_ms(text, ms):
    (fragment,) = parse_bytes(chunk(aws(producer=text, server=text)))
    assert fragment.producer_ms == ms and fragment.server_ms == ms


def test_relative_and_reset_cluster_timecodes():
    """Frame time = producer time + offset from the chunk's first cluster, whatever the timecodes."""
    body = (chunk(one_track(), aws("1", producer="100.000"),
                  cluster(10014, w.simple_block(1, 0, b"a0"), w.simple_block(1, 20, b"a1")),
                  cluster(10054, w.simple_block(1, -5, b"a2")))
            + chunk(one_track(), aws("2", producer="101.000"), cluster(0, w.simple_block(1, 0, b"b0")))
            + chunk(one_track(), aws("3", producer="102.000"), cluster(0, w.simple_block(1, 7, b"c0"))))
    a, b, c = parse_bytes(body)
    assert times(a, "AUDIO") == [100_000, 100_020, 100_035]
    assert times(b, "AUDIO") == [101_000] and times(c, "AUDIO") == [102_007]


def test_without_producer_timestamp_cluster_time_is_used():
    body = chunk(one_track(), aws(producer=None), cluster(5000, w.simple_block(1, 0, b"x0")),
                 cluster(5100, w.simple_block(1, 10, b"x1")))
    (fragment,) = parse_bytes(body)
    assert fragment.producer_ms is None and times(fragment, "AUDIO") == [5000, 5110]


def test_timecode_scale_is_applied():
    info = w.element(w.INFO, w.uint(0x2AD7B1, 100_000, 8), 2)  # 0.1 ms per tick
    body = chunk(info, one_track(), aws(producer="10.000"),
                 cluster(50, w.simple_block(1, 0, b"a"), w.simple_block(1, 25, b"b")),
                 cluster(100, w.simple_block(1, 0, b"c")))
    assert times(parse_bytes(body)[0], "AUDIO") == [10_000, 10_002, 10_005]


def test_negative_block_timecodes_are_signed():
    body = chunk(one_track(), aws(producer="10.000"), cluster(1000, w.simple_block(1, 0, b"a")),
                 cluster(2000, w.simple_block(1, -32768, b"b"), w.simple_block(1, 32767, b"c")))
    assert times(parse_bytes(body)[0], "AUDIO") == [10_000, 10_000 + 1000 - 32768, 10_000 + 1000 + 32767]


def test_multiple_clusters_sized_and_unknown():
    body = chunk(
        one_track(), aws(producer="1.000"),
        cluster(0, w.simple_block(1, 0, b"c0"), size_width=1),
        cluster(64, w.simple_block(1, 0, b"c1"), size_width=8),
        cluster(128, w.simple_block(1, 0, b"c2")),  # unknown size, ended by the next Cluster
        cluster(192, w.simple_block(1, 0, b"c3"), size_width=3),
        w.tags([("After", "yes")]))
    (fragment,) = parse_bytes(body)
    assert frames(fragment, "AUDIO") == [b"c0", b"c1", b"c2", b"c3"]
    assert times(fragment, "AUDIO") == [1000, 1064, 1128, 1192] and fragment.tags == {"After": "yes"}


def test_known_size_segment_then_more_chunks():
    segment_body = one_track() + aws("1", producer="1.000") + cluster(0, w.simple_block(1, 0, b"s0"))
    sized = w.ebml_header() + w.element(w.SEGMENT, segment_body, 8)
    body = sized + chunk(one_track(), aws("2", producer="2.000"), cluster(0, w.simple_block(1, 0, b"s1")))
    one, two = parse_bytes(body)
    assert (frames(one, "AUDIO"), frames(two, "AUDIO")) == ([b"s0"], [b"s1"])
    assert not one.truncated and two.byte_offset == len(sized)


def test_void_and_crc32_anywhere():
    void, crc = w.element(VOID, bytes(7)), w.element(CRC32, b"\x01\x02\x03\x04")
    body = (void + w.ebml_header() + w._element_id(w.SEGMENT) + w.UNKNOWN_SIZE_8 + crc + void
            + one_track() + void + w.element(w.TAGS, crc + w.element(w.TAG, void + w.simple_tag("K", "v"))) + aws()
            + cluster(PRODUCER_MS, crc, void, w.simple_block(1, 0, b"v0"), void,
                      w.element(BLOCK_GROUP, crc + w.element(BLOCK, block_data(1, 1, b"v1")) + void), crc,
                      w.simple_block(1, 2, b"v2"), size_width=4)
            + void + cluster(PRODUCER_MS + 3, void, crc, w.simple_block(1, 0, b"v3"), void, crc) + void)
    (fragment,) = parse_bytes(body)
    assert frames(fragment, "AUDIO") == [b"v0", b"v1", b"v2", b"v3"]
    assert fragment.tags == {"K": "v"} and fragment.byte_offset == len(void)  # the EBML header


def lacing_body() -> tuple[bytes, list[bytes]]:
    """SimpleBlocks with Xiph, EBML and fixed lacing, plus BlockGroups, on one track."""
    a, b, c = noise(3, 1), noise(600, 2), noise(2, 3)  # 600 needs a multi-byte Xiph size
    xiph = bytes([2, 3, 255, 255, 90]) + a + b + c
    ebml_lace = bytes([2]) + w.size_vint(3) + (0x4000 | (597 + 8191)).to_bytes(2, "big") + a + b + c  # +597
    fixed = bytes([3]) + noise(40, 4)
    blocks = [
        w.element(w.SIMPLE_BLOCK, block_data(1, 0, xiph, 0x82)),
        w.element(w.SIMPLE_BLOCK, block_data(1, 1, ebml_lace, 0x86)),
        w.element(w.SIMPLE_BLOCK, block_data(1, 2, fixed, 0x84)),
        w.element(BLOCK_GROUP, w.element(BLOCK, block_data(1, 3, b"grouped", 0x00)) + w.uint(0x9B, 20)),
        w.element(BLOCK_GROUP, w.element(BLOCK, block_data(1, 4, fixed, 0x04)), 8),
    ]
    body = chunk(w.info("lacing", "lacing"), one_track(), aws(producer="1.000"), cluster(0, *blocks))
    expected = [a, b, c, a, b, c] + [fixed[1 + 10 * k:11 + 10 * k] for k in range(4)] + [b"grouped"]
    expected += [fixed[1 + 10 * k:11 + 10 * k] for k in range(4)]
    return body, expected


def test_blockgroups_and_lacing(tmp_path):
    require_tools()
    body, expected = lacing_body()
    fragments = parse_bytes(body)
    assert frames(fragments[0], "AUDIO") == expected
    assert times(fragments[0], "AUDIO") == [1000] * 3 + [1001] * 3 + [1002] * 4 + [1003] + [1004] * 4
    check_against_mkvtoolnix(body, fragments, tmp_path)


def test_track_names_and_fallbacks():
    entries = (w.Track(1, 11, "Track_audio/L16", "A_AAC"), w.Track(2, 12, "", "A_AAC"),
               w.Track(3, 13, "dup", "A_AAC"), w.Track(4, 14, "dup", "A_AAC"))
    blocks = [w.simple_block(n, 0, bytes([n, 0])) for n in (1, 2, 3, 4, 9)]
    (fragment,) = parse_bytes(chunk(w.tracks(entries), aws(), cluster(0, *blocks)))
    assert {name: t.track_number for name, t in fragment.tracks.items()} == {
        "Track_audio/L16": 1, "track_2": 2, "dup": 3, "dup_4": 4, "track_9": 9}
    assert fragment.tracks["track_9"].codec_id is None
    assert all(t.pcm() == bytes([t.track_number, 0]) for t in fragment.tracks.values())


def test_tracks_are_read_in_every_chunk():
    body, _ = connect_body(1, to_customer_first=True)
    other, _ = connect_body(1, to_customer_first=False, first=1)
    one, two = parse_bytes(body + other)
    assert one.tracks[w.CONNECT_FROM].track_number == 2 and two.tracks[w.CONNECT_FROM].track_number == 1


@pytest.mark.parametrize("track_type, codec, audio", [
    (2, "A_AAC", True),  # Connect: PCM under an AAC codec id
    (2, "A_PCM/INT/LIT", True),
    (1, "V_MPEG4/ISO/AVC", False),
    (0x11, "S_TEXT/UTF8", False),
    (0x12, "B_VOBBTN", False),
    (2, "V_MPEG4/ISO/AVC", False),  # the two disagree: not audio
    (1, "A_AAC", False),
])
def test_a_track_is_audio_when_neither_its_type_nor_its_codec_says_otherwise(track_type, codec, audio):
    entry = w.Track(1, 1, "T", codec, track_type)
    (fragment,) = parse_bytes(chunk(w.tracks([entry]), aws(), cluster(0, w.simple_block(1, 0, b"\x01\x00"))))
    assert fragment.tracks["T"].track_type == track_type
    assert is_audio(fragment.tracks["T"]) is audio


def test_a_track_that_declares_nothing_is_audio_and_the_real_video_sample_is_not():
    (fragment,) = parse_bytes(chunk(one_track(), aws(), cluster(0, w.simple_block(9, 0, b"\x01\x00"))))
    assert (fragment.tracks["track_9"].track_type, fragment.tracks["track_9"].codec_id) == (None, None)
    assert is_audio(fragment.tracks["track_9"]) and is_audio(fragment.tracks["AUDIO"])
    video = parse_bytes(sample_bytes("output_get_media.mkv"))[0].tracks["track_1"]
    assert (video.track_type, video.codec_id) == (1, "V_MPEG4/ISO/AVC") and not is_audio(video)


def audio_entry(number: int, rate: float, channels: int) -> bytes:
    audio = w.element(0xE1, w.element(0xB5, struct.pack(">d", rate)) + w.uint(0x9F, channels))
    return w.element(0xAE, w.uint(0xD7, number) + w.string(0x536E, f"t{number}") + audio)


@pytest.mark.parametrize("mime, described, bare", [
    ("audio/L16;rate=16000;channels=2;", (16000, 2), (16000, 2)),
    ("audio/L16; Rate=24000", (24000, 2), (24000, 1)),  # channels then come from each track
    ("audio/L16;rate=zero;channels=0;", (44100, 2), (8000, 1)),
    (None, (44100, 2), (8000, 1)),
])
def test_sample_rate_and_channels_sources(mime, described, bare):
    """MimeType tag first, then the track's Audio element, then 8000 Hz mono."""
    tracks = w.element(w.TRACKS, audio_entry(1, 44100.0, 2) + w.element(0xAE, w.uint(0xD7, 2)))
    custom = w.tags([("MimeType", mime)]) if mime else b""
    (fragment,) = parse_bytes(chunk(tracks, custom, aws()))
    assert (fragment.tracks["t1"].sample_rate, fragment.tracks["t1"].channels) == described
    assert (fragment.tracks["track_2"].sample_rate, fragment.tracks["track_2"].channels) == bare


# -- streaming ------------------------------------------------------------------------------

def bodies_for_stream_tests() -> dict[str, bytes]:
    connect, _ = connect_body(3)
    return {
        "connect": connect + w.error_chunk("99") + connect_body(1, first=3)[0][:-700],
        "lacing": lacing_body()[0],
        "mixed_tags": sample_bytes("test_mixed_tags.mkv"),
        "truncated_real": sample_bytes("output-get-media-non-increasing-timecode.mkv")[:400_000],
    }


@pytest.mark.parametrize("name", ["connect", "lacing", "mixed_tags", "truncated_real"])
def test_tiny_reads_give_identical_results(name):
    body = bodies_for_stream_tests()[name]
    whole = parse_bytes(body)
    assert list(iter_fragments(TinyReads(body, seed=len(body)))) == whole
    assert list(iter_fragments(io.BytesIO(body), read_size=1)) == whole
    assert list(iter_fragments(io.BytesIO(body), read_size=1000)) == whole


def test_each_fragment_is_yielded_before_the_rest_is_read():
    body, _ = connect_body(20)
    stream = CountingReads(body)
    fragments = iter_fragments(stream, read_size=4096)
    first = next(fragments)
    assert first.index == 0 and stream.consumed < 2 * len(body) / 20
    assert len(list(fragments)) == 19 and stream.consumed == len(body)


def test_memory_is_bounded_by_one_fragment():
    body, _ = connect_body(300)  # ~10 MB, fragments of ~34 KB
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_fragments(io.BytesIO(body)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 300 and peak < 600_000  # a read (64 KiB) + a fragment (~34 KB) + overheads


def element_spans(body: bytes) -> tuple[list[int], set[int], list[tuple[int, int, int]]]:
    """From ebmlite: where each chunk's EBML header header ends, the offsets at which a cut falls
    between children of unknown-size elements, and each SimpleBlock as (chunk, end, track)."""
    doc = SCHEMA.loads(body)
    first_header_end = 4 + 9 - body[4].bit_length()  # ebmlite hides the first EBML header
    header_ends = [first_header_end] + [el.payloadOffset for el in doc if el.name == "EBML"]
    clean, blocks = {len(body)}, []
    for i, segment in enumerate(el for el in doc if el.name == "Segment"):
        clean.add(segment.payloadOffset)
        for child in segment:
            clean.add(child.payloadOffset + child.size)
            if child.name == "Cluster":
                clean.add(child.payloadOffset)
                for element in child:
                    end = element.payloadOffset + element.size
                    clean.add(end)
                    if element.name == "SimpleBlock":
                        blocks.append((i, end, body[element.payloadOffset] & 0x7F))
    return header_ends, clean, blocks


def test_every_prefix_yields_complete_blocks_only():
    full_body, _ = connect_body(2, block_bytes=16, blocks_per_track=3)
    body = full_body + w.error_chunk("77")
    full = parse_bytes(body)
    header_ends, clean, blocks = element_spans(body)
    for cut in range(len(body) + 1):
        got = parse_bytes(body[:cut])
        # A cut inside the first header still says "truncated", through one empty fragment.
        assert len(got) == max(sum(end <= cut for end in header_ends), cut > 0), cut
        for i, fragment in enumerate(got):
            assert fragment.truncated == (i == len(got) - 1 and cut not in clean), cut
            for name, track in fragment.tracks.items():
                n = sum(1 for c, end, number in blocks if c == i and end <= cut and number == track.track_number)
                assert track.blocks == full[i].tracks[name].blocks[:n], cut


def test_cut_inside_a_block_keeps_only_whole_blocks():
    body, expected = connect_body(2)
    cut = len(body) - 5000  # inside the second fragment's Cluster
    one, two = parse_bytes(body[:cut])
    assert not one.truncated and two.truncated
    got = two.tracks[w.CONNECT_FROM].pcm()
    assert 0 < len(got) < 16 * 1024 and len(got) % 1024 == 0
    assert expected[1][w.CONNECT_FROM].startswith(got)


# -- malformed input ------------------------------------------------------------------------

def error_of(body: bytes, read_size: int = 65536) -> ParseError:
    with pytest.raises(ParseError) as info:
        list(iter_fragments(io.BytesIO(body), read_size=read_size))
    assert str(info.value).endswith(f"at byte {info.value.offset}")
    return info.value


def test_garbage_is_a_parse_error_at_offset_zero():
    assert error_of(b"hello, world; this is not Matroska").offset == 0
    assert error_of(noise(4096, 3)).offset in range(4096)
    assert error_of(b"\x00" * 64).offset == 0


def test_parse_error_comes_after_the_fragments_before_it():
    good, _ = connect_body(3)
    stream = iter_fragments(io.BytesIO(good + b"\x42\x86garbage"))  # inside the last Segment
    assert [next(stream).index, next(stream).index] == [0, 1]
    with pytest.raises(ParseError) as info:
        next(stream)
    assert info.value.offset == len(good)


def unknown_segment(*parts: bytes) -> bytes:
    return w.ebml_header() + w._element_id(w.SEGMENT) + w.UNKNOWN_SIZE_8 + b"".join(parts)


HEAD = len(w.ebml_header()) + 12  # offset of the first Segment child


def test_absurd_sizes():
    # 2**56 - 2, the largest size an 8-byte vint can state.
    huge = b"\x01" + b"\xff" * 6 + b"\xfe"
    assert error_of(unknown_segment(b"\xec" + huge)).offset == HEAD  # Void
    assert error_of(w.ebml_header() + b"\x18\x53\x80\x67" + huge).offset == len(w.ebml_header())
    body = unknown_segment(one_track(), cluster(0, b"\xa3" + huge))
    assert error_of(body).offset == len(body) - 9
    too_big = w.size_vint(MAX_BUFFERED_SIZE + 1, 8)
    body = unknown_segment(one_track(), cluster(0, b"\xa3" + too_big))
    assert "too large" in error_of(body).message


def test_sizes_beyond_a_sized_parent():
    tag = w.simple_tag("K", "v")
    lying_tags = (w._element_id(w.TAGS) + w.size_vint(3 + len(tag)) + w._element_id(w.TAG)
                  + w.size_vint(len(tag) + 1) + tag + b"\x00")
    assert "beyond its parent" in error_of(unknown_segment(lying_tags)).message
    timecode, block = w.uint(w.TIMECODE, 0, 8), w.simple_block(1, 0, b"abcd")
    lying_cluster = w.element(w.CLUSTER, timecode + block[:-1], 1) + block[-1:]  # block 1 byte too long
    err = error_of(unknown_segment(one_track(), lying_cluster))
    assert err.offset == HEAD + len(one_track()) + 5 + len(timecode) and "beyond its parent" in err.message
    sized_segment = w.ebml_header() + w._element_id(w.SEGMENT) + w.size_vint(5) + b"\xec\x8a" + bytes(3) + bytes(10)
    assert error_of(sized_segment).offset == len(w.ebml_header()) + 5


@pytest.mark.parametrize("bad, where", [
    (b"\x00\x81\x00", 0),  # ID starting with 0x00
    (b"\x0f\x00\x00\x00\x81\x00", 0),  # a 5-byte ID
    (b"\xec\x00" + bytes(8), 1),  # a size vint of 9+ bytes
])
def test_invalid_vints(bad, where):
    assert error_of(unknown_segment(bad)).offset == HEAD + where
    track_vint = w.element(w.SIMPLE_BLOCK, b"\x00" + bytes(3) + b"pcm", 8)
    assert "block header" in error_of(unknown_segment(one_track(), cluster(0, track_vint))).message


@pytest.mark.parametrize("body, message", [
    (unknown_segment(w.simple_block(1, 0, b"x")), "unexpected element 0xA3"),
    (w.ebml_header() + w.element(w.SEGMENT, w.ebml_header(), 8), "inside a sized Segment"),
    (unknown_segment(one_track(), cluster(0, w.tracks([]), size_width=8)), "inside a sized Cluster"),
    (unknown_segment(one_track(), cluster(0, w.uint(0x4286, 1))), "unknown-size Cluster"),
    (unknown_segment(w._element_id(w.CLUSTER) + w.UNKNOWN_SIZE_1 + w.simple_block(1, 0, b"x")),
     "before the Cluster Timecode"),
    (unknown_segment(w._element_id(w.TAGS) + w.UNKNOWN_SIZE_1), "may not have unknown size"),
    (w.ebml_header() + w.ebml_header(), "not followed by a Segment"),
    (w.element(w.CLUSTER, b""), "expected an EBML header or a Segment"),
])
def test_wrong_nesting(body, message):
    assert message in error_of(body).message


def test_huge_claims_are_never_allocated():
    """Headers claiming GBs cost neither memory nor a failure before the claim is disproved."""
    claims = [
        unknown_segment(one_track(), cluster(0, b"\xa3" + w.size_vint(MAX_BUFFERED_SIZE, 8))),
        unknown_segment(w._element_id(w.TAGS) + w.size_vint(MAX_BUFFERED_SIZE - 1, 8)),
        unknown_segment(one_track(), cluster(0, b"\xec" + w.size_vint(1 << 31, 8), noise(300_000, 1))),
    ]
    tracemalloc.start()
    try:
        for body in claims:
            (fragment,) = parse_bytes(body)
            assert fragment.truncated
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
