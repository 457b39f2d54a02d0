"""The wire format botocore speaks to KVS (rest-json, API version 2017-09-30, kvs.md §4).

Reading a request: its JSON body and the fields the service validates itself.  Writing an answer:
the JSON shapes of streams and fragments, the opaque NextToken, error answers as AWS sends them
(kvs.md §4.3) and the HTTP chunks of a media body.  Values in, values out: the server writes them.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from decimal import Decimal

from runners.local.kvs_store import Fragment, StreamInfo

ERROR_DOC_URL = "https://kinesisvideo.amazonaws.com/doc/2017-09-30/"
MEDIA_CONTENT_TYPE = "video/webm"
SELECTOR_TYPES = frozenset({"SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP"})
NEXT_TOKEN = re.compile(r"^[a-zA-Z0-9+/]+={0,2}$")
LAST_CHUNK = b"0\r\n\r\n"  # the zero-length chunk that ends a chunked body cleanly


class ApiError(Exception):
    """A modelled service error: answered as ``x-amzn-ErrorType`` plus a JSON ``Message``."""

    def __init__(self, code: str, status: int, message: str):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def invalid(message: str) -> ApiError:
    return ApiError("InvalidArgumentException", 400, message)


def throttled(message: str) -> ApiError:
    return ApiError("ClientLimitExceededException", 400, message)


def access_denied(path: str) -> ApiError:
    """What KVS answers a signed call that IAM does not allow (kvs.md §4.3: 403 AccessDeniedException)."""
    name = path.lstrip("/")  # /listStreams -> kinesisvideo:ListStreams
    action = f"kinesisvideo:{name[:1].upper()}{name[1:]}"
    return ApiError("AccessDeniedException", 403,
                    f"User: arn:aws:iam::000000000000:user/emulated is not authorized to perform: {action}")


# -- requests -----------------------------------------------------------------------------------
def parse_body(raw: bytes) -> dict:
    """Request JSON with exact decimals, so fractional epoch seconds compare without float error."""
    try:
        body = json.loads(raw or b"{}", parse_float=Decimal)
    except ValueError:
        raise ApiError("SerializationException", 400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("SerializationException", 400, "The request body must be a JSON object.")
    return body


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


# -- NextToken ----------------------------------------------------------------------------------
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


# -- answers ------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class JsonAnswer:
    """A whole JSON response: status, headers in the order they are sent, body."""

    status: int
    headers: dict[str, str]
    body: bytes


def json_answer(status: int, payload: dict, request_id: str, extra: dict | None = None) -> JsonAnswer:
    data = json.dumps(payload).encode()
    headers = {**(extra or {}), "x-amzn-RequestId": request_id,
               "Content-Type": "application/json", "Content-Length": len(data)}
    return JsonAnswer(status, {key: str(value) for key, value in headers.items()}, data)


def error_answer(error: ApiError, request_id: str) -> JsonAnswer:
    """botocore reads the error code from ``x-amzn-ErrorType``, the text from the body's Message."""
    return json_answer(error.status, {"Message": error.message}, request_id,
                       {"x-amzn-ErrorType": f"{error.code}:{ERROR_DOC_URL}"})


def media_headers(request_id: str) -> dict[str, str]:
    """Chunked, because the body is streamed fragment by fragment and its length never known upfront."""
    return {"x-amzn-RequestId": request_id, "Content-Type": MEDIA_CONTENT_TYPE,
            "Transfer-Encoding": "chunked"}


def http_chunk(data: bytes) -> bytes:
    return b"%X\r\n%s\r\n" % (len(data), data)
