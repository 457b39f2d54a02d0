"""Specification of voicelake.records.chime_records: Chime Voice Connector SDR keys and bodies,
streaming events, and the call they make together (CallSpec) or the Failure with its reason.

Real example records come from ../shared/samples/records (ground truth in its README.md).
"""
from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.record_samples import (
    CALLEE_LEG_A,
    CALLER_LEG_A,
    CHIME_BUCKET,
    LABEL1_B,
    LABEL2_B,
    SDR_A,
    SDR_B,
    TX_A,
    TX_B,
    VC_ID,
    json_values,
    sample_bytes,
    sample_path,
)
from voicelake.model import CallSpec, Failure, StreamSpan
from voicelake.records.chime_records import (
    SdrKey,
    SdrRecord,
    StreamingEvent,
    chime_call,
    event_key,
    parse_sdr,
    parse_sdr_key,
    parse_streaming_event,
    sdr_day_prefixes,
    siprec_senders,
    voice_connector_of_key,
)
from voicelake.records.firehose import date_range
from voicelake.records.record_fields import REASONS


def sample_event(name: str) -> StreamingEvent:
    event = parse_streaming_event(json.loads(sample_bytes(f"chime-streaming-events/{name}")), source_key=name)
    assert isinstance(event, StreamingEvent)
    return event


def call_a_events() -> list[StreamingEvent]:
    return [sample_event(n) for n in ("callA-caller-leg.STARTED.json", "callA-caller-leg.ENDED.json",
                                      "callA-callee-leg.ENDED.json")]


def call_b_events() -> list[StreamingEvent]:
    return [sample_event(n) for n in ("callB-siprec-label1.ENDED.json", "callB-siprec-label2.ENDED.json")]


# --------------------------------------------------------------------------- keys

def test_sdr_day_prefixes_are_per_voice_connector_and_day():
    assert sdr_day_prefixes([VC_ID], date_range(date(2024, 5, 14), date(2024, 5, 15)), base="cdr-bucket-root/") == [
        f"cdr-bucket-root/Amazon-Chime-Voice-Connector-SDRs/json/{VC_ID}/2024/05/14/",
        f"cdr-bucket-root/Amazon-Chime-Voice-Connector-SDRs/json/{VC_ID}/2024/05/15/",
    ]
    with pytest.raises(ValueError):
        sdr_day_prefixes(["../x"], [date(2024, 5, 14)])


def test_sdr_keys_parse_under_any_prefix_with_either_separator():
    expected = SdrKey(VC_ID, "2024-05-14", "15:02:11.318", TX_A)
    assert parse_sdr_key(SDR_A) == expected
    assert parse_sdr_key(f"s3://example-chime-records-bucket/archive/{SDR_A}") == expected
    assert parse_sdr_key(SDR_A.replace("318_", "318-")) == expected
    assert parse_sdr_key(SDR_B) == SdrKey(VC_ID, "2024-05-14", "16:45:03.007", TX_B)


def test_keys_that_are_not_sdr_keys_do_not_parse():
    assert parse_sdr_key(SDR_A.replace("SDRs", "CDRs")) is None
    assert parse_sdr_key(SDR_A.replace("/05/14/", "/13/14/")) is None  # month 13
    assert parse_sdr_key(SDR_A.replace("15.02.11.318", "25.02.11.318")) is None  # hour 25
    assert parse_sdr_key(SDR_A + "/extra") is None
    assert parse_sdr_key("xAmazon-Chime-Voice-Connector-SDRs/json/" + SDR_A.split("json/")[1]) is None


def test_of_the_chime_sample_objects_exactly_the_sdrs_parse_as_sdr_keys():
    bucket = sample_path(CHIME_BUCKET)
    keys = sorted(p.relative_to(bucket).as_posix() for p in bucket.rglob("*") if p.is_file())
    assert len(keys) == 3  # two SDRs and a CDR
    assert [k for k in keys if parse_sdr_key(k)] == [SDR_A, SDR_B]


# --------------------------------------------------------------------------- SDRs, events and calls

def test_the_sdr_of_call_a_parses():
    assert parse_sdr(sample_bytes(f"{CHIME_BUCKET}/{SDR_A}"), SDR_A) == SdrRecord(
        transaction_id=TX_A, voice_connector_id=VC_ID, call_id="7c1e4b0a93d2f658e4a1b07c2d9f3e15@192.0.2.10:5060",
        start_ms=1715698931000, end_ms=1715699121000, status="Completed", source_key=SDR_A)


def test_a_gzip_sdr_parses_like_the_plain_one():
    data = sample_bytes(f"{CHIME_BUCKET}/{SDR_A}")
    assert parse_sdr(gzip.compress(data), SDR_A) == parse_sdr(data, SDR_A)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty_object"),
    (b'{"TransactionId":', "bad_json"),
    (b"[]", "not_an_object"),
    (b'{"a":1}{"b":2}', "bad_json"),
    (b'{"TransactionId":"../../etc","VoiceConnectorId":"vl7k2m9q4x1c8r5t3w6z0b"}', "unsafe_id"),
    (b'{"TransactionId":"t1","VoiceConnectorId":"VC-1"}', "unsafe_id"),
    (b'{"TransactionId":"t1","VoiceConnectorId":"vc1","StartTimeEpochSeconds":1}', "missing_field"),
    (b'{"TransactionId":"t1","VoiceConnectorId":"vc1","StartTimeEpochSeconds":"1",'
     b'"EndTimeEpochSeconds":2}', "bad_timestamp"),
    (b'{"TransactionId":"t1","VoiceConnectorId":"vc1","StartTimeEpochSeconds":9,'
     b'"EndTimeEpochSeconds":2}', "bad_timestamp"),
])
def test_unusable_sdrs_fail_with_a_reason(data, reason):
    result = parse_sdr(data, "Amazon-Chime-Voice-Connector-SDRs/json/x")
    assert isinstance(result, Failure)
    assert (result.reason, result.source, result.source_key) == (
        reason, "chime", "Amazon-Chime-Voice-Connector-SDRs/json/x")


@pytest.mark.parametrize("data, reason, partition", [
    (b'{"SchemaVersion": "1.0"}', "missing_field", VC_ID),  # no IDs in the body: the key's connector
    (b'{"TransactionId":"t1","VoiceConnectorId":"VC-1"}', "unsafe_id", VC_ID),
    (b'{"TransactionId":"t1","VoiceConnectorId":"othervc"}', "missing_field", "othervc"),  # the body's wins
    (b"\x00" * 64, "empty_object", VC_ID),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64, "bad_json", VC_ID),
])
def test_a_failed_sdr_is_filed_under_the_voice_connector_its_key_names(data, reason, partition):
    result = parse_sdr(data, f"s3://example-chime-records-bucket/{SDR_A}")
    assert (result.reason, result.partition_id) == (reason, partition)


def test_an_sdr_key_names_its_voice_connector_only_through_the_allow_list():
    assert voice_connector_of_key(SDR_A) == VC_ID
    assert voice_connector_of_key(SDR_A.replace(VC_ID, "VC.1")) is None
    assert voice_connector_of_key("2024/05/14/15/voicelake-ctr-firehose-1") is None


def test_an_outbound_call_puts_the_callee_leg_on_the_customer_channel():
    call = chime_call(parse_sdr(sample_bytes(f"{CHIME_BUCKET}/{SDR_A}"), SDR_A), call_a_events())
    assert call == CallSpec(
        source="chime", call_id=TX_A, partition_id=VC_ID, date="2024-05-14",
        start_ms=1715698931402, end_ms=1715699121911,
        streams=(
            StreamSpan(CALLEE_LEG_A, 1715698939886, 1715699121911, channel=0, role="customer",
                       start_fragment="91343852333181402289384010559064171757174336356", is_caller=False),
            StreamSpan(CALLER_LEG_A, 1715698931402, 1715699121904, channel=1, role="agent",
                       start_fragment="91343852333181446531728629532497131635962257903", is_caller=True),
        ),
        tag_name="TransactionId", source_key=SDR_A, source_offset=0,
        attributes=(("sip_call_id", "7c1e4b0a93d2f658e4a1b07c2d9f3e15@192.0.2.10:5060"), ("direction", "Outbound"),
                    ("sdr_status", "Completed"), ("kvs_source", "events")))


def test_the_customer_leg_can_be_forced():
    sdr = parse_sdr(sample_bytes(f"{CHIME_BUCKET}/{SDR_A}"), SDR_A)
    call = chime_call(sdr, call_a_events(), customer_leg="caller")
    assert [(s.stream_arn, s.channel, s.role) for s in call.streams] == [
        (CALLER_LEG_A, 0, "customer"), (CALLEE_LEG_A, 1, "agent")]
    with pytest.raises(ValueError):
        chime_call(sdr, call_a_events(), customer_leg="agent")


def test_duplicated_events_make_the_same_call():
    sdr = parse_sdr(sample_bytes(f"{CHIME_BUCKET}/{SDR_A}"), SDR_A)
    events = call_a_events()
    redelivered = [replace(e, source_key="2024/05/14/16/archive-copy") for e in events]
    assert chime_call(sdr, events + redelivered + events[::-1]) == chime_call(sdr, events)
    assert len({event_key(e) for e in events + redelivered}) == 3


def test_events_alone_make_the_call_and_name_the_first_event_as_source():
    call = chime_call(None, call_a_events())
    assert [(s.stream_arn, s.channel, s.role) for s in call.streams] == [
        (CALLEE_LEG_A, 0, "customer"), (CALLER_LEG_A, 1, "agent")]
    assert (call.source_key, call.source_offset) == ("callA-callee-leg.ENDED.json", 0)
    assert dict(call.attributes) == {"sip_call_id": "7c1e4b0a93d2f658e4a1b07c2d9f3e15@192.0.2.10:5060",
                                     "direction": "Outbound", "kvs_source": "events"}


def test_a_leg_whose_ended_event_was_lost_ends_with_the_sdr_or_else_the_other_leg():
    started_only = [e for e in call_a_events() if e.status == "STARTED" or not e.is_caller]
    sdr = parse_sdr(sample_bytes(f"{CHIME_BUCKET}/{SDR_A}"), SDR_A)
    by_arn = {s.stream_arn: s for s in chime_call(sdr, started_only).streams}
    assert by_arn[CALLER_LEG_A].end_ms == 1715699121000
    by_arn = {s.stream_arn: s for s in chime_call(None, started_only).streams}
    assert by_arn[CALLER_LEG_A].end_ms == 1715699121911


def test_the_siprec_call_maps_stream_labels_to_participants():
    sdr = parse_sdr(sample_bytes(f"{CHIME_BUCKET}/{SDR_B}"), SDR_B)
    call = chime_call(sdr, call_b_events())
    assert call.streams == (
        StreamSpan(LABEL1_B, 1715705103120, 1715705560551, channel=0, role="customer",
                   start_fragment="91343852333181458421541879151720722385292743349", is_caller=True),
        StreamSpan(LABEL2_B, 1715705103124, 1715705560560, channel=1, role="agent",
                   start_fragment="91343852333181423376707121529920529092831834644", is_caller=False),
    )
    assert call.attributes == (("sip_call_id", "5b0e7d2c9a4f4e16b3c8d1a2f6e9b047@203.0.113.40"),
                               ("direction", "Inbound"), ("sdr_status", "Completed"), ("kvs_source", "events"),
                               ("channel0_media_label", "1"), ("channel1_media_label", "2"))


def test_siprec_roles_come_from_the_participants_not_from_is_caller():
    swapped = [replace(e, is_caller=not e.is_caller) for e in call_b_events()]
    assert [(s.stream_arn, s.role) for s in chime_call(None, swapped).streams] == [
        (LABEL1_B, "customer"), (LABEL2_B, "agent")]


def test_siprec_legs_without_a_matching_participant_keep_label_order_and_no_roles():
    unmatched = [replace(e, from_number="+19995550100") for e in call_b_events()]
    assert [(s.stream_arn, s.channel, s.role) for s in chime_call(None, unmatched[::-1]).streams] == [
        (LABEL1_B, 0, None), (LABEL2_B, 1, None)]


def test_siprec_metadata_names_the_sender_of_each_label():
    assert siprec_senders(call_b_events()[0].siprec_metadata) == {
        "1": "sip:+14255550133@pstn.example.net", "2": "sip:agent-2041@pbx.example.org"}
    assert siprec_senders("<recording") == {}


def test_legs_without_direction_or_is_caller_have_no_roles_and_start_order():
    events = [replace(e, direction=None) for e in call_a_events()]
    assert [(s.stream_arn, s.channel, s.role) for s in chime_call(None, events).streams] == [
        (CALLER_LEG_A, 0, None), (CALLEE_LEG_A, 1, None)]


def test_an_sdr_without_events_asks_for_stream_discovery():
    sdr = parse_sdr(sample_bytes(f"{CHIME_BUCKET}/{SDR_A}"), SDR_A)
    assert chime_call(sdr, []) == CallSpec(
        source="chime", call_id=TX_A, partition_id=VC_ID, date="2024-05-14",
        start_ms=1715698931000, end_ms=1715699121000,
        streams=(StreamSpan(None, 1715698931000, 1715699121000,
                            discover_prefix="ChimeVoiceConnector-vl7k2m9q4x1c8r5t3w6z0b-"),),
        tag_name="TransactionId", source_key=SDR_A, source_offset=0,
        attributes=(("sip_call_id", "7c1e4b0a93d2f658e4a1b07c2d9f3e15@192.0.2.10:5060"),
                    ("sdr_status", "Completed"), ("kvs_source", "discovery")))


def test_the_sip_call_id_never_reaches_an_id_or_path_field():
    for call in (chime_call(None, call_a_events()), chime_call(parse_sdr(sample_bytes(f"{CHIME_BUCKET}/{SDR_A}"),
                                                                          SDR_A), [])):
        assert all("@" not in value for value in (call.call_id, call.partition_id, call.date))
        assert all("@" not in (s.discover_prefix or "") for s in call.streams)


def event_detail(**changes) -> dict:
    detail = {"streamingStatus": "STARTED", "transactionId": TX_A, "voiceConnectorId": VC_ID,
              "callId": "7c1e4b0a93d2f658e4a1b07c2d9f3e15@192.0.2.10:5060", "direction": "Inbound",
              "isCaller": "True", "streamArn": CALLER_LEG_A, "startFragmentNumber": "1",
              "startTime": "2024-05-14T15:02:11.402Z"}
    detail.update(changes)
    return detail


def envelope(detail: dict, detail_type: str = "Chime VoiceConnector Streaming Status") -> dict:
    return {"version": "0", "detail-type": detail_type, "source": "aws.chime", "detail": detail}


@pytest.mark.parametrize("raw, parsed", [("True", True), ("true", True), ("false", False), ("FALSE", False),
                                         (True, True), (False, False), (None, None)])
def test_is_caller_may_be_a_boolean_or_a_string(raw, parsed):
    event = parse_streaming_event(envelope(event_detail(isCaller=raw)), source_key="k")
    assert event.is_caller is parsed


def test_an_event_parses_from_the_envelope_or_a_bare_detail():
    expected = StreamingEvent(status="STARTED", transaction_id=TX_A, voice_connector_id=VC_ID,
                              call_id="7c1e4b0a93d2f658e4a1b07c2d9f3e15@192.0.2.10:5060", source_key="k", offset=5,
                              stream_arn=CALLER_LEG_A, start_fragment="1", start_ms=1715698931402,
                              is_caller=True, direction="Inbound")
    assert parse_streaming_event(envelope(event_detail()), source_key="k", offset=5) == expected
    assert parse_streaming_event(event_detail(), source_key="k", offset=5) == expected


def test_other_events_in_the_archive_are_ignored():
    assert parse_streaming_event(envelope(event_detail(), "EC2 Instance State-change Notification"),
                                 source_key="k") is None
    assert parse_streaming_event({"ContactId": "c"}, source_key="k") is None


def test_only_the_four_identifying_fields_are_required():
    minimal = {k: event_detail()[k] for k in ("streamingStatus", "transactionId", "voiceConnectorId", "callId")}
    event = parse_streaming_event(envelope(minimal), source_key="k")
    assert (event.stream_arn, event.start_ms, event.is_caller, event.media_label) == (None, None, None, None)


@pytest.mark.parametrize("changes, reason, call_id", [
    ({"transactionId": "../../etc"}, "unsafe_id", None),
    ({"transactionId": "a/b"}, "unsafe_id", None),
    ({"voiceConnectorId": "vc/1"}, "unsafe_id", TX_A),
    ({"callId": None}, "missing_field", TX_A),
    ({"isCaller": "maybe"}, "bad_field", TX_A),
    ({"streamArn": "arn:aws:s3:::bucket"}, "bad_field", TX_A),
    ({"startTime": "15:02"}, "bad_timestamp", TX_A),
])
def test_unusable_events_fail_with_a_reason(changes, reason, call_id):
    result = parse_streaming_event(envelope(event_detail(**changes)), source_key="k", offset=12)
    assert isinstance(result, Failure)
    assert (result.reason, result.call_id, result.source, result.source_offset) == (reason, call_id, "chime", 12)


def test_an_envelope_without_a_detail_object_fails():
    assert parse_streaming_event(envelope("STARTED"), source_key="k").reason == "missing_field"


def test_a_transaction_with_only_failed_streaming_and_no_sdr_fails():
    failed = parse_streaming_event(envelope(event_detail(streamingStatus="FAILED", streamArn=None,
                                                         failureReason="Internal failure")), source_key="k")
    result = chime_call(None, [failed])
    assert (result.reason, result.detail, result.call_id, result.partition_id) == (
        "streaming_failed", "streaming failed: Internal failure", TX_A, VC_ID)


def test_a_failed_stream_beside_an_sdr_still_discovers_and_says_so():
    failed = parse_streaming_event(envelope(event_detail(streamingStatus="FAILED", streamArn=None,
                                                         failureReason="Internal failure")), source_key="k")
    call = chime_call(parse_sdr(sample_bytes(f"{CHIME_BUCKET}/{SDR_A}"), SDR_A), [failed])
    assert call.streams[0].discover_prefix == "ChimeVoiceConnector-vl7k2m9q4x1c8r5t3w6z0b-"
    assert dict(call.attributes)["streaming_failure"] == "Internal failure"


def test_records_of_one_transaction_on_two_voice_connectors_fail():
    events = call_a_events()
    result = chime_call(None, [events[0], replace(events[2], voice_connector_id="othervc")])
    assert result.reason == "inconsistent_records"


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(event_detail()) + ["endTime", "sdp", "siprecMetadata", "fromNumber"]),
       value=json_values | st.dictionaries(st.sampled_from(["mediaLabel", "mediaIndex"]), json_values))
def test_no_event_value_makes_parsing_or_joining_raise(field, value):
    result = parse_streaming_event(envelope(event_detail(**{field: value})), source_key="k")
    assert isinstance(result, (StreamingEvent, Failure))
    if isinstance(result, StreamingEvent):
        call = chime_call(None, [result, *call_a_events()[1:]])
        assert isinstance(call, CallSpec) or call.reason in REASONS


def test_a_chime_call_needs_an_sdr_or_an_event():
    with pytest.raises(ValueError):
        chime_call(None, [])


def test_a_leg_that_reconnects_on_another_stream_keeps_its_party_s_channel():
    tx, vc = "88e56ace-7bd2-46d7-ac66-1a08068be69a", "vl7k2m9q4x1c8r5t3w6z0b"
    arn = "arn:aws:kinesisvideo:us-east-1:111122223333:stream/ChimeVoiceConnector-{}-{}/1".format

    def leg(status, stream, start, end, caller, direction):
        return StreamingEvent(status=status, transaction_id=tx, voice_connector_id=vc,
                                      call_id="x@y", source_key="k", stream_arn=arn(vc, stream),
                                      start_fragment="1", start_ms=start, end_ms=end,
                                      is_caller=caller, direction=direction)

    for direction, roles in (("Inbound", ("customer", "agent")), (None, (None, None))):
        events = [leg(s, "a", 1000, 50000, True, direction) for s in ("STARTED", "ENDED")]
        events += [leg(s, "b", 2000, 90000, False, direction) for s in ("STARTED", "ENDED")]
        events += [leg(s, "c", 52000, 90000, True, direction) for s in ("STARTED", "ENDED")]
        call = chime_call(None, events)
        assert sorted((s.stream_arn, s.channel, s.role) for s in call.streams) == [
            (arn(vc, "a"), 0, roles[0]), (arn(vc, "b"), 1, roles[1]), (arn(vc, "c"), 0, roles[0])]
