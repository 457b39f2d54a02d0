"""The local KVS emulator, specified through what unmodified boto3 clients see over real HTTP.

Stores are seeded with KvsStore + mkv_writer; everything else goes through boto3.
"""
from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import boto3
import botocore
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ResponseStreamingError

from runners.local import mkv_writer
from runners.local.kvs_emulator import Faults, start_emulator
from runners.local.kvs_store import Fragment, KvsStore

CREDENTIALS = dict(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
ONE_ATTEMPT = Config(retries={"total_max_attempts": 1})
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z, where seeded fragments start
HOUR = 3_600_000
NOW = T0 + HOUR  # the frozen emulator clock unless a test says otherwise
THREE_DAYS = 72 * HOUR
ERROR_TYPE_URL = "https://kinesisvideo.amazonaws.com/doc/2017-09-30/"


def voicelake_script() -> str:
    """The ``voicelake`` console script of the environment running the tests, wherever it lives."""
    script = Path(sys.executable).with_name("voicelake")
    assert script.is_file(), f"no voicelake console script beside {sys.executable}: pip install -e . first"
    return str(script)


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path) -> KvsStore:
    return KvsStore(tmp_path / "kvs")


@pytest.fixture
def serve(store):
    """Start emulators on ``store`` (clock frozen at NOW, no throttling unless asked); stop them after."""
    running = []

    def start(**settings):
        emulator = start_emulator(str(store.root), **{"now_ms": NOW, "tps_limit": None, **settings})
        running.append(emulator)
        return emulator

    yield start
    for emulator in running:
        emulator.stop()


def control_plane(emulator, config=ONE_ATTEMPT):
    return boto3.client("kinesisvideo", endpoint_url=emulator.url, config=config, **CREDENTIALS)


def archived_media(emulator, config=ONE_ATTEMPT):
    return boto3.client("kinesis-video-archived-media", endpoint_url=emulator.url, config=config,
                        **CREDENTIALS)


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def as_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def seed_chime(store: KvsStore, stream: str, count: int, *, start_ms: int = T0, step_ms: int = 1000,
               producer_skew_ms: int = 0) -> list[Fragment]:
    """``count`` one-block Chime fragments ``step_ms`` apart; producer clock = server clock + skew."""
    fragments = []
    for i in range(count):
        server_ms = start_ms + i * step_ms
        producer_ms = server_ms + producer_skew_ms
        fragments.append(store.put_fragment(
            stream, producer_ms=producer_ms, server_ms=server_ms, duration_ms=step_ms,
            make_chunk=lambda number, producer_ms=producer_ms, server_ms=server_ms: mkv_writer.chime_fragment(
                fragment_number=number, producer_ms=producer_ms, server_ms=server_ms,
                transaction_id="tx", voice_connector_id="vc", call_id="call",
                pcm=bytes(mkv_writer.CHIME_BLOCK_BYTES)),
        ))
    return fragments


def stream_with(store: KvsStore, name: str, count: int, **seed) -> list[Fragment]:
    store.create_stream(name, creation_ms=T0 - HOUR)
    return seed_chime(store, name, count, **seed)


def numbers_of(listed: list[dict]) -> list[str]:
    return [f["FragmentNumber"] for f in listed]


def selector(kind: str, start_ms: int, end_ms: int) -> dict:
    return {"FragmentSelectorType": kind,
            "TimestampRange": {"StartTimestamp": at(start_ms), "EndTimestamp": at(end_ms)}}


def failure(call, **params) -> dict:
    """The botocore error response of a call that must fail."""
    with pytest.raises(ClientError) as raised:
        call(**params)
    return raised.value.response


def code_and_status(response: dict) -> tuple[str, int]:
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def media_body(emulator, stream: str, numbers: list[str]) -> bytes:
    return archived_media(emulator).get_media_for_fragment_list(
        StreamName=stream, Fragments=numbers)["Payload"].read()


# -- control plane ------------------------------------------------------------------------------
def test_create_describe_and_list_streams_follow_the_kinesisvideo_model(serve):
    kv = control_plane(serve())
    arn = kv.create_stream(StreamName="connect-contact-1", DataRetentionInHours=48,
                           MediaType="audio/L16")["StreamARN"]
    kv.create_stream(StreamName="connect-contact-2")
    kv.create_stream(StreamName="chime-leg-1")

    assert re.fullmatch(r"arn:aws:kinesisvideo:us-east-1:\d+:stream/connect-contact-1/\d+", arn)
    info = kv.describe_stream(StreamARN=arn)["StreamInfo"]
    assert {k: v for k, v in info.items() if k != "Version"} == {
        "StreamName": "connect-contact-1", "StreamARN": arn, "MediaType": "audio/L16",
        "CreationTime": at(NOW), "DataRetentionInHours": 48, "Status": "ACTIVE",
    }
    defaulted = kv.describe_stream(StreamName="connect-contact-2")["StreamInfo"]
    assert defaulted["DataRetentionInHours"] == 0 and "MediaType" not in defaulted

    assert code_and_status(failure(kv.create_stream, StreamName="chime-leg-1")) == (
        "ResourceInUseException", 400)

    condition = {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "connect-"}
    first = kv.list_streams(StreamNameCondition=condition, MaxResults=1)
    second = kv.list_streams(StreamNameCondition=condition, MaxResults=1, NextToken=first["NextToken"])
    assert [s["StreamName"] for s in first["StreamInfoList"]] == ["connect-contact-1"]
    assert [s["StreamName"] for s in second["StreamInfoList"]] == ["connect-contact-2"]
    assert "NextToken" not in second
    paged = kv.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2})
    assert [s["StreamName"] for s in paged.build_full_result()["StreamInfoList"]] == [
        "chime-leg-1", "connect-contact-1", "connect-contact-2"]


def test_get_data_endpoint_returns_the_emulator_itself_for_every_api_name(serve, store):
    store.create_stream("leg")
    emulator = serve()
    kv = control_plane(emulator)
    for api_name in ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
                     "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP",
                     "GET_IMAGES"]:
        assert kv.get_data_endpoint(StreamName="leg", APIName=api_name)["DataEndpoint"] == emulator.url

    bad_name = failure(kv.get_data_endpoint, StreamName="leg", APIName="GET_EVERYTHING")
    assert code_and_status(bad_name) == ("InvalidArgumentException", 400)
    unknown = failure(kv.get_data_endpoint, StreamName="nope", APIName="LIST_FRAGMENTS")
    assert code_and_status(unknown) == ("ResourceNotFoundException", 404)


# -- ListFragments ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_stream(tmp_path_factory):
    """2100 fragments in one stream: three ListFragments pages (1000, 1000, 100)."""
    store = KvsStore(tmp_path_factory.mktemp("big") / "kvs")
    fragments = stream_with(store, "big", 2100, step_ms=100)
    with start_emulator(str(store.root), now_ms=NOW, tps_limit=None) as emulator:
        yield emulator, fragments


def test_list_fragments_pages_past_1000_returning_each_fragment_once_in_no_order(big_stream):
    emulator, fragments = big_stream
    client = archived_media(emulator)

    pages = [page["Fragments"] for page in client.get_paginator("list_fragments").paginate(
        StreamName="big")]
    assert [len(page) for page in pages] == [1000, 1000, 100]
    listed = [number for page in pages for number in numbers_of(page)]
    assert sorted(listed, key=int) == [f.number for f in fragments]
    assert all(numbers_of(page) != sorted(numbers_of(page), key=int) for page in pages)

    manual, token, tokens = [], None, []
    while True:
        answer = client.list_fragments(StreamName="big", **({"NextToken": token} if token else {}))
        manual += numbers_of(answer["Fragments"])
        token = answer.get("NextToken")
        if token is None:
            break
        tokens.append(token)
    assert manual == listed
    assert len(tokens) == 2 and all(re.fullmatch(r"[a-zA-Z0-9+/]+={0,2}", t) for t in tokens)


def test_list_fragments_reports_every_field_of_a_fragment(big_stream):
    emulator, fragments = big_stream
    first = fragments[0]
    listed = archived_media(emulator).list_fragments(
        StreamName="big", FragmentSelector=selector("SERVER_TIMESTAMP", T0, T0))["Fragments"]
    assert listed == [{
        "FragmentNumber": first.number, "FragmentSizeInBytes": first.size,
        "ProducerTimestamp": at(T0), "ServerTimestamp": at(T0), "FragmentLengthInMilliseconds": 100,
    }]


def test_selector_returns_fragments_that_start_inside_the_range_ends_included(serve, store):
    fragments = stream_with(store, "leg", 5)  # 1 s fragments starting at T0, T0+1 s, ... T0+4 s
    client = archived_media(serve())

    def starts(start_ms, end_ms):
        listed = client.list_fragments(
            StreamName="leg", FragmentSelector=selector("SERVER_TIMESTAMP", start_ms, end_ms))
        return sorted(as_ms(f["ServerTimestamp"]) - T0 for f in listed["Fragments"])

    # The fragment at T0 overlaps [T0+0.5 s, T0+3 s] but starts before it: not returned.
    # The one starting exactly at the end is returned.
    assert starts(T0 + 500, T0 + 3000) == [1000, 2000, 3000]
    # A fragment starting exactly at the start is returned.
    assert starts(T0 + 1000, T0 + 2500) == [1000, 2000]
    assert starts(T0 + 4001, T0 + 9000) == []
    assert len(fragments) == 5


def test_server_and_producer_selectors_use_their_own_clock(serve, store):
    store.create_stream("skewed", retention_hours=24 * 7)
    fragments = seed_chime(store, "skewed", 4, producer_skew_ms=-THREE_DAYS)
    client = archived_media(serve())

    def listed(kind, start_ms, end_ms):
        answer = client.list_fragments(StreamName="skewed",
                                       FragmentSelector=selector(kind, start_ms, end_ms))
        return sorted(numbers_of(answer["Fragments"]), key=int)

    first_three = [f.number for f in fragments[:3]]
    assert listed("SERVER_TIMESTAMP", T0, T0 + 2000) == first_three
    assert listed("PRODUCER_TIMESTAMP", T0, T0 + 2000) == []
    assert listed("PRODUCER_TIMESTAMP", T0 - THREE_DAYS, T0 - THREE_DAYS + 2000) == first_three
    assert listed("SERVER_TIMESTAMP", T0 - THREE_DAYS, T0 - THREE_DAYS + 2000) == []


# -- GetMediaForFragmentList --------------------------------------------------------------------
def test_media_body_is_the_requested_chunks_in_request_order_streamed_as_chunked_webm(serve, store):
    fragments = stream_with(store, "leg", 3)
    requested = [fragments[2], fragments[0], fragments[1]]
    response = archived_media(serve()).get_media_for_fragment_list(
        StreamName="leg", Fragments=[f.number for f in requested])

    assert response["ContentType"] == "video/webm"
    assert response["ResponseMetadata"]["HTTPHeaders"]["transfer-encoding"] == "chunked"
    assert response["Payload"].read() == b"".join(store.read_chunk("leg", f) for f in requested)


@pytest.mark.parametrize("to_customer_first", [True, False], ids=["TO-is-track-1", "FROM-is-track-1"])
def test_connect_body_decodes_with_mkvextract_to_the_seeded_pcm(serve, store, tmp_path,
                                                               to_customer_first):
    assert shutil.which("mkvextract"), "mkvextract (mkvtoolnix) is required to decode the body"
    store.create_stream("connect")
    rng = random.Random(42)
    to_pcm, from_pcm, numbers = [], [], []
    for i in range(3):
        to_pcm.append(rng.randbytes(4 * mkv_writer.CONNECT_BLOCK_BYTES))
        from_pcm.append(rng.randbytes(4 * mkv_writer.CONNECT_BLOCK_BYTES))
        start_ms = T0 + i * 256
        numbers.append(store.put_fragment(
            "connect", producer_ms=start_ms, server_ms=start_ms + 170, duration_ms=256,
            make_chunk=lambda number, start_ms=start_ms: mkv_writer.connect_fragment(
                fragment_number=number, producer_ms=start_ms, server_ms=start_ms + 170,
                contact_id="contact-1", instance_id="instance-1", from_customer=from_pcm[-1],
                to_customer=to_pcm[-1], to_customer_first=to_customer_first),
        ).number)
    body = tmp_path / "body.mkv"
    body.write_bytes(media_body(serve(), "connect", numbers))

    track0, track1 = tmp_path / "a.bin", tmp_path / "b.bin"
    extract = subprocess.run(
        ["mkvextract", str(body), "tracks", "--raw", f"0:{track0}", "--raw", f"1:{track1}"],
        capture_output=True, text=True)
    # Exit status 1 means warnings only: every chained chunk repeats Tracks and starts a new EBML
    # header inside the previous unknown-size Segment, which mkvextract resyncs over.
    assert extract.returncode == 1, extract.stdout + extract.stderr
    assert "More than one track with the track number 1 found." in extract.stdout
    first, second = (to_pcm, from_pcm) if to_customer_first else (from_pcm, to_pcm)
    assert track0.read_bytes() == b"".join(first)
    assert track1.read_bytes() == b"".join(second)


# -- errors, as botocore reports them ----------------------------------------------------------
def test_unknown_stream_is_resource_not_found_404_with_the_real_error_headers(serve):
    emulator = serve()
    for call, params in [
        (control_plane(emulator).describe_stream, {"StreamName": "nope"}),
        (archived_media(emulator).list_fragments, {"StreamName": "nope"}),
        (archived_media(emulator).get_media_for_fragment_list, {"StreamName": "nope", "Fragments": ["1"]}),
    ]:
        response = failure(call, **params)
        headers = response["ResponseMetadata"]["HTTPHeaders"]
        assert code_and_status(response) == ("ResourceNotFoundException", 404)
        assert headers["x-amzn-errortype"] == f"ResourceNotFoundException:{ERROR_TYPE_URL}"
        assert headers["content-type"] == "application/json"
        assert re.fullmatch(r"[0-9a-f-]{36}", headers["x-amzn-requestid"])


def test_limits_botocore_leaves_to_the_service_are_invalid_argument_400(serve, store):
    fragments = stream_with(store, "leg", 2)
    client = archived_media(serve())

    assert code_and_status(failure(client.list_fragments, StreamName="leg", MaxResults=1001)) == (
        "InvalidArgumentException", 400)
    too_many = [fragments[0].number] * 1001
    assert code_and_status(failure(client.get_media_for_fragment_list, StreamName="leg",
                                   Fragments=too_many)) == ("InvalidArgumentException", 400)


def test_non_numeric_and_foreign_fragment_numbers_are_invalid(serve, store):
    stream_with(store, "leg", 2)
    foreign = stream_with(store, "other-leg", 1)[0].number
    client = archived_media(serve())

    for numbers in (["not-a-number"], [foreign]):
        response = failure(client.get_media_for_fragment_list, StreamName="leg", Fragments=numbers)
        assert code_and_status(response) == ("InvalidArgumentException", 400)
        assert response["Error"]["Message"] == "Fragment numbers are invalid"


def test_end_timestamp_before_retention_gets_the_real_message(serve, store):
    store.create_stream("leg", retention_hours=1)
    seed_chime(store, "leg", 2)
    client = archived_media(serve(now_ms=T0 + 2 * HOUR))  # retention starts at T0 + 1 h

    response = failure(client.list_fragments, StreamName="leg",
                       FragmentSelector=selector("SERVER_TIMESTAMP", T0, T0 + 30 * 60_000))
    assert code_and_status(response) == ("InvalidArgumentException", 400)
    assert response["Error"]["Message"] == (
        "End timestamp 1700001800000 is outside of the stream retention period.")


def test_unsigned_request_is_not_authorized_401(serve, store):
    store.create_stream("leg")
    unsigned = Config(signature_version=botocore.UNSIGNED, retries={"total_max_attempts": 1})
    emulator = serve()
    for call, params in [
        (control_plane(emulator, unsigned).describe_stream, {"StreamName": "leg"}),
        (archived_media(emulator, unsigned).list_fragments, {"StreamName": "leg"}),
    ]:
        assert code_and_status(failure(call, **params)) == ("NotAuthorizedException", 401)


# -- throttling ---------------------------------------------------------------------------------
def test_more_than_5_requests_per_second_per_stream_per_api_are_throttled(serve, store):
    first = stream_with(store, "leg-a", 1)[0].number
    stream_with(store, "leg-b", 1)
    emulator = serve(tps_limit=5)
    client, kv = archived_media(emulator), control_plane(emulator)

    for _ in range(5):
        client.list_fragments(StreamName="leg-a")
    throttled = failure(client.list_fragments, StreamName="leg-a")
    assert code_and_status(throttled) == ("ClientLimitExceededException", 400)

    for _ in range(5):  # another stream has its own budget ...
        client.list_fragments(StreamName="leg-b")
    for _ in range(5):  # ... and so has another API on the same stream
        client.get_media_for_fragment_list(StreamName="leg-a", Fragments=[first])["Payload"].read()
        kv.get_data_endpoint(StreamName="leg-a", APIName="LIST_FRAGMENTS")
    assert code_and_status(failure(kv.get_data_endpoint, StreamName="leg-a",
                                   APIName="LIST_FRAGMENTS")) == ("ClientLimitExceededException", 400)

    time.sleep(1.05)  # the sliding window has moved past the first five calls
    assert len(client.list_fragments(StreamName="leg-a")["Fragments"]) == 1


# -- retention ----------------------------------------------------------------------------------
def test_expired_fragments_are_unlisted_and_served_as_fragment_not_found_chunks(serve, store):
    store.create_stream("leg", retention_hours=1)
    old = seed_chime(store, "leg", 2)  # at T0, T0 + 1 s
    fresh = seed_chime(store, "leg", 1, start_ms=T0 + 90 * 60_000)[0]
    emulator = serve(now_ms=T0 + 2 * HOUR)  # retention starts at T0 + 1 h
    client = archived_media(emulator)

    assert numbers_of(client.list_fragments(StreamName="leg")["Fragments"]) == [fresh.number]
    body = media_body(emulator, "leg", [old[0].number, fresh.number])
    assert body == (mkv_writer.error_chunk(old[0].number, error_id=4000)
                    + store.read_chunk("leg", fresh))

    emulator.now_ms = T0 + 3 * HOUR  # the clock moves on; now everything has expired
    assert client.list_fragments(StreamName="leg")["Fragments"] == []


# -- fault injection ----------------------------------------------------------------------------
def test_throttle_fault_hits_archived_media_calls_only(serve, store):
    number = stream_with(store, "leg", 1)[0].number
    emulator = serve(faults=Faults(throttle_probability=1.0))
    client, kv = archived_media(emulator), control_plane(emulator)

    assert code_and_status(failure(client.list_fragments, StreamName="leg")) == (
        "ClientLimitExceededException", 400)
    assert code_and_status(failure(client.get_media_for_fragment_list, StreamName="leg",
                                   Fragments=[number])) == ("ClientLimitExceededException", 400)
    assert kv.describe_stream(StreamName="leg")["StreamInfo"]["StreamName"] == "leg"
    assert kv.get_data_endpoint(StreamName="leg", APIName="LIST_FRAGMENTS")["DataEndpoint"] == emulator.url


def test_error_500_fault_is_internal_failure(serve, store):
    number = stream_with(store, "leg", 1)[0].number
    client = archived_media(serve(faults=Faults(error_500_probability=1.0)))

    for call, params in [(client.list_fragments, {"StreamName": "leg"}),
                         (client.get_media_for_fragment_list, {"StreamName": "leg", "Fragments": [number]})]:
        response = failure(call, **params)
        assert code_and_status(response) == ("InternalFailure", 500)
        assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
            f"InternalFailure:{ERROR_TYPE_URL}")


def test_reset_fault_breaks_the_body_while_it_is_read(serve, store):
    numbers = [f.number for f in stream_with(store, "leg", 3)]
    response = archived_media(serve(faults=Faults(reset_probability=1.0))).get_media_for_fragment_list(
        StreamName="leg", Fragments=numbers)

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ResponseStreamingError, match="Connection reset by peer"):
        response["Payload"].read()


def test_truncate_fault_ends_the_body_cleanly_inside_a_fragment(serve, store):
    fragments = stream_with(store, "leg", 3)
    full = b"".join(store.read_chunk("leg", f) for f in fragments)
    chunk_ends = {sum(f.size for f in fragments[:i]) for i in range(4)}

    body = media_body(serve(faults=Faults(truncate_probability=1.0)), "leg",
                      [f.number for f in fragments])
    assert 0 < len(body) < len(full)
    assert full.startswith(body)
    assert len(body) not in chunk_ends


def test_missing_fragment_fault_sends_in_band_error_chunks_with_http_200(serve, store):
    numbers = [f.number for f in stream_with(store, "leg", 2)]
    response = archived_media(serve(faults=Faults(missing_fragment_probability=1.0))) \
        .get_media_for_fragment_list(StreamName="leg", Fragments=numbers)

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    body = response["Payload"].read()
    assert body == b"".join(mkv_writer.error_chunk(n, error_id=3000) for n in numbers)
    for value in (b"AWS_KINESISVIDEO_ERROR_CODE", b"FRAGMENT_NOT_FOUND", b"AWS_KINESISVIDEO_ERROR_ID",
                  b"3000", b"AWS_KINESISVIDEO_FRAGMENT_NUMBER", numbers[0].encode()):
        assert value in body


def test_faults_repeat_for_the_same_seed(serve, store):
    numbers = [f.number for f in stream_with(store, "leg", 20)]
    faults = Faults(missing_fragment_probability=0.5, seed=7)
    first = media_body(serve(faults=faults), "leg", numbers)
    second = media_body(serve(faults=faults), "leg", numbers)

    assert first == second
    assert 0 < first.count(b"FRAGMENT_NOT_FOUND") < 20


# -- operation ----------------------------------------------------------------------------------
def test_requests_are_not_logged_to_stderr(serve, store, capfd):
    stream_with(store, "leg", 1)
    client = archived_media(serve())
    client.list_fragments(StreamName="leg")
    failure(client.list_fragments, StreamName="nope")
    assert capfd.readouterr().err == ""


def test_cli_help_lists_every_option():
    result = subprocess.run([voicelake_script(), "kvs-emulator", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("--host", "--port", "--store", "--now", "--tps-limit", "--seed",
                   "--throttle-probability", "--error-500-probability", "--reset-probability",
                   "--truncate-probability", "--missing-fragment-probability"):
        assert option in result.stdout


def test_cli_serves_a_store_with_a_frozen_clock_until_interrupted(store):
    number = stream_with(store, "leg", 1)[0].number
    process = subprocess.Popen(
        [voicelake_script(), "kvs-emulator", "--store", str(store.root), "--port", "0",
         "--now", "2023-11-14T23:13:20Z"],  # NOW
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().rsplit(" at ", 1)[1].strip()
        client = boto3.client("kinesis-video-archived-media", endpoint_url=url, config=ONE_ATTEMPT,
                              **CREDENTIALS)
        assert numbers_of(client.list_fragments(StreamName="leg")["Fragments"]) == [number]
        old = failure(client.list_fragments, StreamName="leg",
                      FragmentSelector=selector("SERVER_TIMESTAMP", T0 - 26 * HOUR, T0 - 25 * HOUR))
        assert code_and_status(old) == ("InvalidArgumentException", 400)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        process.stdout.close()
        process.stderr.close()
