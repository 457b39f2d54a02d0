"""Streaming parser for Kinesis Video Streams media bodies (GetMedia / GetMediaForFragmentList).

A body is a concatenation of per-fragment *chunks*, each an EBML header plus one Segment, usually of
unknown size (shared/domain/kvs.md §1.1).  ``iter_fragments`` walks the bytes as they arrive and
yields one :class:`Fragment` per chunk as soon as that chunk ends (next EBML header, next Segment,
or EOF; the last chunk is always delivered), with the audio of every track keyed by track *name*.

Structure rules (kvs.md §1.2, §6.1):
- Element sizes may be any vint width 1-8; an all-ones value means "unknown size", which only a
  Segment or a Cluster may use.  An unknown-size Segment ends at the next EBML header or Segment; an
  unknown-size Cluster ends at the next element that is not a Cluster child (Cluster, Tags, Cues,
  any other Segment child, EBML header, Segment) or at EOF.  Void and CRC-32 are skipped anywhere.
- SeekHead, Cues, Chapters, Attachments and unknown elements inside a sized parent are skipped
  without being buffered.  SeekHead offsets are never followed: producers write wrong ones.
- Chunks are split structurally, never by scanning for magic bytes, so PCM that happens to contain
  ``1A 45 DF A3`` is just PCM.

Metadata (kvs.md §1.3, §6.3): every SimpleTag of every Tags element anywhere in the Segment (before
or after the Cluster) is collected; a later value of the same name wins.  ``AWS_KINESISVIDEO_*``
tags go to ``Fragment.aws_tags``, the others to ``Fragment.tags``.  Both timestamp spellings
(``..._SERVER_TIMESTAMP`` and ``..._SERVER_SIDE_TIMESTAMP``, likewise PRODUCER) are accepted; their
decimal-seconds strings are converted to integer ms exactly (digits beyond the millisecond are
truncated).  A chunk carrying ``AWS_KINESISVIDEO_ERROR_CODE``/``_ERROR_ID`` (or the documented
``_EXCEPTION_ERROR_CODE``/``_EXCEPTION_MESSAGE``) is an in-band error: ``Fragment.error`` is set.

Tracks (kvs.md §2, §6.4): the Tracks element of each chunk maps track numbers to names (Connect
swaps the numbers between streams).  A track without a Name is called ``track_<number>``; the name
is otherwise kept verbatim (the legacy Connect name ``Track_audio/L16`` included).  TrackType and
CodecID are reported; :func:`is_audio` reads them only to tell audio from video, subtitles or
buttons, never for the codec (Connect says ``A_AAC`` for PCM).  Sample rate and channels come from
the ``MimeType`` tag (``audio/L16;rate=8000;channels=1;``), else the track's Audio element, else
8000 Hz mono.

Time (kvs.md §1.4): a frame's absolute time in ms is
``producer_ms + (cluster timecode + block timecode - first cluster timecode of the chunk)``, the
timecodes scaled by the chunk's TimecodeScale.  This works for absolute (Connect) and relative or
reset cluster timecodes alike.  Without a producer timestamp the cluster time itself is used
(``first cluster timecode`` takes the place of ``producer_ms``).  All frames of a laced block carry
the block's time, as Matroska defines no per-frame time inside a lace.

Truncation: when the body ends inside an element, every complete block is still delivered (a cut
block's partial payload never is) and the last fragment has ``truncated=True``.  That includes a
chunk with an EBML header and no Segment yet, and a body cut inside its very first element header
(one empty fragment).  Two cuts cannot be recognised: one exactly between two children of an
unknown-size element looks like a complete body, and one inside the first bytes of the next
chunk's EBML header flags the previous, complete fragment (the new chunk is not yet recognisable).

Errors: malformed input raises :class:`ParseError` (with the absolute byte offset) and nothing
else, after yielding the fragments before the one it is in (that one is dropped).  Sizes are
checked before anything is read: an element claiming more than its sized parent
holds, more than ``MAX_ELEMENT_SIZE``, or (for elements that are buffered whole: blocks, Tags,
Tracks, Info) more than ``MAX_BUFFERED_SIZE`` is an error, so memory stays bounded by one fragment's
frames plus one read, whatever the headers claim.  Every loop step consumes at least one element
header, so the parser cannot spin.
"""
from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import ebmlite

__all__ = [
    "ErrorChunk", "Fragment", "ParseError", "TrackAudio", "is_audio", "iter_fragments", "parse_bytes",
    "DEFAULT_SAMPLE_RATE", "DEFAULT_CHANNELS", "MAX_BUFFERED_SIZE", "MAX_ELEMENT_SIZE",
]

_SCHEMA = ebmlite.loadSchema("matroska.xml")


def _eid(name: str) -> int:
    return _SCHEMA[name].id


EBML = _eid("EBML")
SEGMENT = _eid("Segment")
INFO = _eid("Info")
TIMECODE_SCALE = _eid("TimecodeScale")
TRACKS = _eid("Tracks")
TRACK_ENTRY = _eid("TrackEntry")
TRACK_NUMBER = _eid("TrackNumber")
TRACK_NAME = _eid("Name")
TRACK_TYPE = _eid("TrackType")
CODEC_ID = _eid("CodecID")
AUDIO = _eid("Audio")
SAMPLING_FREQUENCY = _eid("SamplingFrequency")
CHANNELS = _eid("Channels")
TAGS = _eid("Tags")
TAG = _eid("Tag")
SIMPLE_TAG = _eid("SimpleTag")
TAG_NAME = _eid("TagName")
TAG_STRING = _eid("TagString")
CLUSTER = _eid("Cluster")
TIMECODE = _eid("Timecode")
SIMPLE_BLOCK = _eid("SimpleBlock")
BLOCK_GROUP = _eid("BlockGroup")
# Block (0xA1, Matroska spec) is missing from ebmlite's abridged schema, whose BlockGroup has no
# children at all.
BLOCK = 0xA1

SEGMENT_CHILDREN = frozenset(_SCHEMA["Segment"].children)
CLUSTER_CHILDREN = frozenset(_SCHEMA["Cluster"].children)
GLOBAL_ELEMENTS = frozenset(_SCHEMA.globals)  # Void, CRC-32, SignatureSlot: legal anywhere
# An unknown-size Cluster ends at the first element that can only be its sibling or an ancestor's.
_ENDS_CLUSTER = SEGMENT_CHILDREN | {EBML, SEGMENT}

MAX_BUFFERED_SIZE = 16 << 20  # a block, Tags, Tracks or Info larger than this is not KVS output
MAX_ELEMENT_SIZE = 1 << 32  # KVS fragments are at most 50 MB; anything near 2**56 is corruption
DEFAULT_SAMPLE_RATE = 8000
DEFAULT_CHANNELS = 1
TRACK_TYPE_AUDIO = 2  # Matroska TrackType: 1 video, 2 audio, 0x11 subtitles, 0x12 buttons, ...

_AWS_PREFIX = "AWS_KINESISVIDEO_"
_FRAGMENT_NUMBER = "AWS_KINESISVIDEO_FRAGMENT_NUMBER"
_PRODUCER_TAGS = ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", "AWS_KINESISVIDEO_PRODUCER_SIDE_TIMESTAMP")
_SERVER_TAGS = ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", "AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP")
_ERROR_CODE_TAGS = ("AWS_KINESISVIDEO_ERROR_CODE", "AWS_KINESISVIDEO_EXCEPTION_ERROR_CODE")
_ERROR_ID_TAG = "AWS_KINESISVIDEO_ERROR_ID"
_ERROR_MESSAGE_TAG = "AWS_KINESISVIDEO_EXCEPTION_MESSAGE"
_MIME_TYPE_TAG = "MimeType"
_CACHE_ENTRIES = 64  # memoized Tags / Tracks payloads (see _Parser._tags)
_CACHE_KEY_MAX = 4096
_DECIMAL_SECONDS = re.compile(r"([0-9]+)(?:\.([0-9]+))?")

# Width of an element ID / a size vint, indexed by its first byte (0 = invalid).  IDs are at most
# 4 bytes (EBMLMaxIDLength), sizes at most 8.
_ID_WIDTH = bytes(9 - b.bit_length() if b >= 0x10 else 0 for b in range(256))
_SIZE_WIDTH = bytes(9 - b.bit_length() if b else 0 for b in range(256))
_SIZE_MASK = [0] + [(1 << (7 * w)) - 1 for w in range(1, 9)]  # also the "unknown size" value


class ParseError(ValueError):
    """The body is not a well-formed KVS media body; ``offset`` is the absolute byte offset."""

    def __init__(self, message: str, offset: int):
        super().__init__(f"{message} at byte {offset}")
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class ErrorChunk:
    """An in-band error chunk: KVS could not serve this fragment (kvs.md §1.5)."""
    code: str | None
    error_id: int | None
    message: str | None = None


@dataclass(frozen=True)
class TrackAudio:
    """One track's frames in one fragment, in body order; ``blocks`` = (absolute ms, payload)."""
    name: str
    track_number: int
    codec_id: str | None
    sample_rate: int
    channels: int
    blocks: list[tuple[int, bytes]]
    track_type: int | None = None  # Matroska TrackType, None when the TrackEntry has none

    def pcm(self) -> bytes:
        return b"".join(payload for _, payload in self.blocks)

    @property
    def nbytes(self) -> int:
        return sum(len(payload) for _, payload in self.blocks)

    @property
    def samples(self) -> int:
        """Sample frames (one sample per channel), assuming 16-bit PCM."""
        return self.nbytes // (2 * self.channels)

    @property
    def duration_ms(self) -> float:
        return self.samples * 1000 / self.sample_rate


def is_audio(track: TrackAudio) -> bool:
    """Whether a track carries audio: nothing it declares says otherwise.  Its TrackType, when
    present, is audio (2), and its CodecID, when present, names an audio codec (``A_...``); which
    one is never believed, since Connect's ``A_AAC`` is PCM (kvs.md §2).  A track that declares
    neither (blocks with no TrackEntry) is audio: KVS audio producers send PCM, and AWS's own
    consumers take every block (kvs.md §3)."""
    return (track.track_type in (None, TRACK_TYPE_AUDIO)
            and (not track.codec_id or track.codec_id.startswith("A_")))


@dataclass(frozen=True)
class Fragment:
    """One chunk of the body: a KVS fragment, or an in-band error chunk when ``error`` is set."""
    index: int  # position of the chunk in the body, from 0
    byte_offset: int  # absolute offset of the chunk's first byte
    size: int  # bytes from byte_offset to the next chunk or the end of the body
    fragment_number: str | None  # a decimal string; compare as int
    producer_ms: int | None
    server_ms: int | None
    tags: dict[str, str]
    aws_tags: dict[str, str]
    tracks: dict[str, TrackAudio]
    error: ErrorChunk | None
    truncated: bool


class _Truncated(Exception):
    """The body ended inside an element."""


class _Reader:
    """A read buffer over ``stream`` with an absolute offset; whole elements are made contiguous.

    The buffer is immutable ``bytes`` so that frame payloads are single-copy slices.  Refilling
    copies only the unconsumed tail (smaller than the element being completed), so every body byte
    is read once and copied at most twice.
    """

    __slots__ = ("_read", "read_size", "buf", "pos", "base", "eof")

    def __init__(self, stream: BinaryIO, read_size: int):
        if read_size < 1:
            raise ValueError("read_size must be positive")
        self._read = stream.read
        self.read_size = read_size
        self.buf = b""
        self.pos = 0
        self.base = 0  # absolute offset of buf[0]
        self.eof = False

    def offset(self) -> int:
        return self.base + self.pos

    def fill(self, n: int) -> bool:
        """Make ``n`` bytes available from ``pos``; False if the body ends first."""
        have = len(self.buf) - self.pos
        if have >= n:
            return True
        if self.eof:
            return False
        parts = [self.buf[self.pos:]]
        self.base += self.pos
        self.pos = 0
        while have < n:
            data = self._read(max(self.read_size, n - have))
            if not data:
                self.eof = True
                break
            parts.append(data)
            have += len(data)
        self.buf = b"".join(parts)
        return have >= n

    def need(self, n: int) -> None:
        if not self.fill(n):
            raise _Truncated

    def skip(self, n: int) -> None:
        """Consume ``n`` bytes, discarding what is not yet buffered without keeping it."""
        have = len(self.buf) - self.pos
        if n <= have:
            self.pos += n
            return
        n -= have
        self.base += len(self.buf)
        self.buf, self.pos = b"", 0
        while n > 0:
            data = self._read(min(n, self.read_size))
            if not data:
                self.eof = True
                raise _Truncated
            n -= len(data)
            self.base += len(data)


def _decode_header(buf: bytes, p: int, end: int, base: int) -> tuple[int, int | None, int] | None:
    """(id, size or None if unknown, header length) of the element at ``p``; None if cut at ``end``."""
    id_width = _ID_WIDTH[buf[p]]
    if not id_width:
        raise ParseError(f"invalid element ID byte 0x{buf[p]:02X}", base + p)
    if p + id_width >= end:
        return None
    size_width = _SIZE_WIDTH[buf[p + id_width]]
    if not size_width:
        raise ParseError("invalid size (a vint wider than 8 bytes)", base + p + id_width)
    q = p + id_width + size_width
    if q > end:
        return None
    size = int.from_bytes(buf[p + id_width:q], "big") & _SIZE_MASK[size_width]
    eid = buf[p] if id_width == 1 else int.from_bytes(buf[p:p + id_width], "big")
    return eid, (None if size == _SIZE_MASK[size_width] else size), q - p


def _children(buf: bytes, p: int, end: int, base: int) -> list[tuple[int, int, int]]:
    """(id, payload start, payload end) of each child in the fully buffered region [p, end)."""
    out = []
    while p < end:
        header = _decode_header(buf, p, end, base)
        if header is None:
            raise ParseError("element header crosses its parent's end", base + p)
        eid, size, header_len = header
        if size is None:
            raise ParseError(f"element 0x{eid:X} has unknown size inside a sized element", base + p)
        start = p + header_len
        p = start + size
        if p > end:
            raise ParseError(f"element 0x{eid:X} extends beyond its parent", base + start - header_len)
        out.append((eid, start, p))
    return out


def _uint(buf: bytes, start: int, end: int, base: int) -> int:
    if end - start > 8:
        raise ParseError("integer element wider than 8 bytes", base + start)
    return int.from_bytes(buf[start:end], "big")


def _text(buf: bytes, start: int, end: int) -> str:
    # Tag values are metadata: undecodable bytes must not fail the audio.  EBML strings may be
    # zero-padded.
    return buf[start:end].decode("utf-8", "replace").rstrip("\x00")


def _seconds_to_ms(value: str | None) -> int | None:
    """``"1782912654.536"`` -> 1782912654536, exactly (no float); None if not a decimal number."""
    match = _DECIMAL_SECONDS.fullmatch(value.strip()) if value is not None else None
    if match is None:
        return None
    whole, frac = match.groups()
    return int(whole) * 1000 + int(((frac or "") + "000")[:3])


def _mime_audio(mime: str | None) -> tuple[int | None, int | None]:
    """(rate, channels) from ``audio/L16;rate=8000;channels=1;``; None where absent or invalid."""
    params = {}
    for part in (mime or "").split(";")[1:]:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip()

    def positive(key: str) -> int | None:
        value = params.get(key, "")
        return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else None

    return positive("rate"), positive("channels")


class _TrackEntry:
    __slots__ = ("number", "name", "track_type", "codec_id", "rate", "channels")

    def __init__(self, number: int):
        self.number = number
        self.name: str | None = None
        self.track_type: int | None = None
        self.codec_id: str | None = None
        self.rate: int | None = None
        self.channels: int | None = None


class _FragmentBuilder:
    """What one chunk has shown so far; frames are kept per track number in chunk-relative ticks."""

    __slots__ = ("index", "byte_offset", "has_segment", "tags", "timecode_scale", "entries",
                 "frames", "first_timecode", "truncated")

    def __init__(self, index: int, byte_offset: int):
        self.index = index
        self.byte_offset = byte_offset
        self.has_segment = False
        self.tags: dict[str, str] = {}
        self.timecode_scale = 1_000_000  # ns per tick, the Matroska default
        self.entries: dict[int, _TrackEntry] = {}
        self.frames: dict[int, list[tuple[int, bytes]]] = {}
        self.first_timecode: int | None = None
        self.truncated = False

    def finish(self, end_offset: int) -> Fragment:
        aws = {k: v for k, v in self.tags.items() if k.startswith(_AWS_PREFIX)}
        custom = {k: v for k, v in self.tags.items() if not k.startswith(_AWS_PREFIX)}
        producer_ms = _seconds_to_ms(next((aws[k] for k in _PRODUCER_TAGS if k in aws), None))
        server_ms = _seconds_to_ms(next((aws[k] for k in _SERVER_TAGS if k in aws), None))
        return Fragment(
            index=self.index, byte_offset=self.byte_offset, size=end_offset - self.byte_offset,
            fragment_number=aws.get(_FRAGMENT_NUMBER), producer_ms=producer_ms, server_ms=server_ms,
            tags=custom, aws_tags=aws, tracks=self._tracks(producer_ms, custom.get(_MIME_TYPE_TAG)),
            error=self._error(aws), truncated=self.truncated,
        )

    def _tracks(self, producer_ms: int | None, mime: str | None) -> dict[str, TrackAudio]:
        scale = self.timecode_scale
        if producer_ms is not None:
            base_ms = producer_ms
        else:  # no producer timestamp: place frames at their cluster time
            base_ms = (self.first_timecode or 0) * scale // 1_000_000
        mime_rate, mime_channels = _mime_audio(mime)
        tracks: dict[str, TrackAudio] = {}
        for number in sorted(self.entries.keys() | self.frames.keys()):
            entry = self.entries.get(number) or _TrackEntry(number)
            name = entry.name or f"track_{number}"
            if name in tracks:  # two entries with one name: keep both, tell them apart by number
                name = f"{name}_{number}"
            blocks = [(base_ms + ticks * scale // 1_000_000, payload)
                      for ticks, payload in self.frames.get(number, ())]
            tracks[name] = TrackAudio(
                name=name, track_number=number, codec_id=entry.codec_id,
                sample_rate=mime_rate or entry.rate or DEFAULT_SAMPLE_RATE,
                channels=mime_channels or entry.channels or DEFAULT_CHANNELS,
                blocks=blocks, track_type=entry.track_type,
            )
        return tracks

    @staticmethod
    def _error(aws: dict[str, str]) -> ErrorChunk | None:
        code = next((aws[k] for k in _ERROR_CODE_TAGS if k in aws), None)
        error_id = aws.get(_ERROR_ID_TAG)
        if code is None and error_id is None:
            return None
        return ErrorChunk(
            code=code,
            error_id=int(error_id) if error_id and error_id.isascii() and error_id.isdigit() else None,
            message=aws.get(_ERROR_MESSAGE_TAG),
        )


def _lace_sizes(buf: bytes, p: int, end: int, lacing: int, base: int) -> tuple[list[int], int]:
    """Frame sizes of a laced block whose lace header starts at ``p``; returns (sizes, data start)."""
    count = buf[p] + 1
    p += 1
    total = end - p
    if lacing == 2:  # fixed-size lacing
        if total % count:
            raise ParseError("fixed lacing does not divide the block evenly", base + p)
        return [total // count] * count, p
    sizes = []
    if lacing == 1:  # Xiph lacing: each size is a run of 255s plus a final byte
        for _ in range(count - 1):
            size = 0
            while True:
                if p >= end:
                    raise ParseError("Xiph lace header runs past the block", base + p)
                byte = buf[p]
                p += 1
                size += byte
                if byte != 255:
                    break
            sizes.append(size)
    else:  # EBML lacing: first size a vint, the others signed vint differences
        for i in range(count - 1):
            width = _SIZE_WIDTH[buf[p]] if p < end else 0
            if not width or p + width > end:
                raise ParseError("invalid EBML lace size", base + p)
            raw = int.from_bytes(buf[p:p + width], "big") & _SIZE_MASK[width]
            p += width
            size = raw if i == 0 else sizes[-1] + raw - (_SIZE_MASK[width] >> 1)
            if size < 0:
                raise ParseError("negative EBML lace size", base + p)
            sizes.append(size)
    last = end - p - sum(sizes)
    if last < 0:
        raise ParseError("lace sizes exceed the block", base + p)
    sizes.append(last)
    return sizes, p


def _add_block(frames: dict, buf: bytes, p: int, end: int, rel: int, base: int) -> None:
    """Append the frame(s) of a SimpleBlock or Block whose data is buf[p:end] (general path)."""
    width = _SIZE_WIDTH[buf[p]] if p < end else 0
    if not width or p + width + 3 > end:
        raise ParseError("invalid block header", base + p)
    track = int.from_bytes(buf[p:p + width], "big") & _SIZE_MASK[width]
    p += width
    timecode = int.from_bytes(buf[p:p + 2], "big", signed=True)
    lacing = (buf[p + 2] >> 1) & 3
    p += 3
    out = frames.get(track)
    if out is None:
        out = frames[track] = []
    if not lacing:
        out.append((rel + timecode, buf[p:end]))
        return
    if p >= end:
        raise ParseError("laced block without a lace header", base + p)
    sizes, p = _lace_sizes(buf, p, end, lacing, base)
    for size in sizes:
        out.append((rel + timecode, buf[p:p + size]))
        p += size


def _block_run(frames: dict, buf: bytes, p: int, header_len: int, size: int, rel: int,
               stop: int, base: int) -> int:
    """Take the SimpleBlock at ``p`` and every following one with the same header bytes.

    KVS producers write clusters of same-size SimpleBlocks (Connect: 1037-byte strides); comparing
    the next element's header bytes with this one's skips re-decoding them.  ``stop`` bounds the
    bytes that are both buffered and inside the parent.  Returns the position after the run.
    """
    if size < 4:
        raise ParseError("SimpleBlock shorter than a block header", base + p)
    step = header_len + size
    header = buf[p:p + header_len]
    startswith = buf.startswith
    while True:
        q = p + header_len
        track = buf[q]
        if track & 0x80 and not buf[q + 3] & 0x06:  # 1-byte track number, no lacing
            timecode = buf[q + 1] << 8 | buf[q + 2]
            out = frames.get(track & 0x7F)
            if out is None:
                out = frames[track & 0x7F] = []
            out.append((rel + timecode - ((timecode & 0x8000) << 1), buf[q + 4:p + step]))
        else:
            _add_block(frames, buf, q, p + step, rel, base)
        p += step
        if p + step > stop or not startswith(header, p):
            return p


def _remember(cache: dict, key: bytes, value) -> None:
    if len(key) <= _CACHE_KEY_MAX:
        if len(cache) >= _CACHE_ENTRIES:
            cache.clear()
        cache[key] = value


def _simple_tag(found: list, buf: bytes, start: int, end: int, base: int) -> None:
    name = value = None
    for eid, a, b in _children(buf, start, end, base):
        if eid == TAG_NAME:
            name = _text(buf, a, b)
        elif eid == TAG_STRING:
            value = _text(buf, a, b)
        elif eid == SIMPLE_TAG:  # nested tags are flattened into the same dict
            _simple_tag(found, buf, a, b, base)
    if name is not None and value is not None:
        found.append((name, value))


def _track_entry(buf: bytes, start: int, end: int, base: int) -> _TrackEntry:
    entry = _TrackEntry(0)
    for eid, a, b in _children(buf, start, end, base):
        if eid == TRACK_NUMBER:
            entry.number = _uint(buf, a, b, base)
        elif eid == TRACK_NAME:
            entry.name = _text(buf, a, b)
        elif eid == TRACK_TYPE:
            entry.track_type = _uint(buf, a, b, base)
        elif eid == CODEC_ID:
            entry.codec_id = _text(buf, a, b)
        elif eid == AUDIO:
            for cid, c, d in _children(buf, a, b, base):
                if cid == SAMPLING_FREQUENCY and d - c in (4, 8):
                    rate = struct.unpack(">f" if d - c == 4 else ">d", buf[c:d])[0]
                    if 1 <= rate < 1e7:
                        entry.rate = round(rate)
                elif cid == CHANNELS:
                    entry.channels = _uint(buf, c, d, base) or None
    return entry


class _Parser:
    def __init__(self, stream: BinaryIO, read_size: int):
        self.r = _Reader(stream, read_size)
        self._tag_cache: dict[bytes, tuple[tuple[str, str], ...]] = {}
        self._track_cache: dict[bytes, dict[int, _TrackEntry]] = {}

    def fragments(self) -> Iterator[Fragment]:
        r = self.r
        current: _FragmentBuilder | None = None
        index = 0
        while True:
            offset = r.offset()
            try:
                header = self._peek_header()
                if header is None:
                    break
                eid, size, header_len = header
                if eid == EBML or (eid == SEGMENT and (current is None or current.has_segment)):
                    if current is not None:
                        if not current.has_segment:
                            raise ParseError("EBML header not followed by a Segment", offset)
                        yield current.finish(offset)
                    current = _FragmentBuilder(index, offset)
                    index += 1
                if eid == EBML:
                    self._check(eid, size, header_len, offset, None)
                    r.skip(header_len + size)
                elif eid == SEGMENT:
                    current.has_segment = True
                    self._segment(current, header_len, size, offset)
                elif eid in GLOBAL_ELEMENTS:
                    self._check(eid, size, header_len, offset, None)
                    r.skip(header_len + size)
                else:
                    raise ParseError(f"expected an EBML header or a Segment, found 0x{eid:X}", offset)
            except _Truncated:
                if current is None:
                    current = _FragmentBuilder(index, offset)
                current.truncated = True
                break
        if current is not None:
            current.truncated |= not current.has_segment
            yield current.finish(r.base + len(r.buf))  # at EOF: everything was read

    # -- element plumbing -------------------------------------------------------------------

    def _peek_header(self) -> tuple[int, int | None, int] | None:
        """The next element's header without consuming it; None at a clean end of the body."""
        r = self.r
        if len(r.buf) - r.pos < 12:  # the longest header: 4-byte ID + 8-byte size
            r.fill(12)
        if r.pos == len(r.buf):
            return None
        header = _decode_header(r.buf, r.pos, len(r.buf), r.base)
        if header is None:
            raise _Truncated
        return header

    @staticmethod
    def _check(eid: int, size: int | None, header_len: int, offset: int, bound: int | None) -> None:
        if size is None:
            raise ParseError(f"element 0x{eid:X} may not have unknown size", offset)
        if size > MAX_ELEMENT_SIZE:
            raise ParseError(f"element 0x{eid:X} claims {size} bytes", offset)
        if bound is not None and offset + header_len + size > bound:
            raise ParseError(f"element 0x{eid:X} extends beyond its parent", offset)

    def _buffered(self, eid: int, size: int, header_len: int, offset: int) -> tuple[bytes, int, int]:
        """Consume a whole small element; returns (buffer, payload start, payload end)."""
        if size > MAX_BUFFERED_SIZE:
            raise ParseError(f"element 0x{eid:X} of {size} bytes is too large to buffer", offset)
        r = self.r
        r.need(header_len + size)
        start = r.pos + header_len
        r.pos = start + size
        return r.buf, start, start + size

    # -- Segment level ----------------------------------------------------------------------

    def _segment(self, frag: _FragmentBuilder, header_len: int, size: int | None, offset: int) -> None:
        r = self.r
        if size is not None:
            self._check(SEGMENT, size, header_len, offset, None)
        end = None if size is None else offset + header_len + size
        r.skip(header_len)
        while end is None or r.offset() < end:
            offset = r.offset()
            header = self._peek_header()
            if header is None:
                if end is not None:
                    raise _Truncated
                return
            eid, size, header_len = header
            if eid == EBML or eid == SEGMENT:
                if end is None:
                    return
                raise ParseError(f"element 0x{eid:X} inside a sized Segment", offset)
            if eid == CLUSTER:
                if size is not None:
                    self._check(eid, size, header_len, offset, end)
                self._cluster(frag, header_len, size, offset, end)
                continue
            self._check(eid, size, header_len, offset, end)
            if eid == TAGS:
                self._tags(frag, *self._buffered(eid, size, header_len, offset))
            elif eid == TRACKS:
                self._tracks(frag, *self._buffered(eid, size, header_len, offset))
            elif eid == INFO:
                self._info(frag, *self._buffered(eid, size, header_len, offset))
            elif eid in SEGMENT_CHILDREN or eid in GLOBAL_ELEMENTS or end is not None:
                r.skip(header_len + size)  # SeekHead, Cues, ...; unknown ones only when bounded
            else:
                raise ParseError(f"unexpected element 0x{eid:X} in an unknown-size Segment", offset)

    # KVS repeats the producer's Tracks and custom Tags verbatim in every chunk (kvs.md §1.1), so
    # their parsed form is memoized by payload bytes; the per-fragment AWS tags are not.

    def _tags(self, frag: _FragmentBuilder, buf: bytes, start: int, end: int) -> None:
        key = buf[start:end]
        pairs = self._tag_cache.get(key)
        if pairs is None:
            found: list[tuple[str, str]] = []
            base = self.r.base
            for eid, a, b in _children(buf, start, end, base):
                if eid == TAG:
                    for cid, c, d in _children(buf, a, b, base):
                        if cid == SIMPLE_TAG:
                            _simple_tag(found, buf, c, d, base)
            pairs = tuple(found)
            if not any(name.startswith(_AWS_PREFIX) for name, _ in pairs):
                _remember(self._tag_cache, key, pairs)
        frag.tags.update(pairs)

    def _tracks(self, frag: _FragmentBuilder, buf: bytes, start: int, end: int) -> None:
        key = buf[start:end]
        entries = self._track_cache.get(key)
        if entries is None:
            entries = {}
            base = self.r.base
            for eid, a, b in _children(buf, start, end, base):
                if eid == TRACK_ENTRY:
                    entry = _track_entry(buf, a, b, base)
                    if entry.number:  # TrackNumber 0 / absent is invalid: no block can refer to it
                        entries[entry.number] = entry
            _remember(self._track_cache, key, entries)
        frag.entries.update(entries)

    def _info(self, frag: _FragmentBuilder, buf: bytes, start: int, end: int) -> None:
        for eid, a, b in _children(buf, start, end, self.r.base):
            if eid == TIMECODE_SCALE:
                frag.timecode_scale = _uint(buf, a, b, self.r.base) or 1_000_000

    # -- Cluster level (the hot path) -------------------------------------------------------

    def _cluster(self, frag: _FragmentBuilder, header_len: int, size: int | None, offset: int,
                 segment_end: int | None) -> None:
        r = self.r
        end = None if size is None else offset + header_len + size
        bound = end if end is not None else segment_end  # no child may cross this
        r.skip(header_len)
        frames = frag.frames
        rel = None  # this cluster's timecode minus the chunk's first, in ticks
        while bound is None or r.offset() < bound:
            offset = r.offset()
            header = self._peek_header()
            if header is None:
                if bound is not None:
                    raise _Truncated
                return
            eid, size, header_len = header
            if eid not in CLUSTER_CHILDREN and eid not in GLOBAL_ELEMENTS:
                if eid in _ENDS_CLUSTER:
                    if end is None:
                        return
                    raise ParseError(f"element 0x{eid:X} inside a sized Cluster", offset)
                if end is None:
                    raise ParseError(f"unexpected element 0x{eid:X} in an unknown-size Cluster", offset)
            self._check(eid, size, header_len, offset, bound)
            if eid == SIMPLE_BLOCK:
                if rel is None:
                    raise ParseError("SimpleBlock before the Cluster Timecode", offset)
                if size > MAX_BUFFERED_SIZE:
                    raise ParseError(f"SimpleBlock of {size} bytes is too large", offset)
                r.need(header_len + size)
                stop = len(r.buf) if bound is None else min(len(r.buf), bound - r.base)
                r.pos = _block_run(frames, r.buf, r.pos, header_len, size, rel, stop, r.base)
            elif eid == TIMECODE:
                buf, a, b = self._buffered(eid, size, header_len, offset)
                timecode = _uint(buf, a, b, r.base)
                if frag.first_timecode is None:
                    frag.first_timecode = timecode
                rel = timecode - frag.first_timecode
            elif eid == BLOCK_GROUP:
                if rel is None:
                    raise ParseError("BlockGroup before the Cluster Timecode", offset)
                buf, a, b = self._buffered(eid, size, header_len, offset)
                for cid, c, d in _children(buf, a, b, r.base):
                    if cid == BLOCK:
                        _add_block(frames, buf, c, d, rel, r.base)
            else:  # Position, PrevSize, Void, CRC-32, EncryptedBlock (unusable), unknown
                r.skip(header_len + size)


def iter_fragments(stream: BinaryIO, *, read_size: int = 65536) -> Iterator[Fragment]:
    """Yield each chunk of a KVS media body as a :class:`Fragment` as soon as it ends.

    ``stream`` is anything with ``read(n)`` (a botocore StreamingBody, an open file).  Raises
    :class:`ParseError` on malformed input, after yielding the chunks that preceded it.
    """
    return _Parser(stream, read_size).fragments()


def parse_bytes(body: bytes) -> list[Fragment]:
    return list(iter_fragments(io.BytesIO(body)))
