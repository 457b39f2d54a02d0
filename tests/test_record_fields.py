"""Specification of voicelake.records.record_fields: timestamps and dates, the allow-lists ids must
pass before they name a path, and the documented failure reasons."""
from __future__ import annotations

import pytest

from tests.record_samples import TX_A, VC_ID
from voicelake.records.record_fields import REASONS, RECORD_ID, VOICE_CONNECTOR_ID, iso_to_ms, safe_path_part, utc_date


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


def test_every_failure_reason_is_documented():
    assert set(REASONS) == {"bad_gzip", "bad_utf8", "bad_json", "not_an_object", "missing_field", "bad_field",
                            "bad_timestamp", "unsafe_id", "no_kvs_recording", "streaming_failed",
                            "inconsistent_records", "too_large", "empty_object", "date_out_of_range"}
