"""Byte-faithful KVS media chunks for the local world.

A GetMediaForFragmentList body is a concatenation of per-fragment *chunks*; each chunk is an EBML
header plus one unknown-size Segment (shared/domain/kvs.md §1.1).  This module builds those chunks
the way the two telephony producers lay them out, so that the emulator can serve them and the
parser can be tested on bytes that look like the real thing.

Amazon Connect (kvs.md §2, mirrored from the real ebmlite dump of a Connect fragment):
  EBML header, Segment(size 01 FF FF FF FF FF FF FF) {
    Info(SegmentUID, TimecodeScale=1ms as 8-byte uint, Title, MuxingApp, WritingApp),
    Tracks { TrackEntry x2: TrackNumber, TrackUID(8 bytes), TrackType=2, Name, CodecID 'A_AAC',
             CodecPrivate(2 bytes); no Audio element },
    Tags(ContactId) Tags(InstanceId) Tags(MimeType) Tags(AUDIO_TO_CUSTOMER) Tags(AUDIO_FROM_CUSTOMER),
    Tags { Tag { AWS_KINESISVIDEO_FRAGMENT_NUMBER, _SERVER_TIMESTAMP, _PRODUCER_TIMESTAMP } },
    Cluster(size FF) { Timecode(8 bytes, absolute ms), Position 0,
                       SimpleBlock(8-byte size) x 2N alternating tracks, 1024 bytes of s16le PCM },
    the five custom Tags again }
  Every Tags/Tag/SimpleTag/TagName/TagString size field is 8 bytes wide, as in the dump.

Chime Voice Connector (kvs.md §3; the wire layout is not public, so these are our choices):
  one stream per call leg, one track (TrackNumber 1, Name 'AUDIO', CodecID 'A_PCM/INT/LIT',
  no Audio element), MimeType 'audio/L16;rate=8000;channels=1;', 20 ms blocks (320 bytes, one RTP
  packet at 8 kHz), absolute cluster timecodes like every KVS producer-SDK stream, and the persistent
  fragment tags TransactionId, VoiceConnectorId and CallId before and after the Cluster.
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Element IDs (Matroska / EBML specification).
EBML = 0x1A45DFA3
SEGMENT = 0x18538067
INFO = 0x1549A966
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TAGS = 0x1254C367
TAG = 0x7373
SIMPLE_TAG = 0x67C8
TAG_NAME = 0x45A3
TAG_STRING = 0x4487
CLUSTER = 0x1F43B675
TIMECODE = 0xE7
POSITION = 0xA7
SIMPLE_BLOCK = 0xA3

UNKNOWN_SIZE_8 = b"\x01\xff\xff\xff\xff\xff\xff\xff"
UNKNOWN_SIZE_1 = b"\xff"

CONNECT_FROM = "AUDIO_FROM_CUSTOMER"
CONNECT_TO = "AUDIO_TO_CUSTOMER"
CHIME_TRACK = "AUDIO"
MIME_8K = "audio/L16;rate=8000;channels=1;"
CONNECT_BLOCK_BYTES = 1024  # 512 samples, 64 ms at 8 kHz
CHIME_BLOCK_BYTES = 320  # 160 samples, 20 ms at 8 kHz


def _element_id(eid: int) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def size_vint(size: int, width: int | None = None) -> bytes:
    """EBML variable-size integer; ``width`` forces a (possibly non-minimal) encoding."""
    if width is None:
        width = 1
        while size >= (1 << (7 * width)) - 1:
            width += 1
    if not 1 <= width <= 8 or size >= (1 << (7 * width)) - 1:
        raise ValueError(f"size {size} does not fit a {width}-byte vint")
    return ((1 << (7 * width)) | size).to_bytes(width, "big")


def element(eid: int, payload: bytes, size_width: int | None = None) -> bytes:
    return _element_id(eid) + size_vint(len(payload), size_width) + payload


def uint(eid: int, value: int, width: int | None = None) -> bytes:
    nbytes = width or max(1, (value.bit_length() + 7) // 8)
    return element(eid, value.to_bytes(nbytes, "big"), 1)


def string(eid: int, value: str, size_width: int = 1) -> bytes:
    return element(eid, value.encode("utf-8"), size_width)


def ebml_header() -> bytes:
    return element(
        EBML,
        uint(0x4286, 1) + uint(0x42F7, 1) + uint(0x42F2, 4) + uint(0x42F3, 8)
        + string(0x4282, "matroska") + uint(0x4287, 2) + uint(0x4285, 2),
        1,
    )


def simple_tag(name: str, value: str) -> bytes:
    return element(SIMPLE_TAG, string(TAG_NAME, name, 8) + string(TAG_STRING, value, 8), 8)


def tags(pairs: Sequence[tuple[str, str]]) -> bytes:
    """One Tags element holding one Tag with the given SimpleTags (no Targets, as KVS writes)."""
    return element(TAGS, element(TAG, b"".join(simple_tag(n, v) for n, v in pairs), 8), 8)


def kvs_seconds(ms: int) -> str:
    """KVS writes timestamps as epoch seconds with millisecond decimals: ``1782912654.536``."""
    return f"{ms // 1000}.{ms % 1000:03d}"


@dataclass(frozen=True)
class Track:
    number: int
    uid: int
    name: str
    codec_id: str
    track_type: int = 2  # Matroska TrackType: 2 audio (every KVS track), 1 video, 0x11 subtitles


def info(title: str, segment_seed: str) -> bytes:
    segment_uid = hashlib.sha256(segment_seed.encode()).digest()[:16]
    app = "Kinesis Video SDK 1.1.0 JNI 2.0"
    return element(
        INFO,
        element(0x73A4, segment_uid, 1) + uint(0x2AD7B1, 1_000_000, 8)
        + string(0x7BA9, title) + string(0x4D80, app) + string(0x5741, app),
        2,
    )


def tracks(entries: Iterable[Track]) -> bytes:
    body = b""
    for t in entries:
        body += element(
            TRACK_ENTRY,
            uint(0xD7, t.number) + uint(0x73C5, t.uid, 8) + uint(0x83, t.track_type)
            + string(0x536E, t.name) + string(0x86, t.codec_id) + element(0x63A2, b"\x15\x88", 1),
            4,
        )
    return element(TRACKS, body, 4)


def simple_block(track_number: int, rel_timecode_ms: int, payload: bytes) -> bytes:
    header = size_vint(track_number) + struct.pack(">hB", rel_timecode_ms, 0x80)
    return element(SIMPLE_BLOCK, header + payload, 8)


def cluster(timecode_ms: int, blocks: Iterable[bytes]) -> bytes:
    """An unknown-size Cluster (size byte FF), as the KVS producer SDK writes it."""
    return (
        _element_id(CLUSTER) + UNKNOWN_SIZE_1
        + uint(TIMECODE, timecode_ms, 8) + uint(POSITION, 0) + b"".join(blocks)
    )


def aws_fragment_tags(fragment_number: str, server_ms: int, producer_ms: int) -> bytes:
    return tags([
        ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", fragment_number),
        ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", kvs_seconds(server_ms)),
        ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", kvs_seconds(producer_ms)),
    ])


def chunk(segment_body: bytes) -> bytes:
    return ebml_header() + _element_id(SEGMENT) + UNKNOWN_SIZE_8 + segment_body


def _blocks(pcm: bytes, block_bytes: int) -> list[bytes]:
    if len(pcm) % 2:
        raise ValueError("s16le PCM must have an even number of bytes")
    return [pcm[i:i + block_bytes] for i in range(0, len(pcm), block_bytes)]


def block_ms(nbytes: int, rate: int = 8000) -> int:
    return nbytes // 2 * 1000 // rate


def connect_fragment(
    *,
    fragment_number: str,
    producer_ms: int,
    server_ms: int,
    contact_id: str,
    instance_id: str,
    from_customer: bytes,
    to_customer: bytes,
    to_customer_first: bool = True,
    block_bytes: int = CONNECT_BLOCK_BYTES,
) -> bytes:
    """One Connect chunk: both directions' PCM for the same span, blocks alternating TO/FROM.

    ``to_customer_first`` gives TrackNumber 1 to AUDIO_TO_CUSTOMER (as in the citizensadvice dump);
    False gives it to AUDIO_FROM_CUSTOMER (as in the blog dump).  The TrackUIDs stay fixed
    (TO = 2, FROM = 1) and the AUDIO_* tags carry the UIDs, as both real dumps show.
    """
    to_no, from_no = (1, 2) if to_customer_first else (2, 1)
    entries = sorted(
        [Track(to_no, 2, CONNECT_TO, "A_AAC"), Track(from_no, 1, CONNECT_FROM, "A_AAC")],
        key=lambda t: t.number,
    )
    custom = (
        tags([("ContactId", contact_id)]) + tags([("InstanceId", instance_id)])
        + tags([("MimeType", MIME_8K)]) + tags([(CONNECT_TO, "2")]) + tags([(CONNECT_FROM, "1")])
    )
    to_blocks, from_blocks = _blocks(to_customer, block_bytes), _blocks(from_customer, block_bytes)
    blocks = []
    t_ms = 0
    for i in range(max(len(to_blocks), len(from_blocks))):
        for number, seq in ((to_no, to_blocks), (from_no, from_blocks)):
            if i < len(seq):
                blocks.append(simple_block(number, t_ms, seq[i]))
        t_ms += block_ms(block_bytes)
    body = (
        info("Kinesis Video SDK", fragment_number) + tracks(entries) + custom
        + aws_fragment_tags(fragment_number, server_ms, producer_ms)
        + cluster(producer_ms, blocks) + custom
    )
    return chunk(body)


def chime_fragment(
    *,
    fragment_number: str,
    producer_ms: int,
    server_ms: int,
    transaction_id: str,
    voice_connector_id: str,
    call_id: str,
    pcm: bytes,
    block_bytes: int = CHIME_BLOCK_BYTES,
) -> bytes:
    """One Chime Voice Connector chunk: a single-track stream of one call leg."""
    custom = (
        tags([("TransactionId", transaction_id)]) + tags([("VoiceConnectorId", voice_connector_id)])
        + tags([("CallId", call_id)]) + tags([("MimeType", MIME_8K)])
    )
    blocks = [
        simple_block(1, i * block_ms(block_bytes), b) for i, b in enumerate(_blocks(pcm, block_bytes))
    ]
    body = (
        info("Kinesis Video SDK", fragment_number) + tracks([Track(1, 1, CHIME_TRACK, "A_PCM/INT/LIT")])
        + custom + aws_fragment_tags(fragment_number, server_ms, producer_ms)
        + cluster(producer_ms, blocks) + custom
    )
    return chunk(body)


def error_chunk(fragment_number: str, code: str = "FRAGMENT_NOT_FOUND", error_id: int = 3000) -> bytes:
    """The in-band error chunk KVS returns with HTTP 200 (aws/aws-sdk-js#3217)."""
    return chunk(tags([
        ("AWS_KINESISVIDEO_ERROR_CODE", code),
        ("AWS_KINESISVIDEO_ERROR_ID", str(error_id)),
        ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", fragment_number),
    ]))
