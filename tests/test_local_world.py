"""The local world looks like production from the outside: real key layouts, real HTTP, real bytes."""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import random
import re
import subprocess

import numpy as np
import pytest

from runners.local import contact_flow, conversation, mkv_writer
from runners.local.seed import WorldConfig
from tests.conftest import make_world, require_tool

SDR_KEY = re.compile(
    r"^chime-sdr/Amazon-Chime-Voice-Connector-SDRs/json/(?P<vc>[a-z0-9]{22})/\d{4}/\d{2}/\d{2}/"
    r"\d{2}\.\d{2}\.\d{2}\.\d{3}_(?P<tx>[0-9a-f-]{36})$")
FIREHOSE_KEY = re.compile(
    r"^(connect-ctr|chime-events)/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[a-z-]+-1-"
    r"\2-\3-\4-\5-\d{2}-\d{2}-[0-9a-f-]{36}$")


def objects(world, prefix):
    s3 = world.s3.client()
    listing = s3.list_objects_v2(Bucket=world.config.bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=world.config.bucket, Key=o["Key"])["Body"].read()
            for o in listing}


def split_concatenated(data: bytes) -> list[dict]:
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()
    decoder, pos, out = json.JSONDecoder(), 0, []
    while pos < len(text):
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)
    return out


def channel_pcm(world, call, folder) -> list[np.ndarray]:
    """The call's two channels (customer, agent) as mkvextract decodes them from KVS over HTTP."""
    stream = call["streams"][0]
    body = world.kvs_client().get_media_for_fragment_list(
        StreamARN=stream["stream_arn"], Fragments=stream["fragments"])["Payload"].read()
    (folder / "body.mkv").write_bytes(body)
    # mkvmerge id 0 is TrackNumber 1: AUDIO_TO_CUSTOMER when that track comes first.
    to_id, from_id = (0, 1) if stream["to_customer_first"] else (1, 0)
    done = subprocess.run(["mkvextract", str(folder / "body.mkv"), "tracks",
                           "--raw", f"{from_id}:{folder / 'from.pcm'}",
                           "--raw", f"{to_id}:{folder / 'to.pcm'}"], capture_output=True)
    assert done.returncode in (0, 1), done.stderr  # 1 = warnings about the chained Segments
    return [np.frombuffer((folder / name).read_bytes(), "<i2") for name in ("from.pcm", "to.pcm")]


def test_sdrs_sit_at_the_documented_key_layout_one_json_object_each(world):
    sdrs = objects(world, "chime-sdr/")
    chime = [c for c in world.truth.calls if c["source"] == "chime"]
    good = {k: v for k, v in sdrs.items() if b"TransactionId" in v}
    assert len(good) == len(chime)
    for key, body in good.items():
        match = SDR_KEY.match(key)
        assert match, key
        sdr = json.loads(body)
        assert (sdr["VoiceConnectorId"], sdr["TransactionId"]) == (match["vc"], match["tx"])
        assert "StreamArn" not in sdr  # the documented SDR has no stream: events carry it


def test_ctrs_are_concatenated_without_delimiter_some_gzip_and_one_redelivered_later(world):
    ctr_objects = objects(world, "connect-ctr/")
    assert all(FIREHOSE_KEY.match(k) for k in ctr_objects)
    assert any(v[:2] == b"\x1f\x8b" for v in ctr_objects.values())
    plain = [v for v in ctr_objects.values() if v[:2] != b"\x1f\x8b" and v.count(b'"ContactId"') > 1]
    assert plain and all(b"}{" in v and b"\n" not in v for v in plain)
    broken = b'{"ContactId":"broken-record","Channel":"VOI'
    texts = [gzip.decompress(v) if v[:2] == b"\x1f\x8b" else v for _, v in sorted(ctr_objects.items())]
    assert sum(t.count(broken) for t in texts) == 1  # one bad record, mid-object, for failures
    records = [r for t in texts for r in split_concatenated(t.replace(broken, b""))]
    by_contact: dict[str, list[dict]] = {}
    for r in records:
        by_contact.setdefault(r["ContactId"], []).append(r)
    redelivered = [c for c in world.truth.calls if c.get("redelivered")]
    assert len(redelivered) == 1
    copies = by_contact[redelivered[0]["call_id"]]
    assert len(copies) == 2 and copies[0]["LastUpdateTimestamp"] < copies[1]["LastUpdateTimestamp"]
    last = max((c for c in world.truth.calls if c["source"] == "connect"), key=lambda c: c["start_ms"])
    next_day = [k for k, v in ctr_objects.items() if last["call_id"].encode() in
                (gzip.decompress(v) if v[:2] == b"\x1f\x8b" else v)]
    assert next_day and all("/2024/05/15/00/" in k for k in next_day)


def test_each_chime_leg_has_started_and_ended_events_with_its_stream(world):
    events = [e for v in objects(world, "chime-events/").values() for e in split_concatenated(v)]
    for call in (c for c in world.truth.calls if c["source"] == "chime"):
        mine = [e["detail"] for e in events if e["detail"]["transactionId"] == call["call_id"]]
        assert sorted((d["streamArn"], d["streamingStatus"]) for d in mine) == sorted(
            (s["stream_arn"], status) for s in call["streams"] for status in ("ENDED", "STARTED"))
        for stream in call["streams"]:
            started = next(d for d in mine if d["streamArn"] == stream["stream_arn"])
            assert started["startFragmentNumber"] == stream["fragments"][0]
            assert started["isCaller"] is stream["is_caller"]


def test_pooled_streams_carry_several_calls_one_after_another(world):
    streams: dict[str, list[str]] = {}
    for call in world.truth.calls:
        for s in call["streams"]:
            streams.setdefault(s["stream_arn"], []).append(call["call_id"])
    assert any(len(calls) > 1 for calls in streams.values())
    client = world.kvs_client()
    for arn in streams:
        listed = []
        for page in client.get_paginator("list_fragments").paginate(StreamARN=arn):
            listed += [f["FragmentNumber"] for f in page["Fragments"]]
        seeded = [n for c in world.truth.calls for s in c["streams"] if s["stream_arn"] == arn
                  for n in s["fragments"]]
        assert sorted(listed, key=int) == sorted(seeded, key=int)
        assert all(len(n) == 47 for n in listed)


def test_a_connect_call_fetched_over_http_decodes_with_mkvextract_to_its_ground_truth(world, tmp_path):
    require_tool("mkvextract")
    call = next(c for c in world.truth.calls if c["source"] == "connect" and not c["gaps"])
    for pcm, expected in zip(channel_pcm(world, call, tmp_path), call["channels"], strict=True):
        assert len(pcm) == expected["samples"]
        assert hashlib.sha256(pcm.tobytes()).hexdigest() == expected["sha256"]


def test_connect_chunks_follow_the_real_dump_layout():
    pcm = np.arange(1024, dtype="<i2").tobytes()
    chunk = mkv_writer.connect_fragment(
        fragment_number="9" * 47, producer_ms=1782912654536, server_ms=1782912654706,
        contact_id="87718f4a-d2ed-476a-ad11-f496ab09b3f8", instance_id="i", from_customer=pcm,
        to_customer=pcm)
    assert chunk[:4] == bytes.fromhex("1A45DFA3")
    assert chunk[40:52] == bytes.fromhex("18538067 01FFFFFFFFFFFFFF".replace(" ", ""))
    cluster = chunk.index(bytes.fromhex("1F43B675"))
    assert chunk[cluster + 4] == 0xFF  # unknown-size Cluster, one size byte
    # Timecode E7 with an 8-byte absolute value equal to the producer timestamp in ms
    assert chunk[cluster + 5:cluster + 15] == b"\xe7\x88" + (1782912654536).to_bytes(8, "big")
    assert b"AWS_KINESISVIDEO_PRODUCER_TIMESTAMP" in chunk and b"1782912654.536" in chunk
    assert chunk.count(b"ContactId") == 2  # before and after the Cluster


# ---- Amazon Connect contacts with phases ---------------------------------------------------------

ALL_SHAPES = ("full", "two_holds", "agent_start", "late_start", "abandoned", "self_service",
              "outbound", "plain")
PHASED = dict(connect_calls=8, chime_calls=2, call_seconds=30.0, seed=8, dropout_fragment=None)
# The Chime calls' truth entries (ids, fragments, channel sha256, SDR keys) as the seed made them
# before contacts had phases: sha256 of their sorted JSON, measured once on commit 2dbf559.
CHIME_DIGEST_AT_HEAD = {"default": "7453108b03847747", "phased": "560b6f81653e39d2"}
CTR_STARTS = {"ivr": ("ConnectedToSystemTimestamp",), "queue": ("Queue", "EnqueueTimestamp"),
              "agent": ("Agent", "ConnectedToAgentTimestamp"),
              "after": ("Agent", "AfterContactWorkStartTimestamp")}
CTR_ENDS = {"queue": ("Queue", "DequeueTimestamp"), "agent": ("Agent", "AfterContactWorkStartTimestamp")}


@pytest.fixture(scope="module")
def phased_world(tmp_path_factory, s3_server):
    """One contact of every shape, each answered one followed by its plain twin."""
    w = make_world(tmp_path_factory.mktemp("phased"), s3_server,
                   WorldConfig(bucket="world-phased", contacts=ALL_SHAPES, twins=True, **PHASED))
    yield w
    w.kvs.stop()


def ctr_copies(world) -> dict[str, list[dict]]:
    """Every delivered copy of each contact's CTR, oldest LastUpdateTimestamp first."""
    broken = b'{"ContactId":"broken-record","Channel":"VOI'
    copies: dict[str, list[dict]] = {}
    for _, body in sorted(objects(world, "connect-ctr/").items()):
        text = (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body).replace(broken, b"")
        for record in split_concatenated(text):
            copies.setdefault(record["ContactId"], []).append(record)
    return {k: sorted(v, key=lambda r: r["LastUpdateTimestamp"]) for k, v in copies.items()}


def newest_ctrs(world) -> dict[str, dict]:
    return {contact: copies[-1] for contact, copies in ctr_copies(world).items()}


def connect_calls(world) -> list[dict]:
    return [c for c in world.truth.calls if c["source"] == "connect"]


def ctr_ms(mark: str) -> int:
    return int(dt.datetime.strptime(mark, "%Y-%m-%dT%H:%M:%S%z").timestamp() * 1000)


def media_second(world, mark: str) -> int:
    """Where a CTR time puts its true media-clock instant: in [this, this + 1000) ms."""
    return ctr_ms(mark) - world.config.ctr_clock_skew_ms


def on_second(world, mark: str, true_ms: int) -> None:
    """A CTR time, truncated to its second on Connect's clock, names this media-clock instant."""
    assert media_second(world, mark) <= true_ms < media_second(world, mark) + 1000, (mark, true_ms)


def field(ctr: dict, path: tuple[str, ...]):
    for name in path:
        ctr = ctr[name]
    return ctr


def chime_digest(world) -> str:
    chime = [c for c in world.truth.calls if c["source"] == "chime"]
    return hashlib.sha256(json.dumps(chime, sort_keys=True).encode()).hexdigest()[:16]


def test_the_chime_calls_are_byte_identical_to_those_seeded_before_contacts_had_phases(world, phased_world):
    assert chime_digest(world) == CHIME_DIGEST_AT_HEAD["default"]
    assert chime_digest(phased_world) == CHIME_DIGEST_AT_HEAD["phased"]


def test_each_shape_streams_the_phases_it_says_with_their_lengths(phased_world):
    calls = {c["shape"]: c for c in connect_calls(phased_world) if c["twin_of"] is None}
    phases = {shape: [(p["phase"], p["end_ms"] - p["start_ms"]) for p in call["phases"]]
              for shape, call in calls.items()}
    talk = {shape: call["conversation"] and call["conversation"]["end_ms"] - call["conversation"]["start_ms"]
            for shape, call in calls.items()}
    assert phases == {
        "full": [("ivr", 12000), ("queue", 20000), ("agent", talk["full"]), ("after", 6000)],
        "two_holds": [("ivr", 10000), ("queue", 15000), ("agent", talk["two_holds"])],
        "agent_start": [("agent", talk["agent_start"])],
        "late_start": [("queue", 12000), ("agent", talk["late_start"])],  # 20 s after it connected
        "abandoned": [("ivr", 10000), ("queue", 20000)],
        "self_service": [("ivr", 12000)],
        "outbound": [("agent", talk["outbound"])],
        "plain": [("agent", talk["plain"])],
    }
    assert {shape: [h["end_ms"] - h["start_ms"] for h in call["holds"]] for shape, call in calls.items()
            if call["holds"]} == {"full": [12000], "two_holds": [8000, 10000]}
    for call in calls.values():
        assert call["phases"][0]["start_ms"] == 0
        assert call["phases"][-1]["end_ms"] * 8 == call["channels"][0]["samples"] == call["channels"][1]["samples"]
        assert all(a["end_ms"] == b["start_ms"] for a, b in zip(call["phases"], call["phases"][1:], strict=False))


@pytest.mark.parametrize("which", ["world", "phased_world"])
def test_ctr_phase_marks_fall_on_the_truths_phases_once_the_skew_is_removed(which, request):
    world = request.getfixturevalue(which)
    ctrs = newest_ctrs(world)
    for call in connect_calls(world):
        ctr, start = ctrs[call["call_id"]], call["start_ms"]
        on_second(world, ctr["Recordings"][0]["StartTimestamp"], start)
        on_second(world, ctr["DisconnectTimestamp"], call["end_ms"])
        for phase in call["phases"]:
            mark = field(ctr, CTR_STARTS[phase["phase"]])
            if phase is call["phases"][0] and media_second(world, mark) + 1000 <= start:
                assert call["shape"] == "late_start"  # the queue began before the stream
            else:
                on_second(world, mark, start + phase["start_ms"])
            if phase["phase"] in CTR_ENDS:
                on_second(world, field(ctr, CTR_ENDS[phase["phase"]]), start + phase["end_ms"])


def test_the_ctr_hold_totals_are_the_truths(phased_world):
    ctrs = newest_ctrs(phased_world)
    for call in connect_calls(phased_world):
        agent = ctrs[call["call_id"]]["Agent"]
        held = [h["end_ms"] - h["start_ms"] for h in call["holds"]]
        if agent is None:
            assert call["hold_count_ctr"] is call["hold_ms_ctr"] is None and held == []
            continue
        assert (agent["NumberOfHolds"], agent["CustomerHoldDuration"] * 1000) == \
            (call["hold_count_ctr"], call["hold_ms_ctr"]) == (len(held), sum(held))
        assert agent["LongestHoldDuration"] * 1000 == max(held, default=0)
        talk = call["conversation"]["end_ms"] - call["conversation"]["start_ms"] - sum(held)
        assert agent["AgentInteractionDuration"] == (talk + 500) // 1000


def test_abandoned_and_self_service_contacts_have_no_agent(phased_world):
    ctrs = newest_ctrs(phased_world)
    calls = {c["shape"]: c for c in connect_calls(phased_world)}
    abandoned, self_service = ctrs[calls["abandoned"]["call_id"]], ctrs[calls["self_service"]["call_id"]]
    assert abandoned["Agent"] is None and abandoned["DisconnectReason"] == "CUSTOMER_DISCONNECT"
    assert abandoned["Queue"]["DequeueTimestamp"] == abandoned["DisconnectTimestamp"]
    assert self_service["Agent"] is None and self_service["Queue"] is None
    assert self_service["DisconnectReason"] == "CONTACT_FLOW_DISCONNECT"
    for call in (calls["abandoned"], calls["self_service"]):
        assert (call["conversation"], call["agent_username"], call["routing_profile"]) == (None, None, None)


def test_an_outbound_contact_streams_from_the_customer_answering_with_no_queue(phased_world):
    call = next(c for c in connect_calls(phased_world) if c["shape"] == "outbound")
    ctr = newest_ctrs(phased_world)[call["call_id"]]
    assert (ctr["InitiationMethod"], call["initiation_method"], ctr["Queue"]) == ("OUTBOUND", "OUTBOUND", None)
    dialled = ctr_ms(ctr["ConnectedToSystemTimestamp"]) - ctr_ms(ctr["InitiationTimestamp"])
    assert 3000 <= dialled <= 10_000  # the agent dialled, the customer answered
    assert ctr["ConnectedToSystemTimestamp"] == ctr["Agent"]["ConnectedToAgentTimestamp"]


def test_queue_agent_and_routing_profile_names_in_the_ctr_are_the_truths(phased_world):
    ctrs = newest_ctrs(phased_world)
    for call in connect_calls(phased_world):
        ctr = ctrs[call["call_id"]]
        agent, queue = ctr["Agent"] or {}, ctr["Queue"] or {}
        assert (agent.get("Username"), (agent.get("RoutingProfile") or {}).get("Name"), queue.get("Name")) == \
            (call["agent_username"], call["routing_profile"], call["queue_name"])
    names = {(c["shape"], c["agent_username"], c["queue_name"]) for c in connect_calls(phased_world)}
    assert ("agent_start", "lee.marsh", "Repairs") in names and ("self_service", None, None) in names


def test_a_twin_carries_its_contacts_conversation_with_the_holds_cut_out(phased_world, tmp_path):
    require_tool("mkvextract")
    calls = {c["call_id"]: c for c in connect_calls(phased_world)}
    twins = [(calls[c["twin_of"]], c) for c in calls.values() if c["twin_of"]]
    assert sorted(phased["shape"] for phased, _ in twins) == sorted(
        ["full", "two_holds", "agent_start", "late_start", "outbound", "plain"])
    for phased, twin in twins:
        assert phased["twin"] == twin["call_id"] and twin["shape"] == "plain"
        assert (twin["agent_username"], twin["holds"]) == (phased["agent_username"], [])
        if not phased["holds"]:
            continue
        (tmp_path / phased["shape"]).mkdir()
        channels = channel_pcm(phased_world, phased, tmp_path / phased["shape"])
        talk = phased["conversation"]
        kept = [(talk["start_ms"], phased["holds"][0]["start_ms"])]
        kept += [(a["end_ms"], b["start_ms"]) for a, b in zip(phased["holds"], phased["holds"][1:], strict=False)]
        kept += [(phased["holds"][-1]["end_ms"], talk["end_ms"])]
        for pcm, expected in zip(channels, twin["channels"], strict=True):
            alone = np.concatenate([pcm[a * 8:b * 8] for a, b in kept])
            assert len(alone) == expected["samples"]
            assert hashlib.sha256(alone.astype("<i2").tobytes()).hexdigest() == expected["sha256"]


def test_the_redelivery_adds_the_after_contact_work_and_hold_totals_the_first_copy_lacked(world):
    contact = next(c for c in world.truth.calls if c.get("redelivered"))
    first, update = ctr_copies(world)[contact["call_id"]]
    later = ("NumberOfHolds", "CustomerHoldDuration", "LongestHoldDuration", "AfterContactWorkStartTimestamp",
             "AfterContactWorkEndTimestamp", "AfterContactWorkDuration")
    assert all(first["Agent"][name] is None for name in later)
    assert all(update["Agent"][name] is not None for name in later)
    assert first["Agent"]["ConnectedToAgentTimestamp"] == update["Agent"]["ConnectedToAgentTimestamp"]


def test_ctrs_carry_the_phone_numbers_and_attributes_the_lake_must_not_copy(world):
    for ctr in newest_ctrs(world).values():
        assert ctr["CustomerEndpoint"]["Address"] == "+15095550187"
        assert ctr["SystemEndpoint"]["Address"] == "+12065550160"
        assert ctr["Attributes"]["queue"] == "repairs"


def test_the_demo_day_has_a_hold_a_contact_without_agent_and_one_streaming_from_the_agent(world):
    calls = connect_calls(world)
    assert [c["shape"] for c in calls] == ["full", "agent_start", "abandoned", "self_service"]
    assert any(c["holds"] for c in calls)
    assert any(c["conversation"] is None for c in calls)
    assert any(c["phases"][0]["phase"] == "agent" and c["queue_name"] for c in calls)
    assert all(c["twin"] is None and c["twin_of"] is None for c in calls)


def test_a_long_contact_of_a_real_day_puts_its_hold_between_turns():
    shape = contact_flow.ContactShape("long", ivr_s=38, queue_s=70, holds=((25, 32),), after_s=8)
    clips = conversation.load_clips()
    talk = contact_flow.whole_ms(*conversation.synthesise(random.Random(3), clips, min_seconds=60))
    contact = contact_flow.build(shape, talk, contact_id="c", staff=contact_flow.staffing(shape, 0),
                                 clips=clips, rng=np.random.default_rng(3))
    truth = contact.truth()
    agent_ms = len(talk[0]) // 8 + 32_000
    assert [(p["phase"], p["start_ms"], p["end_ms"]) for p in truth["phases"]] == [
        ("ivr", 0, 38_000), ("queue", 38_000, 108_000), ("agent", 108_000, 108_000 + agent_ms),
        ("after", 108_000 + agent_ms, 116_000 + agent_ms)]
    (hold,) = truth["holds"]
    assert hold["end_ms"] - hold["start_ms"] == 32_000 and abs(hold["start_ms"] - 108_000 - 25_000) <= 5000
    assert (truth["hold_count_ctr"], truth["hold_ms_ctr"]) == (1, 32_000)
    for channel in (contact.customer, contact.agent):  # nobody speaks in the 200 ms either side
        assert np.abs(channel[hold["start_ms"] * 8 - 1600:hold["start_ms"] * 8]).max() < 300
        assert np.abs(channel[hold["end_ms"] * 8:hold["end_ms"] * 8 + 1600]).max() < 300
    before = np.concatenate([contact.customer[108_000 * 8:hold["start_ms"] * 8],
                             contact.customer[hold["end_ms"] * 8:(108_000 + agent_ms) * 8]])
    assert np.array_equal(before, talk[0])  # the conversation itself, unchanged around the hold


def dtmf_key(window: np.ndarray) -> str | None:
    """The key whose row and column tones carry nearly all of the window's energy, if any."""
    power = np.abs(np.fft.rfft(window * np.hanning(len(window)))) ** 2
    freqs = np.fft.rfftfreq(len(window), 1 / 8000)
    for key, tones in contact_flow.DTMF.items():
        near = np.any([np.abs(freqs - f) <= 20 for f in tones], axis=0)
        if power[near].sum() > 0.9 * power.sum():
            return key
    return None


def test_the_ivr_caller_answers_a_prompt_by_dtmf_keys_and_the_next_by_voice():
    customer, agent = contact_flow.ivr_audio(12 * 8000, conversation.load_clips(), np.random.default_rng(0))
    loud = [customer[i:i + 800].astype(np.float64) for i in range(0, len(customer) - 800, 160)
            if np.abs(customer[i:i + 800].astype(np.int32)).max() > 3000]
    keys = [dtmf_key(w) for w in loud]
    assert {k for k in keys if k} and None in keys  # tones of real keys, and a spoken answer
    assert np.abs(agent.astype(np.int32)).max() > 3000  # the prompts


@pytest.mark.parametrize("name", sorted(contact_flow.SHAPES))
def test_no_channel_of_any_shape_is_ever_digitally_silent(name):
    shape = contact_flow.SHAPES[name]
    clips = conversation.load_clips()
    talk = contact_flow.whole_ms(*conversation.synthesise(random.Random(5), clips, min_seconds=20))
    contact = contact_flow.build(shape, talk if shape.agent else None, contact_id="c",
                                 staff=contact_flow.staffing(shape, 0), clips=clips,
                                 rng=np.random.default_rng(5))
    for channel in (contact.customer, contact.agent):
        frames = channel[:len(channel) // 160 * 160].reshape(-1, 160)
        peaks = np.abs(frames.astype(np.int32)).max(axis=1)
        assert peaks.min() > 0  # no 20 ms without a sample of line noise
        assert peaks.min() <= contact_flow.NOISE_LSB  # and the line's floor is that faint
