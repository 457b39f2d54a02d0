"""A call's phases: the CTR's whole-second marks placed on the media, refined by what the agent
side plays, and the holds found inside the conversation."""
from __future__ import annotations

import numpy as np

from voicelake.analysis.phases import (
    Activity,
    CallPhases,
    Phase,
    call_phases,
    ctr_phases,
    find_holds,
    phase_of,
    refine,
)
from voicelake.model import ContactTimes

RATE = 8000
FRAME = 160  # 20 ms
T0 = 1_715_680_000_000  # the recording's start on Connect's clock (whole seconds)


def contact(**marks) -> ContactTimes:
    """A contact whose marks are given in seconds after the recording's start."""
    ms = {k: None if v is None else T0 + int(v * 1000) for k, v in marks.items()
          if k not in ("initiation_method", "has_agent", "hold_count", "hold_ms")}
    rest = {k: marks[k] for k in ("initiation_method", "has_agent", "hold_count", "hold_ms") if k in marks}
    return ContactTimes(recording_start_ms=T0, **{f"{k}_ms": v for k, v in ms.items()}, **rest)


def names(phases):
    return [(p.phase, p.start_ms, p.end_ms) for p in phases]


def test_an_inbound_contact_passes_ivr_queue_agent_and_after():
    c = contact(initiation_method="INBOUND", has_agent=True, connected_to_system=0, enqueue=38,
                dequeue=108, connected_to_agent=108, after_contact_work_start=300, disconnect=300)
    assert names(ctr_phases(c, T0 + 370, 305_000)) == [
        ("ivr", 0, 38_000), ("queue", 38_000, 108_000), ("agent", 108_000, 300_000),
        ("after", 300_000, 305_000)]


def test_the_marks_are_placed_on_the_media_whatever_the_skew_between_the_clocks():
    """The first sample is the recording's start: a 1.37 s skew between Connect's clock and the
    producer's moves the media start, never where the phases fall after it."""
    c = contact(has_agent=True, enqueue=20, connected_to_agent=45)
    for media_start in (T0 - 1_370, T0, T0 + 1_370):
        assert names(ctr_phases(c, media_start, 90_000)) == [
            ("ivr", 0, 20_000), ("queue", 20_000, 45_000), ("agent", 45_000, 90_000)]


def test_a_stream_that_starts_at_the_agent_holds_only_the_conversation():
    """The IVR and queue happened before the media: nothing of them is counted, and a mark under a
    second and a half from the stream's edge is the edge."""
    c = contact(has_agent=True, connected_to_system=-150, enqueue=-120, connected_to_agent=-1,
                disconnect=60.6)
    assert names(ctr_phases(c, T0, 61_000)) == [("agent", 0, 61_000)]


def test_a_stream_that_starts_inside_the_queue_begins_with_the_queue():
    c = contact(has_agent=True, connected_to_system=-30, enqueue=-10, connected_to_agent=25)
    assert names(ctr_phases(c, T0, 80_000)) == [("queue", 0, 25_000), ("agent", 25_000, 80_000)]


def test_a_contact_abandoned_in_the_queue_has_no_conversation():
    c = contact(has_agent=False, enqueue=30, dequeue=118, disconnect=118)
    found = call_phases(c, media_start_ms=T0, duration_ms=118_400, rate=RATE, agent=None, customer=None)
    assert names(found.phases) == [("ivr", 0, 30_000), ("queue", 30_000, 118_400)]
    assert found.conversation is None and found.hold_count is None


def test_a_self_service_contact_is_all_ivr():
    c = contact(has_agent=False, connected_to_system=0, disconnect=52)
    assert names(ctr_phases(c, T0, 52_300)) == [("ivr", 0, 52_300)]


def test_an_outbound_contact_has_no_ivr_and_talks_from_when_the_customer_answers():
    c = contact(initiation_method="OUTBOUND", has_agent=True, connected_to_agent=0,
                connected_to_system=9, disconnect=100)
    assert names(ctr_phases(c, T0, 100_000)) == [("queue", 0, 9_000), ("agent", 9_000, 100_000)]


def test_a_transferred_contact_ends_its_conversation_at_the_transfer():
    c = contact(has_agent=True, connected_to_agent=10, transfer_completed=70, disconnect=130)
    assert names(ctr_phases(c, T0, 130_000)) == [
        ("ivr", 0, 10_000), ("agent", 10_000, 70_000), ("after", 70_000, 130_000)]


def test_without_a_ctr_or_with_an_agent_the_ctr_cannot_place_the_call_is_one_phase():
    assert names(ctr_phases(None, T0, 9_000)) == [("call", 0, 9_000)]
    assert names(ctr_phases(contact(has_agent=True, enqueue=3), T0, 9_000)) == [("call", 0, 9_000)]


def activity(seconds: float, *, speech=(), music=()) -> Activity:
    """A channel of 20 ms frames with speech and music (non-speech sound) in the given spans (s)."""
    n = int(seconds * 50)

    def mask(spans):
        m = np.zeros(n, dtype=bool)
        for a, b in spans:
            m[int(a * 50):int(b * 50)] = True
        return m
    return Activity(bounds=np.arange(n + 1, dtype=np.int64) * FRAME, speech=mask(speech), sound=mask(music))


def test_the_agent_answers_where_the_queue_music_stops_within_a_second_and_a_half():
    phases = [Phase("queue", 0, 30_000), Phase("agent", 30_000, 60_000)]
    agent = activity(60, music=[(0, 30.9)], speech=[(31.4, 35)])
    assert names(refine(phases, agent, RATE)) == [("queue", 0, 30_900), ("agent", 30_900, 60_000)]
    assert {p.boundary for p in refine(phases, agent, RATE)} == {"ctr+audio"}
    # music that stops far from the CTR's mark is the CTR's business, not the audio's
    agent = activity(60, music=[(0, 26)], speech=[(31.4, 35)])
    assert refine(phases, agent, RATE) == phases


def test_the_queue_starts_where_its_music_starts():
    phases = [Phase("ivr", 0, 20_000), Phase("queue", 20_000, 50_000)]
    agent = activity(50, speech=[(1, 18.5)], music=[(19.3, 50)])
    assert names(refine(phases, agent, RATE)) == [("ivr", 0, 19_300), ("queue", 19_300, 50_000)]


def test_a_hold_is_music_to_the_caller_without_agent_speech_and_vocals_do_not_split_it():
    conversation = Phase("agent", 10_000, 100_000)
    agent = activity(100, speech=[(10, 30), (42.2, 43), (62, 90)], music=[(31, 42), (43.5, 61)])
    holds, count, total = find_holds(conversation, None, agent, None, RATE)
    assert names(holds) == [("hold", 31_000, 61_000)] and (count, total) == (1, 30_000)
    assert holds[0].boundary == "audio"


def test_the_ctr_totals_check_the_holds_the_audio_finds():
    conversation = Phase("agent", 0, 120_000)
    # 3 s of music at 61 s: too short for a hold
    agent = activity(120, speech=[(0, 20), (40, 60), (75, 120)], music=[(20.5, 39), (61, 64)])
    customer = activity(120, speech=[(5, 15)])
    one = contact(hold_count=1, hold_ms=19_000)
    holds, count, total = find_holds(conversation, one, agent, customer, RATE)
    assert names(holds) == [("hold", 20_500, 39_000)] and holds[0].boundary == "ctr+audio"
    # a hold flow without music: the CTR says there were two, the second is the longest quiet stretch
    holds, count, total = find_holds(conversation, contact(hold_count=2, hold_ms=26_000), agent,
                                     customer, RATE)
    assert names(holds) == [("hold", 20_500, 39_000), ("hold", 60_000, 75_000)]
    assert (count, total) == (2, 33_500)
    # music the CTR says was no hold is none
    assert find_holds(conversation, contact(hold_count=0, hold_ms=0), agent, customer, RATE) == ([], 0, 0)


def test_the_ctr_totals_are_the_answer_when_the_audio_cannot_tell():
    conversation = Phase("agent", 0, 60_000)
    agent = Activity(bounds=activity(60).bounds, speech=activity(60, speech=[(0, 60)]).speech, sound=None)
    assert find_holds(conversation, contact(hold_count=1, hold_ms=12_000), agent, None, RATE) == ([], 1, 12_000)


def test_queue_music_running_past_the_answer_is_no_hold():
    conversation = Phase("agent", 30_000, 90_000)
    agent = activity(90, music=[(0, 36)], speech=[(37, 90)])
    assert find_holds(conversation, None, agent, None, RATE) == ([], 0, 0)


def test_a_segment_takes_the_phase_its_middle_lies_in():
    found = CallPhases(phases=(Phase("ivr", 0, 20_000), Phase("agent", 20_000, 90_000)),
                       holds=(Phase("hold", 40_000, 55_000),), hold_count=1, hold_ms=15_000)
    assert phase_of(found, 18_000, 21_000) == "ivr"
    assert phase_of(found, 19_000, 23_000) == "agent"
    assert phase_of(found, 41_000, 43_000) == "hold"
    assert phase_of(found, 90_000, 91_000) is None
