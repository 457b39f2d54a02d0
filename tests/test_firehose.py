"""Specification of voicelake.records.firehose: the hour folders a day lists, and how an object of
concatenated records (Firehose CTRs, SDRs, streaming events) splits into records at byte offsets,
or into errors that lose nothing after them.

Real example records come from ../shared/samples/records (ground truth in its README.md).
"""
from __future__ import annotations

import gzip
import json
import random
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.record_samples import CTR_BUCKET, CTR_HOUR_15, json_values, sample_bytes
from voicelake.model import Failure
from voicelake.records.firehose import Sourced, date_range, firehose_hour_prefixes, read_records, split_json_objects
from voicelake.records.record_fields import REASONS


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
    assert [json.loads(data[offset:end]) for (offset, _), end in zip(items, ends, strict=True)] == \
        [obj for _, obj in items]


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
    assert str(dict(split_json_objects(data))[7]) == \
        "not valid JSON (Expecting value); 31 bytes skipped to the next record"


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


separators = st.text(alphabet=" \t\r\n", max_size=4)


@settings(max_examples=300, deadline=None)
@given(objects=st.lists(st.dictionaries(st.text(), json_values, max_size=5), max_size=8),
       gaps=st.lists(separators, min_size=9, max_size=9), ascii_only=st.booleans(), compress=st.booleans())
def test_splitting_a_concatenation_returns_exactly_its_objects_at_their_offsets(objects, gaps, ascii_only, compress):
    data, expected = b"", []
    for obj, gap in zip(objects, gaps, strict=False):  # one gap more than objects, at most
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
