"""Specification of voicelake.records.ctr: an Amazon Connect contact trace record becomes its calls
(CallSpec) or a Failure with a reason, and of a redelivered CTR's copies the newest wins.

Real example records come from ../shared/samples/records (ground truth in its README.md).
"""
from __future__ import annotations

from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.record_samples import (
    CTR_BUCKET,
    CTR_HOUR_15,
    CTR_HOUR_16,
    INSTANCE_ID,
    STREAM_043EE98B,
    json_values,
    sample_bytes,
)
from voicelake.model import CallSpec, ContactTimes, Failure, StreamSpan
from voicelake.records.ctr import ConnectAttributeKeys, connect_calls, ctr_version, dedupe_key, latest_ctr
from voicelake.records.firehose import Sourced, read_records
from voicelake.records.record_fields import REASONS, iso_to_ms


def sample_ctrs(relative: str) -> list[Sourced]:
    records = list(read_records(sample_bytes(f"{CTR_BUCKET}/{relative}"), source="connect", source_key=relative))
    assert all(isinstance(r, Sourced) for r in records)
    return records


def ctr_by_contact(contact_id: str) -> dict:
    return next(r.record for r in sample_ctrs(CTR_HOUR_15) if r.record["ContactId"] == contact_id)


def test_the_ivr_only_contact_becomes_one_call_on_its_kvs_recording():
    record = sample_ctrs(CTR_HOUR_15)[0]
    assert connect_calls(record.record, source_key=CTR_HOUR_15, offset=record.offset) == [CallSpec(
        source="connect", call_id="c8349d0e-a015-4ab5-b22c-9a28b0d72b46", partition_id=INSTANCE_ID,
        date="2024-05-14", start_ms=1715699076000, end_ms=1715699158000,
        streams=(StreamSpan(
            stream_arn="arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
                       "lms-connect-voicelake-demo-contact-151bee87-e09a-4dae-94c7-f09eaaa44711/1714521600977",
            start_ms=1715699076000, end_ms=1715699158000,
            start_fragment="91343852333181483502529650112685117137137140941",
            stop_fragment="91343852333181483502535128804419650097256309727"),),
        tag_name="ContactId", source_key=CTR_HOUR_15, source_offset=0,
        attributes=(("initiation_method", "INBOUND"), ("disconnect_reason", "CONTACT_FLOW_DISCONNECT"),
                    ("last_update_ms", "1715699163000"), ("kvs_source", "recordings")),
        # an IVR-only contact: no Queue, no Agent, so no conversation to measure
        contact=ContactTimes(initiation_method="INBOUND", recording_start_ms=1715699076000,
                             connected_to_system_ms=1715699071000, disconnect_ms=1715699162000))]


def test_a_contact_with_s3_and_kvs_recordings_and_stream_attributes_uses_the_kvs_recording():
    [call] = connect_calls(ctr_by_contact("3e1a9b42-f5fb-49f0-ad1b-05d97491bc66"), source_key=CTR_HOUR_15, offset=1871)
    assert call.streams == (StreamSpan(STREAM_043EE98B, 1715698865000, 1715699204000,
                                       start_fragment="91343852333181419805084967853201023457589792336",
                                       stop_fragment="91343852333181419805099412786630415502875316402"),)
    assert (call.start_ms, call.end_ms, call.source_offset) == (1715698865000, 1715699204000, 1871)
    assert call.attributes == (("initiation_method", "INBOUND"), ("disconnect_reason", "CUSTOMER_DISCONNECT"),
                               ("agent_username", "agent.rivera"), ("queue_name", "BasicQueue"),
                               ("routing_profile", "Basic Routing Profile"),
                               ("last_update_ms", "1715699246000"), ("kvs_source", "recordings"))
    assert call.contact == ContactTimes(
        initiation_method="INBOUND", has_agent=True, recording_start_ms=1715698865000,
        connected_to_system_ms=iso_to_ms("2024-05-14T15:01:02Z"),
        enqueue_ms=iso_to_ms("2024-05-14T15:01:40Z"), dequeue_ms=iso_to_ms("2024-05-14T15:02:10Z"),
        connected_to_agent_ms=iso_to_ms("2024-05-14T15:02:10Z"),
        after_contact_work_start_ms=iso_to_ms("2024-05-14T15:06:44Z"),
        disconnect_ms=iso_to_ms("2024-05-14T15:06:44Z"), hold_count=1, hold_ms=35_000)
    assert call.contact.agent_end_ms == iso_to_ms("2024-05-14T15:06:44Z")


def test_a_reused_stream_gives_the_later_contact_its_own_fragments_whatever_the_media_stream_type():
    [call] = connect_calls(ctr_by_contact("d419c45a-2c0d-4d1e-9602-22fbf88701ff"), source_key=CTR_HOUR_15, offset=5466)
    assert call.streams == (StreamSpan(STREAM_043EE98B, 1715699278000, 1715699381000,
                                       start_fragment="91343852333181419805101876350972264108834570114",
                                       stop_fragment="91343852333181419805104493118201755733012268479"),)
    assert dict(call.attributes)["queue_name"] == "BasicQueue"
    assert "agent_username" not in dict(call.attributes)
    assert call.contact.connected_to_agent_ms is None  # abandoned in the queue: no conversation


def test_no_phone_number_or_contact_attribute_reaches_the_call():
    record = ctr_by_contact("3e1a9b42-f5fb-49f0-ad1b-05d97491bc66")
    [call] = connect_calls(record, source_key=CTR_HOUR_15, offset=1871)
    carried = repr(call.attributes) + repr(call.contact)
    assert record["CustomerEndpoint"]["Address"] not in carried
    assert not any(str(v) in carried for v in (record.get("Attributes") or {}).values() if len(str(v)) > 3)


def test_an_unreadable_phase_mark_costs_the_contact_that_mark_not_its_audio():
    record = dict(ctr_by_contact("3e1a9b42-f5fb-49f0-ad1b-05d97491bc66"))
    record["Agent"] = dict(record["Agent"], ConnectedToAgentTimestamp="yesterday", NumberOfHolds="one")
    [call] = connect_calls(record, source_key=CTR_HOUR_15, offset=1871)
    assert call.contact.connected_to_agent_ms is None and call.contact.hold_count is None
    assert call.contact.hold_ms == 35_000


def test_a_redelivered_ctr_dedupes_to_one_call_with_the_newer_update():
    copies = sample_ctrs(CTR_HOUR_15) + sample_ctrs(CTR_HOUR_16)
    groups: dict[tuple, list[Sourced]] = {}
    for record in copies:
        groups.setdefault(dedupe_key(record), []).append(record)
    assert len(groups) == 3
    group = groups[("ContactId", "3e1a9b42-f5fb-49f0-ad1b-05d97491bc66")]
    newest = reduce(latest_ctr, group)
    assert newest == reduce(latest_ctr, reversed(group))
    assert (newest.source_key, newest.offset) == (CTR_HOUR_16, 0)
    [call] = connect_calls(newest.record, source_key=newest.source_key, offset=newest.offset)
    assert dict(call.attributes)["last_update_ms"] == "1715702437000"
    assert call.source_key == CTR_HOUR_16


def test_identical_copies_resolve_by_source_position_in_any_order():
    ctr = {"ContactId": "c", "LastUpdateTimestamp": "2024-05-14T15:00:00Z"}
    a, b, c = Sourced(ctr, "k1", 10), Sourced(ctr, "k2", 0), Sourced(ctr, "k1", 20)
    assert reduce(latest_ctr, [a, b, c]) == reduce(latest_ctr, [c, b, a]) == b
    assert ctr_version(Sourced({"LastUpdateTimestamp": "garbage"}, "k", 0)) == (-1, "k", 0)


def test_a_ctr_without_contact_id_keeps_its_own_dedupe_group():
    assert dedupe_key(Sourced({}, "k", 7)) == ("unkeyed", "k", "7")


def voice_ctr(**changes) -> dict:
    ctr = {"ContactId": "9f1c2d3e-0000-4000-8000-000000000001", "Channel": "VOICE",
           "InstanceARN": f"arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE_ID}",
           "InitiationMethod": "OUTBOUND", "InitiationTimestamp": "2024-05-14T23:59:50Z",
           "ConnectedToSystemTimestamp": "2024-05-15T00:00:05Z", "DisconnectTimestamp": "2024-05-15T00:03:00Z",
           "LastUpdateTimestamp": "2024-05-15T00:03:01Z", "Recording": None, "Recordings": None,
           "Attributes": {"customerAudioStreamArn": STREAM_043EE98B,
                          "customerAudioStartFragmentNumber": "91343852333181419805084967853201023457589792336",
                          "customerAudioStartTimestamp": "1715731206123",
                          "customerAudioStopTimestamp": "1715731379456"}}
    ctr.update(changes)
    return ctr


def test_recordings_null_falls_back_to_the_stream_attributes_with_epoch_ms_times():
    [call] = connect_calls(voice_ctr(), source_key="k", offset=3)
    assert call.streams == (StreamSpan(STREAM_043EE98B, 1715731206123, 1715731379456,
                                       start_fragment="91343852333181419805084967853201023457589792336"),)
    assert (call.date, call.start_ms, call.end_ms) == ("2024-05-15", 1715731206123, 1715731379456)
    assert dict(call.attributes)["kvs_source"] == "attributes"


def test_attribute_fallback_without_times_uses_connected_to_system_until_disconnect():
    attributes = {"customerAudioStreamArn": STREAM_043EE98B}
    [call] = connect_calls(voice_ctr(Attributes=attributes), source_key="k")
    assert call.streams == (StreamSpan(STREAM_043EE98B, iso_to_ms("2024-05-15T00:00:05Z"),
                                       iso_to_ms("2024-05-15T00:03:00Z")),)
    assert call.date == "2024-05-15"


def test_attribute_key_names_are_configurable():
    attributes = {"kvsArn": STREAM_043EE98B, "kvsStart": "2024-05-15T00:00:06.5Z"}
    keys = ConnectAttributeKeys(stream_arn="kvsArn", start_timestamp="kvsStart")
    [call] = connect_calls(voice_ctr(Attributes=attributes), source_key="k", attribute_keys=keys)
    assert call.start_ms == 1715731206500


def test_no_kvs_recording_and_no_stream_attribute_is_a_failure():
    result = connect_calls(voice_ctr(Attributes={"language": "en-US"},
                                     Recordings=[{"StorageType": "S3", "Location": "bucket/key.wav"}]),
                           source_key="2024/05/15/00/x", offset=42)
    assert result == Failure(stage="records", reason="no_kvs_recording", detail=result.detail, source="connect",
                             call_id="9f1c2d3e-0000-4000-8000-000000000001", partition_id=INSTANCE_ID,
                             source_key="2024/05/15/00/x", source_offset=42)


def test_a_chat_contact_is_skipped_not_failed():
    assert connect_calls(voice_ctr(Channel="CHAT"), source_key="k") == []


@pytest.mark.parametrize("contact_id", ["../../etc", "a/b", "..", "x@y:z"])
def test_an_unsafe_contact_id_fails_and_never_reaches_the_call(contact_id):
    result = connect_calls(voice_ctr(ContactId=contact_id), source_key="k")
    assert isinstance(result, Failure)
    assert (result.reason, result.call_id, result.partition_id) == ("unsafe_id", None, INSTANCE_ID)


def test_an_unsafe_instance_id_fails():
    result = connect_calls(voice_ctr(InstanceARN="arn:aws:connect:us-east-1:111122223333:instance/../x"),
                           source_key="k")
    assert (result.reason, result.partition_id) == ("unsafe_id", None)


@pytest.mark.parametrize("changes, reason", [
    ({"ContactId": None}, "missing_field"),
    ({"Channel": None}, "missing_field"),
    ({"InstanceARN": "429ad289"}, "bad_field"),
    ({"Recordings": "KINESIS_VIDEO_STREAM"}, "bad_field"),
    ({"Recordings": [{"StorageType": "KINESIS_VIDEO_STREAM", "Location": "bucket/key"}]}, "bad_field"),
    ({"Recordings": [{"StorageType": "KINESIS_VIDEO_STREAM"}]}, "missing_field"),
    ({"Recordings": [{"StorageType": "KINESIS_VIDEO_STREAM", "Location": STREAM_043EE98B,
                      "FragmentStartNumber": "12a"}]}, "bad_field"),
    ({"Recordings": [{"StorageType": "KINESIS_VIDEO_STREAM", "Location": STREAM_043EE98B,
                      "FragmentStartNumber": "20", "FragmentStopNumber": "3"}]}, "bad_field"),
    ({"Recordings": [{"StorageType": "KINESIS_VIDEO_STREAM", "Location": STREAM_043EE98B,
                      "StartTimestamp": "2024-05-14 15:04"}]}, "bad_timestamp"),
    ({"Recordings": [{"StorageType": "KINESIS_VIDEO_STREAM", "Location": STREAM_043EE98B,
                      "StartTimestamp": "2024-05-14T15:05:00Z", "StopTimestamp": "2024-05-14T15:04:00Z"}]},
     "bad_timestamp"),
    ({"Attributes": {"customerAudioStreamArn": "arn:aws:kinesisvideo::eu-west-2:1:stream/x/1"}}, "bad_field"),
    ({"Attributes": {"customerAudioStreamArn": STREAM_043EE98B}, "DisconnectTimestamp": None}, "missing_field"),
    ({"Attributes": {"customerAudioStreamArn": STREAM_043EE98B,
                     "customerAudioStartTimestamp": "99999999999999999999"}}, "bad_timestamp"),
    ({"Attributes": {"customerAudioStreamArn": STREAM_043EE98B,
                     "customerAudioStartTimestamp": "9" * 5000}}, "bad_timestamp"),
])
def test_unusable_ctrs_fail_with_a_reason(changes, reason):
    result = connect_calls(voice_ctr(**changes), source_key="k", offset=9)
    assert isinstance(result, Failure)
    assert (result.stage, result.reason, result.source, result.source_key, result.source_offset) == (
        "records", reason, "connect", "k", 9)
    assert result.reason in REASONS


def test_the_same_recording_listed_twice_is_one_span():
    entry = {"StorageType": "KINESIS_VIDEO_STREAM", "Location": STREAM_043EE98B,
             "StartTimestamp": "2024-05-15T00:00:06Z", "StopTimestamp": "2024-05-15T00:02:59Z"}
    [call] = connect_calls(voice_ctr(Recordings=[entry, dict(entry)]), source_key="k")
    assert len(call.streams) == 1


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(voice_ctr()) + ["Recordings.0", "Attributes.customerAudioStartTimestamp"]),
       value=json_values)
def test_no_ctr_value_makes_connect_calls_raise(field, value):
    ctr = voice_ctr(Recordings=[{"StorageType": "KINESIS_VIDEO_STREAM", "Location": STREAM_043EE98B}])
    if field == "Recordings.0":
        ctr["Recordings"] = [value]
    elif field.startswith("Attributes."):
        ctr["Recordings"] = None
        ctr["Attributes"] = dict(ctr["Attributes"], customerAudioStartTimestamp=value)
    else:
        ctr[field] = value
    result = connect_calls(ctr, source_key="k")
    assert isinstance(result, Failure) and result.reason in REASONS or isinstance(result, list)
