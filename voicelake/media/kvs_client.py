"""Talking to Kinesis Video Streams' archived media the way a nightly batch must.

botocore gives us the wire protocol, not the operational rules that sank the existing tools
(shared/domain/kvs.md §4.3-4.4, §6.11):
- ``ClientLimitExceededException`` is HTTP 400 and botocore never retries it: we back off with
  exponential delay and full jitter, as we do for 5xx, connection errors and cut-off bodies;
- every stream allows 5 requests/s per API, so each worker paces its own calls per (stream, API);
- GetDataEndpoint is itself limited, so its answer is cached per worker per (stream, API);
- ListFragments is paginated and unordered: every page is read and the result sorted by the
  integer fragment number (never a float: the numbers have 47 digits);
- GetMediaForFragmentList bodies are parsed while they stream in, and a retry asks only for the
  fragments that did not arrive whole.
"""
from __future__ import annotations

import email.utils
import functools
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import boto3
import botocore.config
import botocore.exceptions

from voicelake.media import mkv_parser
from voicelake.model import ListedFragment

LIST_FRAGMENTS = "LIST_FRAGMENTS"
GET_MEDIA_FOR_FRAGMENT_LIST = "GET_MEDIA_FOR_FRAGMENT_LIST"
MAX_FRAGMENTS_PER_REQUEST = 1000
EXPIRED = "outside_retention"  # how a missing fragment's reason starts when retention took it
ZERO_RETENTION_MS = 5 * 60_000  # DataRetentionInHours=0 keeps a 5-minute host buffer (kvs.md §4.5)
# ConnectionLimitExceeded: more than 5 concurrent GetMediaForFragmentList connections on a stream,
# which many workers reading one pooled stream can cause; it clears when a connection closes.
RETRYABLE_CODES = {"ClientLimitExceededException", "ConnectionLimitExceededException",
                   "InternalFailure", "ServiceUnavailable", "ThrottlingException",
                   "InternalServerError"}


class KvsError(Exception):
    """A KVS call that failed for good; ``reason`` is the failures-table code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class RetryPolicy:
    """How long a request keeps trying.

    Transient faults (throttling, 5xx, resets, cut bodies) are retried for ``budget_s`` seconds
    per request (per fragment range), however many attempts that takes: a nightly batch has hours,
    and a call lost to a busy minute is lost for good.  What the service answers consistently
    (an in-band FRAGMENT_NOT_FOUND, a fragment shorter than listed) gets ``max_attempts`` rounds,
    then is reported.
    """
    max_attempts: int = 6
    budget_s: float = 1800.0
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    throttled: int = 0  # throttled answers met so far (each one retried or given up on)

    def delay(self, attempt: int) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^attempt)]."""
        return self.rng.uniform(0, min(self.max_delay_s, self.base_delay_s * (2 ** min(attempt, 30))))

    def deadline(self) -> float:
        return self.clock() + self.budget_s

    def wait_or_give_up(self, attempt: int, deadline: float, exc: BaseException, attempts: int) -> None:
        """Sleep before the next attempt, or raise the fault's KvsError once the budget is spent."""
        if error_code(exc) == "ClientLimitExceededException":
            self.throttled += 1
        delay = self.delay(attempt)
        if self.clock() + delay > deadline:
            code = error_code(exc) or type(exc).__name__
            reason = "throttled" if code == "ClientLimitExceededException" else "kvs_unavailable"
            raise KvsError(reason, f"gave up after {attempts} attempts in {self.budget_s:.0f} s: "
                                   f"{code}: {exc}") from exc
        self.sleep(delay)


class RateLimiter:
    """At most ``rate`` calls per second per key, spaced evenly, shared by a worker's threads."""

    def __init__(self, rate: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / rate
        self.clock, self.sleep = clock, sleep
        self._next: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: tuple) -> None:
        with self._lock:
            now = self.clock()
            at = max(now, self._next.get(key, now))
            self._next[key] = at + self.interval
        if at > now:
            self.sleep(at - now)


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in RETRYABLE_CODES or status >= 500
    return isinstance(exc, (botocore.exceptions.ConnectionError,
                            botocore.exceptions.HTTPClientError,
                            botocore.exceptions.ResponseStreamingError,
                            botocore.exceptions.IncompleteReadError,
                            botocore.exceptions.ReadTimeoutError,
                            ConnectionError, TimeoutError))


def _fatal_reason(exc: BaseException) -> str:
    code = error_code(exc)
    if code == "ResourceNotFoundException":
        return "stream_not_found"
    if code == "InvalidArgumentException" and "retention" in str(exc):
        return "outside_retention"
    if code == "NotAuthorizedException":
        return "not_authorized"
    return "kvs_error"


_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def shared_client(service: str, endpoint_url: str | None, region: str, config):
    """One boto3 client per (service, endpoint, region) per process.

    Creating a client loads and parses botocore's JSON service models (tens of ms each); DoFns are
    set up per bundle on some runners, so per-DoFn clients cost more CPU than the media itself.
    boto3 clients are thread-safe, so sharing them is sound.
    """
    key = (service, endpoint_url, region)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = boto3.session.Session().client(
                service, endpoint_url=endpoint_url, region_name=region, config=config)
        return client


class KvsArchive:
    """One worker's view of KVS archived media: cached endpoints, paced and retried calls."""

    _shared_endpoints: dict[tuple[str, str, str], str] = {}
    _shared_retention: dict[tuple[str, str], int] = {}
    _shared_limiter = RateLimiter()

    def __init__(self, *, endpoint_url: str | None = None, region: str | None = None,
                 retry: RetryPolicy | None = None, limiter: RateLimiter | None = None,
                 read_size: int = 1 << 20):
        self.endpoint_url = endpoint_url or os.environ.get("VOICELAKE_KVS_ENDPOINT_URL")
        self.region = region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or self._shared_limiter
        self.read_size = read_size
        # botocore's own retries would double-count against our pacing; we own retrying.
        self._config = botocore.config.Config(retries={"total_max_attempts": 1},
                                              read_timeout=120, connect_timeout=10)
        self._control = shared_client("kinesisvideo", self.endpoint_url, self.region, self._config)

    # -- plumbing ------------------------------------------------------------------------------
    def _call(self, key: tuple, fn: Callable[[], object]):
        deadline, attempt = self.retry.deadline(), 0
        while True:
            self.limiter.wait(key)
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - sorted into retryable / fatal below
                if not is_retryable(exc):
                    raise KvsError(_fatal_reason(exc), str(exc)) from exc
                self.retry.wait_or_give_up(attempt, deadline, exc, attempt + 1)
                attempt += 1

    def data_endpoint(self, stream_arn: str, api: str) -> str:
        key = (self.endpoint_url or "", stream_arn, api)
        cached = self._shared_endpoints.get(key)
        if cached is None:
            response = self._call((stream_arn, "GET_DATA_ENDPOINT"), lambda: self._control.get_data_endpoint(
                StreamARN=stream_arn, APIName=api))
            cached = self._shared_endpoints[key] = response["DataEndpoint"]
        return cached

    def retention_hours(self, stream_arn: str) -> int:
        """The stream's DataRetentionInHours (DescribeStream), asked once per worker and stream."""
        key = (self.endpoint_url or "", stream_arn)
        if key not in self._shared_retention:
            info = self._call((stream_arn, "DESCRIBE_STREAM"),
                              lambda: self._control.describe_stream(StreamARN=stream_arn))
            self._shared_retention[key] = int(info["StreamInfo"].get("DataRetentionInHours", 0))
        return self._shared_retention[key]

    def _media(self, stream_arn: str, api: str):
        return shared_client("kinesis-video-archived-media", self.data_endpoint(stream_arn, api),
                             self.region, self._config)

    # -- control plane -------------------------------------------------------------------------
    def stream_arns(self, name_prefix: str) -> list[str]:
        """Streams whose name begins with ``name_prefix`` (Chime: one Voice Connector's pool)."""
        arns, token = [], None
        while True:
            kwargs = {"MaxResults": 1000,
                      "StreamNameCondition": {"ComparisonOperator": "BEGINS_WITH",
                                              "ComparisonValue": name_prefix}}
            if token:
                kwargs["NextToken"] = token
            page = self._call(("*", "LIST_STREAMS"), functools.partial(self._control.list_streams, **kwargs))
            arns += [s["StreamARN"] for s in page.get("StreamInfoList", [])]
            token = page.get("NextToken")
            if not token:
                return sorted(arns)

    # -- archived media ------------------------------------------------------------------------
    def list_fragments(self, stream_arn: str, start_ms: int, end_ms: int,
                       selector: str = "SERVER_TIMESTAMP") -> list[ListedFragment]:
        """Every fragment whose start lies in [start_ms, end_ms], sorted by fragment number."""
        client = self._media(stream_arn, LIST_FRAGMENTS)
        found: dict[str, ListedFragment] = {}
        token = None
        while True:
            kwargs = {"StreamARN": stream_arn, "MaxResults": 1000}
            if token:
                kwargs["NextToken"] = token
            else:
                kwargs["FragmentSelector"] = {
                    "FragmentSelectorType": selector,
                    "TimestampRange": {"StartTimestamp": start_ms / 1000,
                                       "EndTimestamp": end_ms / 1000}}
            page = self._call((stream_arn, LIST_FRAGMENTS), functools.partial(client.list_fragments, **kwargs))
            for f in page.get("Fragments", []):
                found[f["FragmentNumber"]] = ListedFragment(
                    number=f["FragmentNumber"],
                    producer_ms=round(f["ProducerTimestamp"].timestamp() * 1000),
                    server_ms=round(f["ServerTimestamp"].timestamp() * 1000),
                    duration_ms=int(f.get("FragmentLengthInMilliseconds", 0)),
                    size=int(f.get("FragmentSizeInBytes", 0)))
            token = page.get("NextToken")
            if not token:
                return sorted(found.values(), key=lambda f: int(f.number))

    def fetch_fragments(self, stream_arn: str, fragments: Iterable[ListedFragment | str]) -> MediaFetch:
        """Fragments by number (or as ListFragments listed them, which lets a fragment cut short
        at the end of a body be told from a whole one), each yielded as soon as it has streamed in
        whole; see MediaFetch."""
        listing = {}
        for f in fragments:
            listing.setdefault(f.number if isinstance(f, ListedFragment) else f,
                               f if isinstance(f, ListedFragment) else None)
        if not 0 < len(listing) <= MAX_FRAGMENTS_PER_REQUEST:
            raise ValueError(f"{len(listing)} fragments: GetMediaForFragmentList takes 1 to 1000")
        return MediaFetch(self, stream_arn, listing)

    def get_fragments(self, stream_arn: str, numbers: Iterable[str]) -> FetchResult:
        """``fetch_fragments`` collected into one result (for tools and tests; the pipeline streams)."""
        fetch = self.fetch_fragments(stream_arn, numbers)
        fragments = {f.fragment_number: f for f in fetch}
        return FetchResult(fragments=fragments, errors=dict(fetch.errors), missing=dict(fetch.missing),
                           bytes_read=fetch.bytes_read, attempts=fetch.attempts)


class MediaFetch:
    """One range's GetMediaForFragmentList, parsed while the body streams in.

    Iterating yields each requested fragment once, in body order, as soon as it is known whole,
    so a consumer holds one fragment at a time.  A fragment followed by another chunk is whole; the
    last fragment of a body is whole only if it is as long as ListFragments said (its audio span
    and its bytes), because a body can end cleanly between two blocks.  A retry asks only for the
    fragments not yet yielded.  Transient faults are retried within the policy's time budget, then
    raise KvsError (throttled / kvs_unavailable) from the iteration; in-band FRAGMENT_NOT_FOUND
    chunks and short fragments get ``max_attempts`` rounds, then are in ``missing`` with the reason.
    """

    def __init__(self, archive: KvsArchive, stream_arn: str, listing: dict):
        self.archive, self.stream_arn, self.listing = archive, stream_arn, listing
        self.wanted = list(listing)
        self.errors: dict[str, str] = {}  # number -> what the last attempt said of it
        self.missing: dict[str, str] = {}  # number -> why it never arrived
        self.bytes_read = 0
        self.attempts = 0
        self.answered_ms: int | None = None  # the service's clock (Date) at the last answer

    def __iter__(self):
        archive, retry = self.archive, self.archive.retry
        client = archive._media(self.stream_arn, GET_MEDIA_FOR_FRAGMENT_LIST)
        delivered: set[str] = set()
        pending = self.wanted
        deadline, faults, rounds = retry.deadline(), 0, 0
        while True:
            archive.limiter.wait((self.stream_arn, GET_MEDIA_FOR_FRAGMENT_LIST))
            self.attempts += 1
            failure = None
            try:
                response = client.get_media_for_fragment_list(StreamARN=self.stream_arn,
                                                              Fragments=pending)
                self.answered_ms = answered_ms(response) or self.answered_ms
                yield from self._consume(response["Payload"], delivered)
            except mkv_parser.ParseError as exc:
                raise KvsError("corrupt_media", str(exc)) from exc
            except KvsError:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted into retryable / fatal
                if not is_retryable(exc):
                    raise KvsError(_fatal_reason(exc), str(exc)) from exc
                failure = exc
            pending = [n for n in self.wanted if n not in delivered]
            if not pending:
                return
            if failure is not None:
                retry.wait_or_give_up(faults, deadline, failure, self.attempts)
                faults += 1
                continue
            rounds += 1  # the body came whole and still lacked fragments
            if rounds >= retry.max_attempts:
                break
            retry.sleep(retry.delay(rounds - 1))
        self.missing = {n: self.errors.get(n, "not in the response") for n in pending}
        self._name_expired()

    def _name_expired(self) -> None:
        """A missing fragment that was older than the stream's retention when KVS answered is
        expired media ("you ran too late"), not media KVS lost: its reason says so."""
        listed = {n: self.listing.get(n) for n in self.missing}
        if self.answered_ms is None or not any(listed.values()):
            return
        try:
            hours = self.archive.retention_hours(self.stream_arn)
        except KvsError:
            return  # not knowing the retention leaves the reason as KVS gave it
        kept_ms = hours * 3_600_000 if hours else ZERO_RETENTION_MS
        for number, fragment in listed.items():
            if fragment is None:
                continue
            past = self.answered_ms - fragment.server_ms - kept_ms
            if past > -1000:  # a Date header is whole seconds: the answer came up to 1 s later
                self.missing[number] = (
                    f"{EXPIRED}: ingested {_hours(self.answered_ms - fragment.server_ms)} before KVS "
                    f"answered, {_hours(max(past, 0))} past the stream's DataRetentionInHours={hours}"
                    + ("" if hours else " (a 5-minute buffer)"))

    def _consume(self, payload, delivered: set[str]):
        counted = _CountingReader(payload)
        held = None  # the latest fragment: whole once another chunk follows it
        try:
            for fragment in mkv_parser.iter_fragments(counted, read_size=self.archive.read_size):
                if held is not None:
                    delivered.add(held.fragment_number)
                    yield held
                    held = None
                number = fragment.fragment_number
                if number is None or number not in self.listing or number in delivered:
                    continue
                if fragment.error is not None:
                    self.errors[number] = fragment.error.code or "error chunk"
                elif not fragment.truncated:
                    self.errors.pop(number, None)
                    held = fragment
            if held is not None:
                short = shorter_than_listed(held, self.listing[held.fragment_number])
                if short:
                    self.errors[held.fragment_number] = short
                else:
                    delivered.add(held.fragment_number)
                    yield held
        finally:
            self.bytes_read += counted.count
            payload.close()


def answered_ms(response: dict) -> int | None:
    """The Date header of a KVS answer, in epoch ms (None if absent or unreadable)."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return int(email.utils.parsedate_to_datetime(date).timestamp() * 1000) if date else None
    except (TypeError, ValueError):
        return None


def _hours(ms: int) -> str:
    return f"{ms / 3_600_000:.1f} h"


def shorter_than_listed(fragment, listed: ListedFragment | None) -> str | None:
    """Why a fragment that ended a body is not the whole fragment ListFragments listed, or None.

    Its audio must span the listed FragmentLengthInMilliseconds (1 ms of rounding allowed) and its
    bytes must reach FragmentSizeInBytes (a served fragment carries at least the stored bytes).
    """
    if listed is None:
        return None
    if listed.size and fragment.size < listed.size:
        return f"body ended {listed.size - fragment.size} bytes short of the listed fragment"
    spans = [(blocks[0][0], max(t + len(pcm) // (2 * track.channels) * 1000 / track.sample_rate
                                for t, pcm in blocks))
             for track in fragment.tracks.values() if (blocks := track.blocks)]
    if listed.duration_ms and spans:
        span = max(end for _, end in spans) - min(start for start, _ in spans)
        if span + 1 < listed.duration_ms:
            return f"body ended with {span:.0f} of the listed {listed.duration_ms} ms"
    return None


class _CountingReader:
    """Counts the bytes a streamed body delivered, for the bytes_fetched metric."""

    def __init__(self, raw):
        self.raw, self.count = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data


@dataclass
class FetchResult:
    fragments: dict = field(default_factory=dict)  # number -> mkv_parser.Fragment
    errors: dict = field(default_factory=dict)  # number -> in-band error code
    missing: dict = field(default_factory=dict)  # number -> why it never arrived
    bytes_read: int = 0
    attempts: int = 0
