"""The per-call decisions, as pure functions: which track or leg is which channel, and the window."""
from __future__ import annotations

import pytest

from voicelake.analysis.call_audio import CallProblem, call_window, channel_pieces, channel_roles, grid
from voicelake.media.channel_file import ChannelPiece
from voicelake.model import CHIME, CONNECT, CallSpec, StreamAudio, StreamSpan


def call(source: str, *spans: StreamSpan, start_ms=10_000, end_ms=20_000) -> CallSpec:
    return CallSpec(source=source, call_id="c", partition_id="p", date="2024-05-14", start_ms=start_ms,
                    end_ms=end_ms, streams=spans, tag_name="ContactId", source_key="k")


def piece(name: str, *ranges, cut=False) -> ChannelPiece:
    return ChannelPiece(path=name, sample_rate=8000, ranges=tuple(ranges), cut_at_end=cut)


def fetched(c: CallSpec, index: int, channel, tracks: dict) -> StreamAudio:
    return StreamAudio(call=c, stream_index=index, stream_arn=f"arn-{index}", channel=channel,
                       tracks=tuple(tracks.items()))


def test_connect_tracks_map_by_name_and_the_legacy_track_is_the_customer():
    c = call(CONNECT, StreamSpan("arn-0", 10_000, 20_000))
    to, legacy, other = piece("to", (0, 8)), piece("legacy", (0, 8)), piece("x", (0, 8))
    pieces, streams, legs = channel_pieces(c, [fetched(c, 0, None, {
        "AUDIO_TO_CUSTOMER": to, "Track_audio/L16": legacy, "SOMETHING_ELSE": other})])
    assert dict(pieces) == {0: [legacy], 1: [to]}
    assert streams == {0: "arn-0", 1: "arn-0"} and legs == set()
    assert channel_roles(c, 2) == ["customer", "agent"]


def test_discovered_chime_legs_take_channels_in_order_of_their_first_audio():
    c = call(CHIME, StreamSpan(None, 10_000, 20_000, discover_prefix="ChimeVoiceConnector-v-"))
    late, early = piece("late", (16_000, 16_008)), piece("early", (4_000, 4_008))
    pieces, streams, legs = channel_pieces(c, [
        fetched(c, 0, None, {"AUDIO": late}), fetched(c, 1, None, {"AUDIO": early}),
        fetched(c, 2, None, {})])  # a pooled stream with none of the call's fragments
    assert dict(pieces) == {0: [early], 1: [late]}
    assert streams == {0: "arn-1", 1: "arn-0"} and legs == {0, 1}


def test_a_chime_leg_that_reconnects_on_another_stream_keeps_its_channel():
    c = call(CHIME, StreamSpan("arn-0", 10_000, 20_000, channel=1, role="customer"),
             StreamSpan("arn-1", 10_000, 20_000, channel=1, role="customer"),
             StreamSpan("arn-2", 10_000, 20_000, channel=0, role="agent"))
    a, b, agent = piece("a", (0, 80)), piece("b", (160, 240)), piece("g", (0, 240))
    pieces, _, legs = channel_pieces(c, [fetched(c, 0, 1, {"A": a}), fetched(c, 1, 1, {"A": b}),
                                         fetched(c, 2, 0, {"A": agent})])
    assert dict(pieces) == {0: [agent], 1: [a, b]} and legs == {0, 1}


def test_chime_roles_come_from_the_records_and_stay_unknown_when_they_cannot_tell():
    known = call(CHIME, StreamSpan("a", 0, 1, channel=0, role="customer"),
                 StreamSpan("b", 0, 1, channel=1, role="agent"))
    unknown = call(CHIME, StreamSpan("a", 0, 1, channel=0), StreamSpan("b", 0, 1, channel=1))
    assert channel_roles(known, 2) == ["customer", "agent"]
    assert channel_roles(unknown, 2) == [None, None]


def test_the_window_is_the_audio_kept_inside_the_record_s_padded_window():
    # a Connect contact's record is on Connect's clock, which can be seconds off the media's
    assert grid(call(CONNECT, start_ms=10_000, end_ms=20_000)) == (5_000, 25_000)
    c = call(CHIME, start_ms=10_000, end_ms=20_000)
    assert grid(c) == (9_000, 21_000)  # the record's window, padded by its 1 s precision
    # audio from 9.5 s for one second (8000 samples at 8 kHz): the window is that audio
    w = call_window(c, {0: [piece("a", (4_000, 12_000))]}, 8000)
    assert (w.start_ms, w.end_ms, w.shift, w.samples, w.cut_at_end) == (9_500, 10_500, 4_000, 8_000, False)
    # audio before and after the padded window was cut at the grid: the window is the grid
    w = call_window(c, {0: [piece("a", (0, 8_000), (92_000, 96_000), cut=True)]}, 8000)
    assert (w.start_ms, w.end_ms, w.samples, w.cut_at_end) == (9_000, 21_000, 96_000, True)
    with pytest.raises(CallProblem):
        call_window(c, {0: [piece("a")]}, 8000)  # nothing of it inside the window
