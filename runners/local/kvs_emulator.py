"""A local Kinesis Video Streams endpoint that unmodified boto3 clients talk to over real HTTP.

``boto3.client('kinesisvideo', endpoint_url=URL)`` and
``boto3.client('kinesis-video-archived-media', endpoint_url=URL)`` both work against it.  It serves a
:class:`~runners.local.kvs_store.KvsStore` directory with the rest-json wire format that botocore
models for API version 2017-09-30 (shared/domain/kvs.md §4): POST requests with JSON bodies to
``/createStream``, ``/describeStream``, ``/listStreams``, ``/getDataEndpoint``, ``/listFragments`` and
``/getMediaForFragmentList``.  moto has no ListFragments or GetMediaForFragmentList (kvs.md §4.6),
which is why this module exists.

What it imitates, and the choices made where the real service is not documented:

* **Auth.** SigV4 signatures are not checked, but a request without an ``Authorization`` header
  gets ``NotAuthorizedException`` (401).  Authorization headers are never logged.
* **Errors** use the real wire format (kvs.md §4.3): ``x-amzn-ErrorType: <Code>:<doc url>``,
  ``x-amzn-RequestId``, ``Content-Type: application/json`` and a body ``{"Message": ...}``.
  botocore reads the code from that header.
* **ListFragments** returns fragments whose *start* timestamp lies in the range, both ends
  included (kvs.md §4.1).  Each page is shuffled with a seed taken from the request's NextToken,
  because the real service returns fragments "in no specific order, even across pages".  Clients
  must therefore sort by ``int(FragmentNumber)``.  NextToken is opaque base64 that records where
  the next page starts, so paging stays exact while a generator keeps appending fragments.
* **Throttling.** More than ``tps_limit`` requests within one sliding second, per stream and per API
  (ListFragments, GetMediaForFragmentList and GetDataEndpoint counted separately), get
  ``ClientLimitExceededException`` (kvs.md §4.4).  Rejected requests do not count towards the
  window.  botocore does not retry this error.
* **Retention and clock.** The clock is real time unless ``now_ms`` freezes it, so stores seeded with
  historical dates can be served.  A fragment expires when its server timestamp is older than
  ``now - DataRetentionInHours``; with 0 hours the real 5-minute host buffer applies.  Expired
  fragments are not listed.  A ListFragments EndTimestamp before the retention start gets the real
  400 "End timestamp <ms> is outside of the stream retention period." (kvs.md §4.5).  That message
  was seen for SERVER_TIMESTAMP; the emulator also uses it for PRODUCER_TIMESTAMP.
* **Expired fragments in GetMediaForFragmentList.** Their chunk is replaced by the in-band error
  chunk ``AWS_KINESISVIDEO_ERROR_CODE=FRAGMENT_NOT_FOUND`` with ``ERROR_ID=4000`` (botocore's
  documented "Requested fragment is not found").  The real behaviour is unverified: it may instead
  be a 4xx (kvs.md §4.5), so consumers must handle both.
* **GetMediaForFragmentList body.** The body is ``Content-Type: video/webm`` for every stream,
  because it is always Matroska whatever the stream's MediaType (which names the tracks' codec);
  the header the real service sends is unverified.  The chunks are streamed in request order with
  ``Transfer-Encoding: chunked``.  Chunked encoding imitates a service that starts sending before it
  knows the total length.  It also makes the two stream faults distinguishable: the
  terminating zero-length chunk lets a truncated body end cleanly (the client just sees EOF), while
  a reset without it is a broken stream.
* **Fault injection** (all off by default; one ``random.Random(seed)`` per server, so runs repeat):
  throttling and HTTP 500 ``InternalFailure`` for ListFragments and GetMediaForFragmentList;
  for GetMediaForFragmentList also a connection reset (RST) inside a fragment, a clean truncation
  inside a fragment, a clean end of body between two SimpleBlocks (what arrives parses without
  error: only the listing tells that the last fragment is short), and single fragments replaced by the in-band error chunk with ``ERROR_ID=3000``.
  That is exactly what aws/aws-sdk-js#3217 shows for a fragment that was not yet consistent (kvs.md §1.5).

The control plane is the minimum the pipeline needs.  CreateStream ignores DeviceName, KmsKeyId,
Tags and StreamStorageConfiguration.  Every stream is ACTIVE.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import email.utils
import json
import logging
import random
import re
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

from runners.local import mkv_writer
from runners.local.kvs_store import STREAM_NAME, Fragment, KvsStore, StreamInfo

log = logging.getLogger(__name__)

ERROR_DOC_URL = "https://kinesisvideo.amazonaws.com/doc/2017-09-30/"
MEDIA_CONTENT_TYPE = "video/webm"
API_NAMES = frozenset({
    "PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES",
})
SELECTOR_TYPES = frozenset({"SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP"})
STREAM_ARN = re.compile(
    r"^arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+$"
)
NEXT_TOKEN = re.compile(r"^[a-zA-Z0-9+/]+={0,2}$")
MAX_FRAGMENTS = 1000  # per ListFragments page and per GetMediaForFragmentList call (model, limits)
MAX_LIST_STREAMS = 10000
SHUTDOWN_POLL_SECONDS = 0.05  # how soon stop() takes effect; the stdlib default of 0.5 s slows tests
ZERO_RETENTION_BUFFER_MS = 5 * 60_000  # the host buffer that still serves DataRetentionInHours=0
ERROR_ID_NOT_YET_CONSISTENT = 3000  # the id seen in the real FRAGMENT_NOT_FOUND body (#3217)
ERROR_ID_FRAGMENT_NOT_FOUND = 4000  # "Requested fragment is not found" (botocore GetMedia doc)


class ApiError(Exception):
    """A modelled service error: answered as ``x-amzn-ErrorType`` plus a JSON ``Message``."""

    def __init__(self, code: str, status: int, message: str):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def invalid(message: str) -> ApiError:
    return ApiError("InvalidArgumentException", 400, message)


def throttled(message: str) -> ApiError:
    return ApiError("ClientLimitExceededException", 400, message)


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


@dataclass(frozen=True)
class MediaResponse:
    """A GetMediaForFragmentList answer: chunks are read lazily so the body is never held whole."""

    chunks: Iterator[bytes]
    fault: StreamFault | None


class RateLimiter:
    """At most ``limit`` admitted requests per key within any sliding second (None: unlimited)."""

    def __init__(self, limit: int | None):
        self.limit = limit
        self._lock = threading.Lock()
        self._admitted: dict[tuple[str, str], deque[float]] = {}

    def admit(self, key: tuple[str, str]) -> bool:
        if not self.limit:
            return True
        now = time.monotonic()  # real time even when the emulator clock is frozen
        with self._lock:
            window = self._admitted.setdefault(key, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.limit:
                return False
            window.append(now)
            return True


class KvsService:
    """The API semantics, free of HTTP: each operation takes the request JSON and returns the answer."""

    def __init__(self, store: KvsStore, faults: Faults, now_ms: int | None, tps_limit: int | None):
        self.store, self.faults, self.now_ms = store, faults, now_ms
        self.limiter = RateLimiter(tps_limit)
        self._rng = random.Random(faults.seed)
        self._rng_lock = threading.Lock()
        self._operations = {
            "/createStream": self.create_stream,
            "/describeStream": self.describe_stream,
            "/listStreams": self.list_streams,
            "/getDataEndpoint": self.get_data_endpoint,
            "/listFragments": self.list_fragments,
            "/getMediaForFragmentList": self.get_media_for_fragment_list,
        }

    def operation(self, path: str) -> Callable[[dict, str], dict | MediaResponse]:
        """The handler for a request path; each takes the body and the Host the client addressed."""
        if path not in self._operations:
            raise ApiError("UnknownOperationException", 404, f"No operation at {path}")
        return self._operations[path]

    # -- clock, retention, limits, faults -----------------------------------------------------
    def clock_ms(self) -> int:
        return int(time.time() * 1000) if self.now_ms is None else self.now_ms

    def retention_start_ms(self, stream: StreamInfo) -> int:
        hours = stream.retention_hours
        return self.clock_ms() - (hours * 3_600_000 if hours else ZERO_RETENTION_BUFFER_MS)

    def admit(self, stream: StreamInfo, api: str) -> None:
        if not self.limiter.admit((stream.arn, api)):
            raise throttled(f"{api} rate exceeded for stream {stream.name}")

    def draw(self, probability: float) -> bool:
        """One seeded coin flip; a knob at 0 draws nothing, so it cannot shift the other knobs' faults."""
        with self._rng_lock:
            return probability > 0 and self._rng.random() < probability

    def inject_request_faults(self) -> None:
        if self.draw(self.faults.throttle_probability):
            raise throttled("Injected fault: rate exceeded")
        if self.draw(self.faults.error_500_probability):
            raise ApiError("InternalFailure", 500, "Injected fault: internal failure")

    def stream_fault(self, chunk_count: int) -> StreamFault | None:
        mode = ("reset" if self.draw(self.faults.reset_probability)
                else "truncate" if self.draw(self.faults.truncate_probability)
                else "block_cut" if self.draw(self.faults.block_cut_probability) else None)
        if mode is None:
            return None
        with self._rng_lock:
            return StreamFault(mode, self._rng.randrange(chunk_count), self._rng.random())

    # -- streams ------------------------------------------------------------------------------
    def resolve_stream(self, body: dict) -> StreamInfo:
        """StreamName or StreamARN (both allowed if they agree), validated like the model does."""
        name, arn = body.get("StreamName"), body.get("StreamARN")
        if name is None and arn is None:
            raise invalid("Either StreamName or StreamARN must be specified.")
        if name is not None and not (isinstance(name, str) and STREAM_NAME.match(name)):
            raise invalid(f"StreamName {name!r} does not match [a-zA-Z0-9_.-]+ (1-256 characters).")
        if arn is not None and not (isinstance(arn, str) and STREAM_ARN.match(arn)):
            raise invalid(f"StreamARN {arn!r} is not a Kinesis Video stream ARN.")
        stream = self.store.stream(arn=arn) if arn is not None else self.store.stream(name=name)
        if stream is None:
            raise ApiError("ResourceNotFoundException", 404,
                           f"The requested stream {arn or name} is not found or not active.")
        if name is not None and stream.name != name:
            raise invalid("StreamName and StreamARN refer to different streams.")
        return stream

    def create_stream(self, body: dict, host: str) -> dict:
        name = body.get("StreamName")
        if not (isinstance(name, str) and STREAM_NAME.match(name)):
            raise invalid(f"StreamName {name!r} does not match [a-zA-Z0-9_.-]+ (1-256 characters).")
        hours = body.get("DataRetentionInHours", 0)
        if not isinstance(hours, int) or isinstance(hours, bool) or hours < 0:
            raise invalid("DataRetentionInHours must be a non-negative integer.")
        try:
            stream = self.store.create_stream(
                name, retention_hours=hours, media_type=body.get("MediaType", ""),
                creation_ms=self.clock_ms(),
            )
        except FileExistsError:
            raise ApiError("ResourceInUseException", 400, f"The stream {name} already exists.") from None
        return {"StreamARN": stream.arn}

    def describe_stream(self, body: dict, host: str) -> dict:
        return {"StreamInfo": stream_info_json(self.resolve_stream(body))}

    def list_streams(self, body: dict, host: str) -> dict:
        limit = bounded_int(body, "MaxResults", 1, MAX_LIST_STREAMS, MAX_LIST_STREAMS)
        prefix = ""
        if "StreamNameCondition" in body:
            condition = body["StreamNameCondition"] or {}
            if condition.get("ComparisonOperator", "BEGINS_WITH") != "BEGINS_WITH":
                raise invalid("ComparisonOperator must be BEGINS_WITH.")
            prefix = condition.get("ComparisonValue", "")
            if not isinstance(prefix, str):
                raise invalid("ComparisonValue must be a string.")
        after = decode_token(body["NextToken"], "after")["after"] if body.get("NextToken") else ""
        matching = [s for s in self.store.streams() if s.name.startswith(prefix) and s.name > after]
        answer: dict = {"StreamInfoList": [stream_info_json(s) for s in matching[:limit]]}
        if len(matching) > limit:
            answer["NextToken"] = encode_token({"after": matching[limit - 1].name})
        return answer

    def get_data_endpoint(self, body: dict, host: str) -> dict:
        """Every API is served here, so the endpoint is this server as the client addressed it."""
        if body.get("APIName") not in API_NAMES:
            raise invalid(f"APIName {body.get('APIName')!r} is not one of {sorted(API_NAMES)}.")
        self.admit(self.resolve_stream(body), "GetDataEndpoint")
        return {"DataEndpoint": f"http://{host}"}

    # -- archived media -----------------------------------------------------------------------
    def list_fragments(self, body: dict, host: str) -> dict:
        """One page; with a NextToken, the selector recorded in the token applies, not the request's."""
        stream = self.resolve_stream(body)
        self.admit(stream, "ListFragments")
        self.inject_request_faults()
        limit = bounded_int(body, "MaxResults", 1, MAX_FRAGMENTS, MAX_FRAGMENTS)
        token = body.get("NextToken")
        if token:
            cursor = decode_token(token, "arn", "selector", "position")
            if cursor["arn"] != stream.arn:
                raise invalid("NextToken belongs to another stream.")
            selector, position = cursor["selector"], cursor["position"]
        else:
            selector, position = parse_selector(body.get("FragmentSelector")), 0
        keep = self.fragment_filter(stream, selector)
        page, next_position = take_page(self.store.fragments(stream.name), position, limit, keep)
        random.Random(f"{stream.arn}|{token or ''}").shuffle(page)
        answer: dict = {"Fragments": [fragment_json(f) for f in page]}
        if next_position is not None:
            answer["NextToken"] = encode_token(
                {"arn": stream.arn, "selector": selector, "position": next_position}
            )
        return answer

    def fragment_filter(self, stream: StreamInfo, selector: list | None) -> Callable[[Fragment], bool]:
        """Unexpired fragments whose start timestamp lies in the selector's closed range."""
        oldest = self.retention_start_ms(stream)
        if selector is None:
            return lambda f: f.server_ms >= oldest
        kind, start, end = selector[0], Decimal(selector[1]), Decimal(selector[2])
        if end < oldest:
            raise invalid(f"End timestamp {int(end)} is outside of the stream retention period.")
        field_ = "server_ms" if kind == "SERVER_TIMESTAMP" else "producer_ms"
        return lambda f: f.server_ms >= oldest and start <= getattr(f, field_) <= end

    def get_media_for_fragment_list(self, body: dict, host: str) -> MediaResponse:
        stream = self.resolve_stream(body)
        self.admit(stream, "GetMediaForFragmentList")
        self.inject_request_faults()
        numbers = body.get("Fragments")
        if not isinstance(numbers, list) or not numbers:
            raise invalid("Fragments must be a list of 1 to 1000 fragment numbers.")
        if len(numbers) > MAX_FRAGMENTS:
            raise invalid("1 validation error detected: Value at 'fragments' failed to satisfy "
                          f"constraint: Member must have length less than or equal to {MAX_FRAGMENTS}")
        by_number = {f.number: f for f in self.store.fragments(stream.name)}
        if not all(isinstance(n, str) and n in by_number for n in numbers):
            raise invalid("Fragment numbers are invalid")
        oldest = self.retention_start_ms(stream)
        sources: list[Fragment | bytes] = []
        for number in numbers:
            fragment = by_number[number]
            if fragment.server_ms < oldest:
                sources.append(mkv_writer.error_chunk(number, error_id=ERROR_ID_FRAGMENT_NOT_FOUND))
            elif self.draw(self.faults.missing_fragment_probability):
                sources.append(mkv_writer.error_chunk(number, error_id=ERROR_ID_NOT_YET_CONSISTENT))
            else:
                sources.append(fragment)
        return MediaResponse(self.read_chunks(stream, sources), self.stream_fault(len(sources)))

    def read_chunks(self, stream: StreamInfo, sources: list[Fragment | bytes]) -> Iterator[bytes]:
        for source in sources:
            yield source if isinstance(source, bytes) else self.store.read_chunk(stream.name, source)


# -- JSON shapes ------------------------------------------------------------------------------
def stream_info_json(stream: StreamInfo) -> dict:
    info = {
        "StreamName": stream.name,
        "StreamARN": stream.arn,
        "CreationTime": stream.creation_ms / 1000,
        "DataRetentionInHours": stream.retention_hours,
        "Status": "ACTIVE",
        "Version": stream.version,
    }
    if stream.media_type:
        info["MediaType"] = stream.media_type
    return info


def fragment_json(fragment: Fragment) -> dict:
    return {
        "FragmentNumber": fragment.number,
        "FragmentSizeInBytes": fragment.size,
        "ProducerTimestamp": fragment.producer_ms / 1000,
        "ServerTimestamp": fragment.server_ms / 1000,
        "FragmentLengthInMilliseconds": fragment.duration_ms,
    }


def bounded_int(body: dict, key: str, low: int, high: int, default: int) -> int:
    """The service enforces the maximums that botocore leaves unchecked (kvs.md §4.2)."""
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(f"{key} must be an integer between {low} and {high}.")
    return value


def epoch_ms(value: object, key: str) -> Decimal:
    """A JSON epoch-seconds number (maybe fractional, parsed exactly as Decimal) in milliseconds."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise invalid(f"{key} must be a timestamp in epoch seconds.")
    return Decimal(value) * 1000


def parse_selector(selector: object) -> list | None:
    """``[type, start_ms, end_ms]`` as JSON-safe strings for the NextToken, or None for all fragments."""
    if selector is None:
        return None
    if not isinstance(selector, dict) or selector.get("FragmentSelectorType") not in SELECTOR_TYPES:
        raise invalid("FragmentSelectorType must be SERVER_TIMESTAMP or PRODUCER_TIMESTAMP.")
    span = selector.get("TimestampRange")
    if not isinstance(span, dict):
        raise invalid("TimestampRange is required.")
    start = epoch_ms(span.get("StartTimestamp"), "StartTimestamp")
    end = epoch_ms(span.get("EndTimestamp"), "EndTimestamp")
    return [selector["FragmentSelectorType"], str(start), str(end)]


def take_page(
    fragments: list[Fragment], position: int, limit: int, keep: Callable[[Fragment], bool]
) -> tuple[list[Fragment], int | None]:
    """Up to ``limit`` kept fragments from ``position`` on, and where the next page starts (None: no more)."""
    page: list[Fragment] = []
    for index in range(position, len(fragments)):
        if keep(fragments[index]):
            if len(page) == limit:
                return page, index
            page.append(fragments[index])
    return page, None


def encode_token(state: dict) -> str:
    return base64.b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def decode_token(token: object, *keys: str) -> dict:
    try:
        if not isinstance(token, str) or not NEXT_TOKEN.match(token):
            raise ValueError(token)
        state = json.loads(base64.b64decode(token, validate=True))
        if not isinstance(state, dict) or any(k not in state for k in keys):
            raise ValueError(token)
        return state
    except (ValueError, binascii.Error):
        raise invalid("NextToken is invalid.") from None


# -- HTTP ---------------------------------------------------------------------------------------
class KvsRequestHandler(BaseHTTPRequestHandler):
    """The wire: auth check, JSON in, JSON or a chunked media stream out, errors as AWS sends them."""

    protocol_version = "HTTP/1.1"  # keep-alive like AWS endpoints, and needed for chunked bodies
    server_version = "voicelake-kvs-emulator"
    server: "_HttpServer"

    def date_time_string(self, timestamp=None) -> str:
        """The Date header, on the emulator's clock: as AWS does, it says when the service answered,
        which is what a client judges retention against (and the clock may be frozen)."""
        return email.utils.formatdate(self.server.service.clock_ms() / 1000, usegmt=True)

    def do_POST(self) -> None:
        request_id = str(uuid.uuid4())
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if "Authorization" not in self.headers:
                raise ApiError("NotAuthorizedException", 401, "Missing Authentication Token")
            operation = self.server.service.operation(self.path)
            answer = operation(parse_body(raw), self.headers.get("Host", self.server.address))
        except ApiError as error:
            self.send_error_json(error, request_id)
            return
        except Exception:
            log.exception("%s %s failed", self.command, self.path)
            self.send_error_json(ApiError("InternalFailure", 500, "Internal failure"), request_id)
            return
        if isinstance(answer, MediaResponse):
            self.send_media(answer, request_id)
        else:
            self.send_json(200, answer, request_id)

    def send_json(self, status: int, payload: dict, request_id: str, extra: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for key, value in {**(extra or {}), "x-amzn-RequestId": request_id,
                           "Content-Type": "application/json", "Content-Length": len(data)}.items():
            self.send_header(key, str(value))
        self.end_headers()
        self.wfile.write(data)

    def send_error_json(self, error: ApiError, request_id: str) -> None:
        log.debug("%s %s -> %s %s", self.command, self.path, error.status, error.code)
        self.send_json(error.status, {"Message": error.message}, request_id,
                       {"x-amzn-ErrorType": f"{error.code}:{ERROR_DOC_URL}"})

    def send_media(self, media: MediaResponse, request_id: str) -> None:
        """Write chunk by chunk as HTTP chunks; a stream fault stops inside its chosen chunk."""
        self.send_response(200)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Type", MEDIA_CONTENT_TYPE)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        fault = media.fault
        try:
            for index, chunk in enumerate(media.chunks):
                if fault is not None and index == fault.chunk_index:
                    cut = fault.cut(chunk)
                    if cut:
                        self.write_http_chunk(chunk[:cut])
                    if fault.mode == "reset":
                        self.reset_connection()
                        return
                    break
                self.write_http_chunk(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing left to tell it

    def write_http_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def reset_connection(self) -> None:
        """Close with SO_LINGER 0 so the kernel sends RST instead of FIN: an abrupt reset mid-body."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def log_message(self, format: str, *args) -> None:
        """Per-request lines go to DEBUG, not stderr; they hold the request line, never headers."""
        log.debug("%s - %s", self.address_string(), format % args)


def parse_body(raw: bytes) -> dict:
    """Request JSON with exact decimals, so fractional epoch seconds compare without float error."""
    try:
        body = json.loads(raw or b"{}", parse_float=Decimal)
    except ValueError:
        raise ApiError("SerializationException", 400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("SerializationException", 400, "The request body must be a JSON object.")
    return body


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: KvsService):
        super().__init__(address, KvsRequestHandler)
        self.service = service
        self.address = f"{self.server_address[0]}:{self.server_address[1]}"


class KvsEmulator:
    """A KVS endpoint bound to ``host:port`` (port 0 picks a free one) serving the store at ``store_dir``.

    Use :func:`start_emulator` (or ``with KvsEmulator(...) as emulator``) for a background server,
    or :meth:`serve_forever` to serve in the calling thread.  ``tps_limit`` None or 0 disables
    throttling; ``now_ms`` None follows real time, and the attribute may be changed while running.
    """

    def __init__(
        self,
        store_dir: str,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults = Faults(),
        now_ms: int | None = None,
        tps_limit: int | None = 5,
    ):
        self.service = KvsService(KvsStore(store_dir), faults, now_ms, tps_limit)
        self._server = _HttpServer((host, port), self.service)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._server.address}"

    @property
    def now_ms(self) -> int | None:
        return self.service.now_ms

    @now_ms.setter
    def now_ms(self, value: int | None) -> None:
        self.service.now_ms = value

    def start(self) -> "KvsEmulator":
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"kvs-emulator:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "KvsEmulator":
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_emulator(store_dir: str, **settings) -> KvsEmulator:
    """Serve ``store_dir`` from a daemon thread (settings as for :class:`KvsEmulator`);
    ``.url`` is boto3's endpoint_url, ``.stop()`` ends it."""
    return KvsEmulator(store_dir, **settings).start()


# -- CLI ----------------------------------------------------------------------------------------
def parse_now(text: str) -> int:
    """``--now`` as epoch seconds (``1704067200.5``) or ISO 8601 (naive means UTC) -> epoch ms."""
    try:
        return int(Decimal(text) * 1000)
    except (ArithmeticError, ValueError):
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not epoch seconds or ISO 8601: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicelake kvs-emulator",
        description=(
            "Serve a local Kinesis Video Streams endpoint over HTTP for unmodified boto3 clients: "
            "CreateStream, DescribeStream, ListStreams, GetDataEndpoint (kinesisvideo) and "
            "ListFragments, GetMediaForFragmentList (kinesis-video-archived-media), with the "
            "real error wire format, per-stream throttling, retention, and optional seeded faults."
        ),
        epilog=(
            "Point clients at the printed URL, e.g. boto3.client('kinesis-video-archived-media', "
            "endpoint_url=URL, region_name='us-east-1', aws_access_key_id='testing', "
            "aws_secret_access_key='testing'). Any signature is accepted; an unsigned request gets "
            "401 NotAuthorizedException."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0,
                        help="port to bind; 0 picks a free one and prints it (default: %(default)s)")
    parser.add_argument("--store", required=True, metavar="DIR",
                        help="KvsStore directory with the streams and fragments to serve")
    parser.add_argument("--now", type=parse_now, metavar="ISO|EPOCH",
                        help="freeze the emulator clock (retention is judged against it), e.g. "
                             "2024-01-01T12:00:00Z or 1704110400; default: real time")
    parser.add_argument("--tps-limit", type=non_negative_int, default=5, metavar="N",
                        help="requests per second per stream per API before "
                             "ClientLimitExceededException; 0 disables (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the fault-injection random generator (default: %(default)s)")
    knobs = parser.add_argument_group(
        "fault injection (probabilities in [0, 1], all 0 by default; archived-media calls only)")
    knobs.add_argument("--throttle-probability", type=probability, default=0.0, metavar="P",
                       help="answer ClientLimitExceededException (ListFragments, GetMediaForFragmentList)")
    knobs.add_argument("--error-500-probability", type=probability, default=0.0, metavar="P",
                       help="answer HTTP 500 InternalFailure (ListFragments, GetMediaForFragmentList)")
    knobs.add_argument("--reset-probability", type=probability, default=0.0, metavar="P",
                       help="reset the connection (RST) inside a fragment of a media body")
    knobs.add_argument("--truncate-probability", type=probability, default=0.0, metavar="P",
                       help="end a media body cleanly inside a fragment")
    knobs.add_argument("--block-cut-probability", type=probability, default=0.0, metavar="P",
                       help="end a media body cleanly between two SimpleBlocks of a fragment")
    knobs.add_argument("--missing-fragment-probability", type=probability, default=0.0, metavar="P",
                       help="per fragment: send the in-band FRAGMENT_NOT_FOUND error chunk instead")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    faults = Faults(
        throttle_probability=args.throttle_probability,
        error_500_probability=args.error_500_probability,
        reset_probability=args.reset_probability,
        truncate_probability=args.truncate_probability,
        block_cut_probability=args.block_cut_probability,
        missing_fragment_probability=args.missing_fragment_probability,
        seed=args.seed,
    )
    emulator = KvsEmulator(args.store, args.host, args.port, faults, args.now, args.tps_limit or None)
    print(f"KVS emulator serving {args.store} at {emulator.url}", flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
