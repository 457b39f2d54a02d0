"""The per-call decisions, as pure functions: which track or leg is which channel, and the window."""
from __future__ import annotations

import pytest

from voicelake.model import CHIME, CONNECT, CallSpec, StreamSpan
from transforms.analyse_calls import CallProblem, call_window, channel_blocks, channel_roles
from transforms.fetch_media import RangeAudio


def call(source: str, *spans: StreamSpan, start_ms=10_000, end_ms=20_000) -> CallSpec:
    return CallSpec(source=source, call_id="c", partition_id="p", date="2024-05-14", start_ms=start_ms,
                    end_ms=end_ms, streams=spans, tag_name="ContactId", source_key="k")


def ranged(c: CallSpec, index: int, channel, tracks: dict) -> RangeAudio:
    return RangeAudio(call=c, stream_index=index, stream_arn=f"arn-{index}", channel=channel,
                      range_index=0, tracks=tracks)


def test_connect_tracks_map_by_name_and_the_legacy_track_is_the_customer():
    c = call(CONNECT, StreamSpan("arn-0", 10_000, 20_000))
    blocks, streams, legs = channel_blocks(c, [ranged(c, 0, None, {
        "AUDIO_TO_CUSTOMER": [(10_000, b"to")], "Track_audio/L16": [(10_000, b"legacy")],
        "SOMETHING_ELSE": [(10_000, b"x")]})])
    assert dict(blocks) == {0: [(10_000, b"legacy")], 1: [(10_000, b"to")]}
    assert streams == {0: "arn-0", 1: "arn-0"} and legs == set()
    assert channel_roles(c, 2) == ["customer", "agent"]


def test_discovered_chime_legs_take_channels_in_order_of_their_first_audio():
    c = call(CHIME, StreamSpan(None, 10_000, 20_000, discover_prefix="ChimeVoiceConnector-v-"))
    blocks, streams, legs = channel_blocks(c, [
        ranged(c, 0, None, {"AUDIO": [(12_000, b"late")]}), ranged(c, 1, None, {"AUDIO": [(10_500, b"early")]}),
        ranged(c, 2, None, {})])  # a pooled stream with none of the call's fragments
    assert dict(blocks) == {0: [(10_500, b"early")], 1: [(12_000, b"late")]}
    assert streams == {0: "arn-1", 1: "arn-0"} and legs == {0, 1}


def test_chime_roles_come_from_the_records_and_stay_unknown_when_they_cannot_tell():
    known = call(CHIME, StreamSpan("a", 0, 1, channel=0, role="customer"), StreamSpan("b", 0, 1, channel=1, role="agent"))
    unknown = call(CHIME, StreamSpan("a", 0, 1, channel=0), StreamSpan("b", 0, 1, channel=1))
    assert channel_roles(known, 2) == ["customer", "agent"]
    assert channel_roles(unknown, 2) == [None, None]


def test_the_window_is_the_audio_kept_inside_the_record_s_padded_window():
    c = call(CONNECT, start_ms=10_000, end_ms=20_000)
    one_second = b"\x00" * 16_000  # 8000 samples at 8 kHz
    assert call_window(c, {0: [(9_500, one_second)]}, 8000) == (9_500, None)  # inside the 1 s slack
    assert call_window(c, {0: [(5_000, one_second), (20_500, one_second)]}, 8000) == (9_000, 21_000)
    with pytest.raises(CallProblem):
        call_window(c, {0: [(40_000, one_second)]}, 8000)
