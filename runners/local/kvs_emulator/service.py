"""The KVS API operations on a :class:`~runners.local.kvs_store.KvsStore`, free of HTTP.

Each operation takes the request JSON and the Host the client addressed, and returns the answer's
JSON (or, for GetMediaForFragmentList, a :class:`MediaResponse`); a refusal is raised as an
:class:`~runners.local.kvs_emulator.wire.ApiError`.  The service's own rules live here too:
validation, paging, per-stream throttling, retention and the clock.
"""
from __future__ import annotations

import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from runners.local import mkv_writer
from runners.local.kvs_emulator.faults import FaultInjector, Faults, StreamFault
from runners.local.kvs_emulator.wire import (
    ApiError,
    bounded_int,
    decode_token,
    encode_token,
    fragment_json,
    invalid,
    parse_selector,
    stream_info_json,
    throttled,
)
from runners.local.kvs_store import STREAM_NAME, Fragment, KvsStore, StreamInfo

API_NAMES = frozenset({
    "PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES",
})
STREAM_ARN = re.compile(
    r"^arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+$"
)
MAX_FRAGMENTS = 1000  # per ListFragments page and per GetMediaForFragmentList call (model, limits)
MAX_LIST_STREAMS = 10000
ZERO_RETENTION_BUFFER_MS = 5 * 60_000  # the host buffer that still serves DataRetentionInHours=0
ERROR_ID_NOT_YET_CONSISTENT = 3000  # the id seen in the real FRAGMENT_NOT_FOUND body (#3217)
ERROR_ID_FRAGMENT_NOT_FOUND = 4000  # "Requested fragment is not found" (botocore GetMedia doc)


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
        self.store, self.now_ms = store, now_ms
        self.limiter = RateLimiter(tps_limit)
        self.injector = FaultInjector(faults)
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

    # -- clock, retention, limits ---------------------------------------------------------------
    def clock_ms(self) -> int:
        return int(time.time() * 1000) if self.now_ms is None else self.now_ms

    def retention_start_ms(self, stream: StreamInfo) -> int:
        hours = stream.retention_hours
        return self.clock_ms() - (hours * 3_600_000 if hours else ZERO_RETENTION_BUFFER_MS)

    def admit(self, stream: StreamInfo, api: str) -> None:
        if not self.limiter.admit((stream.arn, api)):
            raise throttled(f"{api} rate exceeded for stream {stream.name}")

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
        self.injector.inject_request_faults()
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
        self.injector.inject_request_faults()
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
            elif self.injector.fragment_missing():
                sources.append(mkv_writer.error_chunk(number, error_id=ERROR_ID_NOT_YET_CONSISTENT))
            else:
                sources.append(fragment)
        return MediaResponse(self.read_chunks(stream, sources), self.injector.stream_fault(len(sources)))

    def read_chunks(self, stream: StreamInfo, sources: list[Fragment | bytes]) -> Iterator[bytes]:
        for source in sources:
            yield source if isinstance(source, bytes) else self.store.read_chunk(stream.name, source)


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
