"""The local world looks like production from the outside: real key layouts, real HTTP, real bytes."""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess

import numpy as np

from runners.local import mkv_writer
from tests.conftest import require_tool

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
    stream = call["streams"][0]
    body = world.kvs_client().get_media_for_fragment_list(
        StreamARN=stream["stream_arn"], Fragments=stream["fragments"])["Payload"].read()
    (tmp_path / "body.mkv").write_bytes(body)
    # mkvmerge id 0 is TrackNumber 1: AUDIO_TO_CUSTOMER when that track comes first.
    to_id, from_id = (0, 1) if stream["to_customer_first"] else (1, 0)
    done = subprocess.run(["mkvextract", str(tmp_path / "body.mkv"), "tracks",
                           "--raw", f"{from_id}:{tmp_path / 'from.pcm'}",
                           "--raw", f"{to_id}:{tmp_path / 'to.pcm'}"], capture_output=True)
    assert done.returncode in (0, 1), done.stderr  # 1 = warnings about the chained Segments
    for channel, name in ((0, "from.pcm"), (1, "to.pcm")):
        pcm = (tmp_path / name).read_bytes()
        assert len(pcm) // 2 == call["channels"][channel]["samples"]
        assert hashlib.sha256(pcm).hexdigest() == call["channels"][channel]["sha256"]


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
