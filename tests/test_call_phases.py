"""Calls in phases, end to end: on a day of Amazon Connect contacts shaped like real ones (an IVR,
a queue with music and announcements, holds, contacts abandoned or served by the IVR alone, streams
that start at the agent), the conversation metrics measure the conversation, as the same
conversation recorded alone measures it, and every call says who took it and where it waited."""
from __future__ import annotations

import pytest

from pipeline.run import run
from runners.local.contact_flow import ContactShape
from runners.local.demo import recording_pairs
from runners.local.seed import WorldConfig
from tests.conftest import make_world, shared_path
from tests.pipeline_runs import pipeline_args, table

# The day of the issue that asked for phases, on the real two-leg recordings, and shapes beside it.
DAY = (
    ContactShape("ivr38_queue70_hold32", ivr_s=38, queue_s=70, holds=((95, 32),)),
    ContactShape("ivr24_queue125", ivr_s=24, queue_s=125),
    ContactShape("ivr46_queue42_hold47", ivr_s=46, queue_s=42, holds=((140, 47),), after_s=9),
    ContactShape("abandoned_after_88s", ivr_s=20, queue_s=88, agent=False),
    ContactShape("ivr_only", ivr_s=52, agent=False, disconnect_reason="CONTACT_FLOW_DISCONNECT"),
    ContactShape("agent_start", ivr_s=30, queue_s=40, stream_start="agent"),
    ContactShape("late_two_holds", ivr_s=15, queue_s=50, stream_start="queue", stream_offset_s=35,
                 holds=((40, 14), (150, 20))),
    ContactShape("outbound", initiation="OUTBOUND", stream_start="agent"),
)
TALK_SLACK = 0.06, 1500  # conversation talk per side: within max(6 %, 1.5 s) of the conversation alone
NON_TALK_SLACK_MS = 4000
PHASE_SLACK_MS = 2000
HOLD_SLACK_MS = 3000


@pytest.fixture(scope="module")
def day(s3_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("phases")
    config = WorldConfig(bucket="world-phases", connect_calls=len(DAY), chime_calls=0, connect_streams=3,
                         call_seconds=240, recordings=recording_pairs(str(shared_path("samples", "audio"))),
                         contacts=DAY, twins=True, bad_records=False, dropout_fragment=None)
    world = make_world(root / "world", s3_server, config)
    try:
        run(pipeline_args(world, root / "lake"))
    finally:
        world.kvs.stop()
    calls = {row["call_id"]: row for row in table(root / "lake", "calls")}
    return world.truth, calls, table(root / "lake", "phases"), table(root / "lake", "segments")


def phased(truth) -> list[dict]:
    return [c for c in truth.calls if c["twin_of"] is None]


def test_conversation_talk_is_the_conversation_alones(day):
    truth, calls, _, _ = day
    twins = [c for c in phased(truth) if c["twin"]]
    assert len(twins) == 6
    for contact in twins:
        mine, alone = calls[contact["call_id"]], calls[contact["twin"]]
        for side in ("agent", "customer"):
            slack = max(TALK_SLACK[0] * alone[f"talk_ms_{side}"], TALK_SLACK[1])
            assert abs(mine[f"talk_ms_{side}"] - alone[f"talk_ms_{side}"]) <= slack, (contact["shape"], side)
        hold_ms = sum(h["end_ms"] - h["start_ms"] for h in contact["holds"])
        assert abs(mine["non_talk_ms"] - (alone["non_talk_ms"] + hold_ms)) <= NON_TALK_SLACK_MS, contact["shape"]


def test_ivr_and_queue_are_the_audio_the_stream_holds(day):
    truth, calls, _, _ = day
    for contact in phased(truth):
        row = calls[contact["call_id"]]
        for phase in ("ivr", "queue", "agent"):
            held = sum(p["end_ms"] - p["start_ms"] for p in contact["phases"] if p["phase"] == phase)
            assert abs(row[f"{phase}_ms"] - held) <= PHASE_SLACK_MS, (contact["shape"], phase)


def test_every_hold_is_counted_and_lands_where_it_was(day):
    truth, calls, phases, _ = day
    for contact in phased(truth):
        row = calls[contact["call_id"]]
        found = sorted((p["start_ms"], p["end_ms"]) for p in phases
                       if p["call_id"] == contact["call_id"] and p["phase"] == "hold")
        if contact["conversation"] is None:
            assert row["hold_count"] is None and not found
            continue
        assert row["hold_count"] == len(contact["holds"]) == len(found), contact["shape"]
        assert row["hold_count_ctr"] == contact["hold_count_ctr"]
        assert row["hold_ms_ctr"] == contact["hold_ms_ctr"]
        for (start, end), hold in zip(found, contact["holds"], strict=True):
            assert abs(start - hold["start_ms"]) <= HOLD_SLACK_MS and abs(end - hold["end_ms"]) <= HOLD_SLACK_MS


def test_a_contact_that_never_reached_an_agent_has_no_conversation(day):
    truth, calls, _, _ = day
    nobody = [c for c in phased(truth) if c["conversation"] is None]
    assert {c["shape"] for c in nobody} == {"abandoned_after_88s", "ivr_only"}
    for contact in nobody:
        row = calls[contact["call_id"]]
        assert row["talk_ms_agent"] is None and row["talk_ms_customer"] is None
        assert row["non_talk_ms"] is None and row["turns"] is None and row["conversation_start_ms"] is None
        assert row["agent_ms"] == 0 and row["agent_username"] is None


def test_segments_carry_the_phase_they_lie_in(day):
    truth, _, _, segments = day
    placed = right = 0
    for contact in phased(truth):
        spans = [(h["start_ms"], h["end_ms"], "hold") for h in contact["holds"]] + \
                [(p["start_ms"], p["end_ms"], p["phase"]) for p in contact["phases"]]
        edges = {t for a, b, _ in spans for t in (a, b)}
        for seg in (s for s in segments if s["call_id"] == contact["call_id"]):
            if any(abs(t - seg["start_ms"]) <= 1500 or abs(t - seg["end_ms"]) <= 1500 for t in edges):
                continue
            middle = (seg["start_ms"] + seg["end_ms"]) // 2
            placed += 1
            right += seg["phase"] == next(name for a, b, name in spans if a <= middle < b)
    assert placed > 300 and right / placed >= 0.95


def test_every_call_says_who_took_it_and_where_it_waited_and_no_phone_number(day):
    truth, calls, _, _ = day
    for contact in truth.calls:
        row = calls[contact["call_id"]]
        assert (row["agent_username"], row["queue_name"], row["routing_profile"], row["initiation_method"]) == \
            (contact["agent_username"], contact["queue_name"], contact["routing_profile"],
             contact["initiation_method"])
    assert not any("+1" in str(value) for row in calls.values() for value in row.values())
