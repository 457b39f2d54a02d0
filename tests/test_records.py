"""Specifications of the records stage: raw record bytes -> CallSpec / Failure.

Real example records come from ../shared/samples/records (ground truth in its README.md).
"""
from __future__ import annotations

import gzip
import json
import random
from dataclasses import replace
from datetime import date
from functools import reduce
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicelake.model import CallSpec, Failure, StreamSpan
from voicelake.records.chime_records import (
    SdrKey, SdrRecord, StreamingEvent, chime_call, event_key, parse_sdr, parse_sdr_key, parse_streaming_event,
    sdr_day_prefixes, siprec_senders, voice_connector_of_key,
)
from voicelake.records.ctr import ConnectAttributeKeys, connect_calls, ctr_version, dedupe_key, latest_ctr
from voicelake.records.firehose import Sourced, date_range, firehose_hour_prefixes, read_records, split_json_objects
from voicelake.records.record_fields import RECORD_ID, REASONS, VOICE_CONNECTOR_ID, iso_to_ms, safe_path_part, utc_date

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "records"
CTR_BUCKET = "s3/example-connect-ctr-bucket"
CTR_HOUR_15 = "2024/05/14/15/voicelake-ctr-firehose-1-2024-05-14-15-11-02-65ede050-4b0b-4cf5-893e-5ba0b981ef46"
CTR_HOUR_16 = "2024/05/14/16/voicelake-ctr-firehose-1-2024-05-14-16-01-09-19a4485b-ebd2-4a73-99eb-ccadda346ef8"
CHIME_BUCKET = "s3/example-chime-records-bucket"
SDR_A = ("Amazon-Chime-Voice-Connector-SDRs/json/vl7k2m9q4x1c8r5t3w6z0b/2024/05/14/"
         "15.02.11.318_88e56ace-7bd2-46d7-ac66-1a08068be69a")
SDR_B = ("Amazon-Chime-Voice-Connector-SDRs/json/vl7k2m9q4x1c8r5t3w6z0b/2024/05/14/"
         "16.45.03.007_6d66ff25-9479-4344-9fe2-6498aee5dfcd")

INSTANCE_ID = "429ad289-d8da-4265-aaa5-12aa40cc5f8d"
VC_ID = "vl7k2m9q4x1c8r5t3w6z0b"
TX_A = "88e56ace-7bd2-46d7-ac66-1a08068be69a"
TX_B = "6d66ff25-9479-4344-9fe2-6498aee5dfcd"
STREAM_043EE98B = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
                   "lms-connect-voicelake-demo-contact-043ee98b-bc6a-4718-9c46-f3a9155dc0e2/1714521600412")
CALLER_LEG_A = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
                "ChimeVoiceConnector-vl7k2m9q4x1c8r5t3w6z0b-00f2457a-8432-4ff5-bc14-5c108b826b60/1714487412093")
CALLEE_LEG_A = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
                "ChimeVoiceConnector-vl7k2m9q4x1c8r5t3w6z0b-b7d04c6e-2f1a-4e58-9a3b-6c0e8f2d1a47/1714487412388")
LABEL1_B = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
            "ChimeVoiceConnector-vl7k2m9q4x1c8r5t3w6z0b-e2a9c150-7d3f-4b8e-a1c6-93f05b7d2e18/1714487413015")
LABEL2_B = ("arn:aws:kinesisvideo:us-east-1:111122223333:stream/"
            "ChimeVoiceConnector-vl7k2m9q4x1c8r5t3w6z0b-4f8b26d9-c03e-47a1-8d5b-2e7a9c1f60b3/1714487413342")


def sample_bytes(relative: str) -> bytes:
    path = SAMPLES / relative
    if not path.is_file():
        pytest.fail(f"sample record {path} is missing: the tests need ../shared (the shared "
                    f"samples checkout beside the project)")
    return path.read_bytes()


def sample_event(name: str) -> StreamingEvent:
    event = parse_streaming_event(json.loads(sample_bytes(f"chime-streaming-events/{name}")), source_key=name)
    assert isinstance(event, StreamingEvent)
    return event


def call_a_events() -> list[StreamingEvent]:
    return [sample_event(n) for n in ("callA-caller-leg.STARTED.json", "callA-caller-leg.ENDED.json",
                                      "callA-callee-leg.ENDED.json")]


def call_b_events() -> list[StreamingEvent]:
    return [sample_event(n) for n in ("callB-siprec-label1.ENDED.json", "callB-siprec-label2.ENDED.json")]


def sample_ctrs(relative: str) -> list[Sourced]:
    records = list(read_records(sample_bytes(f"{CTR_BUCKET}/{relative}"), source="connect", source_key=relative))
    assert all(isinstance(r, Sourced) for r in records)
    return records


def ctr_by_contact(contact_id: str) -> dict:
    return next(r.record for r in sample_ctrs(CTR_HOUR_15) if r.record["ContactId"] == contact_id)


def split(data: bytes) -> list[tuple[int, object]]:
    """Split results with errors shown as their reason, for exact comparison."""
    return [(offset, getattr(item, "reason", item)) for offset, item in split_json_objects(data)]


# --------------------------------------------------------------------------- key planning

def test_a_day_lists_its_24_hours_plus_one_hour_before_and_the_look_ahead():
    prefixes = firehose_hour_prefixes(date(2024, 5, 14), date(2024, 5, 14), 2)
    assert len(prefixes) == 1 + 24 + 2
    assert prefixes[:3] == ["2024/05/13/23/", "2024/05/14/00/", "2024/05/14/01/"]
    assert prefixes[-3:] == ["2024/05/14/23/", "2024/05/15/00/", "2024/05/15/01/"]


def test_hour_prefixes_cross_month_and_year_ends_and_take_a_base():
    prefixes = firehose_hour_prefixes(date(2023, 12, 31), date(2024, 1, 1), 24, lookbehind_hours=0, base="ctr/")
    assert len(prefixes) == 48 + 24
    assert prefixes[0] == "ctr/2023/12/31/00/"
    assert prefixes[24] == "ctr/2024/01/01/00/"
    assert prefixes[-1] == "ctr/2024/01/02/23/"


def test_hour_prefixes_reject_a_reversed_range_and_negative_windows():
    with pytest.raises(ValueError):
        firehose_hour_prefixes(date(2024, 5, 14), date(2024, 5, 13), 0)
    with pytest.raises(ValueError):
        firehose_hour_prefixes(date(2024, 5, 14), date(2024, 5, 14), -1)


def test_date_range_is_inclusive():
    assert date_range(date(2024, 2, 28), date(2024, 3, 1)) == [date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)]


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
    sample_bytes(f"{CHIME_BUCKET}/{SDR_A}")
    keys = sorted(p.relative_to(SAMPLES / CHIME_BUCKET).as_posix() for p in (SAMPLES / CHIME_BUCKET).rglob("*")
                  if p.is_file())
    assert len(keys) == 3  # two SDRs and a CDR
    assert [k for k in keys if parse_sdr_key(k)] == [SDR_A, SDR_B]


# --------------------------------------------------------------------------- splitting

def test_the_firehose_object_splits_into_its_three_ctrs_at_the_byte_of_each_brace():
    data = sample_bytes(f"{CTR_BUCKET}/{CTR_HOUR_15}")
    items = list(split_json_objects(data))
    assert [offset for offset, _ in items] == [0, 1871, 5466]
    assert [obj["ContactId"] for _, obj in items] == [
        "c8349d0e-a015-4ab5-b22c-9a28b0d72b46", "3e1a9b42-f5fb-49f0-ad1b-05d97491bc66",
        "d419c45a-2c0d-4d1e-9602-22fbf88701ff"]
    assert data[1870:1872] == b"}{" and data[5465:5467] == b"}{"
    ends = [1871, 5466, len(data)]
    assert [json.loads(data[offset:end]) for (offset, _), end in zip(items, ends)] == [obj for _, obj in items]


def test_gzip_is_detected_by_magic_bytes_and_offsets_count_decompressed_bytes():
    plain = sample_bytes(f"{CTR_BUCKET}/{CTR_HOUR_15}")
    assert list(split_json_objects(gzip.compress(plain))) == list(split_json_objects(plain))


def test_concatenated_gzip_members_are_one_stream():
    data = gzip.compress(b'{"a":1}\n') + gzip.compress(b'{"b":2}')
    assert split(data) == [(0, {"a": 1}), (8, {"b": 2})]


def test_a_truncated_gzip_object_keeps_the_records_before_the_cut():
    plain = b"".join(b'{"n":%d}' % (i * 7919 % 100_003) for i in range(20_000))
    whole = gzip.compress(plain)
    items = split(whole[:len(whole) // 2])
    records = [item for item in items if isinstance(item[1], dict)]
    assert records == split(plain)[:len(records)]
    assert len(records) > 5_000
    assert items[-1][1] == "bad_gzip" and items[-1][0] < len(plain)


def test_bytes_after_the_last_gzip_member_are_reported():
    assert split(gzip.compress(b'{"a":1}') + b"junk") == [(0, {"a": 1}), (7, "bad_gzip")]


def test_newlines_whitespace_and_a_bom_between_records():
    data = b'\xef\xbb\xbf{"a":1}\n{"b":2}\r\n  \t{"c":3}\n\n'
    assert split(data) == [(3, {"a": 1}), (11, {"b": 2}), (23, {"c": 3})]


def test_offsets_are_bytes_not_characters():
    first = '{"name":"Zoë → 東京"}'.encode()
    assert split(first + b'{"a":1}') == [(0, {"name": "Zoë → 東京"}), (len(first), {"a": 1})]
    assert len(first) == 26


def test_a_broken_record_in_the_middle_loses_nothing_after_it():
    data = b'{"a":1}{"b":,}{"c":3}\n{"d":4}'
    assert split(data) == [(0, {"a": 1}), (7, "bad_json"), (14, {"c": 3}), (22, {"d": 4})]


def test_broken_records_back_to_back_are_reported_one_by_one():
    data = b'{"a":1,}{"b":,}\n{"c":3}'
    assert split(data) == [(0, "bad_json"), (8, "bad_json"), (16, {"c": 3})]


def test_objects_nested_in_a_broken_record_are_not_taken_for_records():
    data = b'{"a":1}{"b":{"x":1},"y":[{"z":2}],}{"c":3}'
    assert split(data) == [(0, {"a": 1}), (7, "bad_json"), (35, {"c": 3})]


def test_a_truncated_record_followed_directly_by_the_next_one():
    data = b'{"a":{"t":"cut{"c":3}{"d":4}'
    assert split(data) == [(0, "bad_json"), (14, {"c": 3}), (21, {"d": 4})]


def test_top_level_values_that_are_not_objects_are_errors_and_garbage_resyncs():
    data = b'[1,2]{"a":1} 42 "s"{"b":2}xyz{"c":3}'
    assert split(data) == [(0, "not_an_object"), (5, {"a": 1}), (13, "not_an_object"),
                           (16, "not_an_object"), (19, {"b": 2}), (26, "bad_json"), (29, {"c": 3})]


def test_a_record_that_is_not_utf8_is_an_error_and_the_others_survive():
    assert split(b'{"a":"\xff"}{"b":"\xc3\xa9"}') == [(0, "bad_utf8"), (9, {"b": "é"})]


def test_empty_blank_and_nul_only_objects_are_one_empty_object_error_each():
    assert split(b"") == split(gzip.compress(b"")) == [(0, "empty_object")]
    assert split(b" \n\t\n") == split(b"\x00" * 4096) == split(gzip.compress(b"\x00" * 4096)) == [
        (0, "empty_object")]
    assert [str(error) for _, error in split_json_objects(b"")] == ["the object holds no record: empty"]
    assert [str(error) for _, error in split_json_objects(b"\x00" * 4096)] == [
        "the object holds no record: 4096 bytes of whitespace or NUL padding, no record"]


def test_deep_nesting_is_an_error_not_a_crash():
    assert split(b"[" * 100_000 + b"]" * 100_000 + b'{"a":1}') == [(0, "bad_json"), (200_000, {"a": 1})]


def test_a_large_object_of_many_records_splits_into_every_record():
    # 4 MB of 100,000 records: what linear splitting must get through (the work per record is
    # counted in the junk tests below; timings are for benchmarks/records.py, not for tests)
    record = b'{"ContactId":"c","Attributes":{"k":"v"}}'
    assert sum(1 for _ in split_json_objects(record * 100_000)) == 100_000


def junk(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


CRAFTED_JUNK = {  # text that looks like JSON from every brace, each built to defeat a naive resync
    "braces": b"{" * 2**20,
    "names that never get a colon": b'{"{' * 2**18,
    "boundaries with escaped quotes": b'}{"\\"' * 2**18,
    "an unterminated nesting": b'{"a":' * 2**18,
    "nested arrays of objects": b'[{"a":' * 2**18,
    "a number, then junk": b"7" + junk(2**20),  # a value before junk is where the junk starts
    "a string, then junk": b'"s"\t' + junk(2**20),
}


@pytest.mark.parametrize("data", [junk(2**18), junk(2**20), junk(2**22), *CRAFTED_JUNK.values()],
                         ids=["random 256 KiB", "random 1 MiB", "random 4 MiB", *CRAFTED_JUNK])
def test_a_junk_object_is_one_bad_json_error_that_names_what_was_skipped(data):
    [(offset, error)] = split_json_objects(data)
    assert (offset, error.reason) == (0, "bad_json")
    assert str(error).endswith(f"; {len(data)} bytes skipped to the end of the object")


def test_random_bytes_are_one_bad_json_error_whatever_the_seed():
    for seed in range(500):
        data = junk(2**14, seed)
        padding = len(data) - len(data.lstrip(b" \t\r\n\x00"))  # where the junk starts
        assert split(data) == [(padding, "bad_json")], seed


json_ish = st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b'"', b":", b",", b"\\", b" ", b"\n", b"\x00",
                                     b"1", b"-", b"true", b'"a"', b'{"a":1}', b"\xff", b"\xc3\xa9"]), max_size=60)


@settings(max_examples=500, deadline=None)
@given(parts=json_ish)
def test_any_bytes_split_without_raising_in_order_and_within_the_object(parts):
    data = b"".join(parts)
    items = list(split_json_objects(data))
    offsets = [offset for offset, _ in items]
    assert items and offsets == sorted(offsets) and all(0 <= o <= len(data) for o in offsets)
    assert all(isinstance(item, dict) or item.reason in REASONS for _, item in items)


def test_resyncing_never_counts_lines_over_the_text_before_the_error(monkeypatch):
    """A JSONDecodeError counts the newlines before its position in the text it was given. The
    splitter decodes slices, so the positions of all the errors it builds add up to less than
    the object's size times a small constant (decoding the whole text from every brace added up
    to the size squared: 15 minutes for a 50 MB object)."""
    positions = []
    real_init = json.JSONDecodeError.__init__

    def counting_init(self, msg, doc, pos):
        positions.append(pos)
        real_init(self, msg, doc, pos)

    monkeypatch.setattr(json.JSONDecodeError, "__init__", counting_init)
    for data in (junk(2**22), b'{"a":1}{x' * 2**16, b'{"a":1}x' * 2**16, *CRAFTED_JUNK.values()):
        positions.clear()
        list(split_json_objects(data))
        assert sum(positions) <= 8 * len(data)


def test_a_broken_region_is_one_error_up_to_the_next_usable_record():
    # {"x":...} decodes but is followed by junk, so neither it nor the object nested in it is a record
    data = b'{"a":1}{"b":,}garbage{"x":{"y":1}}junk{"c":3}\n{"d":4}'
    assert split(data) == [(0, {"a": 1}), (7, "bad_json"), (38, {"c": 3}), (46, {"d": 4})]
    assert str(dict(split_json_objects(data))[7]) == "not valid JSON (Expecting value); 31 bytes skipped to the next record"


def test_a_record_cut_right_after_a_comma_takes_the_next_record_into_its_error():
    # "{" after ":", "," or "[" is a nested value in JSON text; resyncing there would let crafted
    # nesting cost the object's size times its depth. The record is reported, not silently lost.
    assert split(b'{"a":1,{"c":3}{"d":4}') == [(0, "bad_json"), (14, {"d": 4})]
    assert split(b'{"a":1,"t":"cu{"c":3}{"d":4}') == [(0, "bad_json"), (14, {"c": 3}), (21, {"d": 4})]


def test_an_object_larger_than_the_cap_is_one_too_large_error_and_not_split():
    records = b'{"a":1}' * 150_000
    assert len(list(split_json_objects(records, max_bytes=len(records)))) == 150_000
    [(offset, error)] = split_json_objects(records, max_bytes=2**20)
    assert (offset, error.reason, str(error)) == (0, "too_large", (
        "the object is 1050000 bytes, more than the 1 MB a record object may hold "
        "(--max_record_object_mb); none of it was read"))


def test_a_gzip_stops_inflating_one_byte_past_the_cap():
    records = b'{"a":1}' * 1000
    assert len(list(split_json_objects(gzip.compress(records), max_bytes=len(records)))) == 1000
    bomb = gzip.compress(bytes(64 * 2**20), compresslevel=1)
    [(offset, error)] = split_json_objects(bomb, max_bytes=2**20)
    assert (offset, error.reason, str(error)) == (0, "too_large", (
        "the object inflates to more than the 1 MB a record object may hold (--max_record_object_mb); "
        "none of it was read"))
    # the cap counts every member of a concatenated gzip together
    assert split(gzip.compress(records) * 2) == split(records * 2)
    assert split_reasons(gzip.compress(records) * 2, max_bytes=len(records) + 1) == ["too_large"]


def split_reasons(data: bytes, **options) -> list[str]:
    return [item.reason for _, item in split_json_objects(data, **options) if not isinstance(item, dict)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12)
separators = st.text(alphabet=" \t\r\n", max_size=4)


@settings(max_examples=300, deadline=None)
@given(objects=st.lists(st.dictionaries(st.text(), json_values, max_size=5), max_size=8),
       gaps=st.lists(separators, min_size=9, max_size=9), ascii_only=st.booleans(), compress=st.booleans())
def test_splitting_a_concatenation_returns_exactly_its_objects_at_their_offsets(objects, gaps, ascii_only, compress):
    data, expected = b"", []
    for obj, gap in zip(objects, gaps):
        data += gap.encode()
        expected.append((len(data), obj))
        data += json.dumps(obj, ensure_ascii=ascii_only).encode()
    data += gaps[-1].encode()
    if not objects:
        expected = [(0, "empty_object")]
    assert split(gzip.compress(data) if compress else data) == expected


def test_read_records_turns_split_errors_into_failures_with_position():
    items = list(read_records(b'{"a":1}{oops}{"b":2}', source="connect", source_key="2024/05/14/15/x"))
    assert items == [
        Sourced({"a": 1}, "2024/05/14/15/x", 0),
        Failure(stage="records", reason="bad_json", detail=items[1].detail, source="connect",
                source_key="2024/05/14/15/x", source_offset=7),
        Sourced({"b": 2}, "2024/05/14/15/x", 13),
    ]
    assert items[1].detail.startswith("not valid JSON")


# --------------------------------------------------------------------------- values

@pytest.mark.parametrize("text, ms", [
    ("2024-05-14T15:04:36Z", 1715699076000),
    ("2024-05-14T15:02:11.402Z", 1715698931402),
    ("2024-05-14T15:02:11.4Z", 1715698931400),
    ("2024-05-14T15:02:11.402999Z", 1715698931402),
    ("2024-05-14T17:04:36+02:00", 1715699076000),
    ("2024-05-14T10:04:36-0500", 1715699076000),
])
def test_iso_timestamps_become_epoch_ms(text, ms):
    assert iso_to_ms(text) == ms


@pytest.mark.parametrize("text", ["2024-05-14T15:04:36", "2024-13-14T15:04:36Z", "2024-05-14", "yesterday",
                                  "2024-05-14T15:04:60Z", "２０２４-05-14T15:04:36Z", None, 1715699076])
def test_timestamps_without_a_zone_or_out_of_calendar_are_rejected(text):
    with pytest.raises(ValueError):
        iso_to_ms(text)


def test_utc_date():
    assert utc_date(1715699076000) == "2024-05-14"
    assert utc_date(1715731199999) == "2024-05-14"
    assert utc_date(1715731200000) == "2024-05-15"


@pytest.mark.parametrize("value", ["../../etc", "a/b", "..", ".", "", "a" * 129, "x\n", "7c1e@192.0.2.10:5060",
                                   "c8349d0e a015", None, 42])
def test_unsafe_ids_fail_the_record_id_allow_list(value):
    assert safe_path_part(value, RECORD_ID) is None


def test_ids_in_use_pass_their_allow_lists():
    assert safe_path_part(TX_A, RECORD_ID) == TX_A
    assert safe_path_part(VC_ID, VOICE_CONNECTOR_ID) == VC_ID
    assert safe_path_part("VL7K2M9Q4X1C8R5T3W6Z0B", VOICE_CONNECTOR_ID) is None


# --------------------------------------------------------------------------- Amazon Connect

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
                    ("last_update_ms", "1715699163000"), ("kvs_source", "recordings")))]


def test_a_contact_with_s3_and_kvs_recordings_and_stream_attributes_uses_the_kvs_recording():
    [call] = connect_calls(ctr_by_contact("3e1a9b42-f5fb-49f0-ad1b-05d97491bc66"), source_key=CTR_HOUR_15, offset=1871)
    assert call.streams == (StreamSpan(STREAM_043EE98B, 1715698865000, 1715699204000,
                                       start_fragment="91343852333181419805084967853201023457589792336",
                                       stop_fragment="91343852333181419805099412786630415502875316402"),)
    assert (call.start_ms, call.end_ms, call.source_offset) == (1715698865000, 1715699204000, 1871)
    assert call.attributes == (("initiation_method", "INBOUND"), ("disconnect_reason", "CUSTOMER_DISCONNECT"),
                               ("agent_username", "agent.rivera"), ("queue_name", "BasicQueue"),
                               ("last_update_ms", "1715699246000"), ("kvs_source", "recordings"))


def test_a_reused_stream_gives_the_later_contact_its_own_fragments_whatever_the_media_stream_type():
    [call] = connect_calls(ctr_by_contact("d419c45a-2c0d-4d1e-9602-22fbf88701ff"), source_key=CTR_HOUR_15, offset=5466)
    assert call.streams == (StreamSpan(STREAM_043EE98B, 1715699278000, 1715699381000,
                                       start_fragment="91343852333181419805101876350972264108834570114",
                                       stop_fragment="91343852333181419805104493118201755733012268479"),)
    assert dict(call.attributes)["queue_name"] == "BasicQueue"
    assert "agent_username" not in dict(call.attributes)


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


# --------------------------------------------------------------------------- Chime Voice Connector

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


def test_every_failure_reason_is_documented():
    assert set(REASONS) == {"bad_gzip", "bad_utf8", "bad_json", "not_an_object", "missing_field", "bad_field",
                            "bad_timestamp", "unsafe_id", "no_kvs_recording", "streaming_failed",
                            "inconsistent_records", "too_large", "empty_object", "date_out_of_range"}


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
