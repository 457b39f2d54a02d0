"""The KVS client's streamed GetMediaForFragmentList against the emulator over real HTTP: every
fragment arrives once and whole, or is reported; a body cut cleanly between two blocks is caught by
the listing, never kept as a whole fragment."""
from __future__ import annotations

import random

import numpy as np
import pytest

from runners.local import mkv_writer
from runners.local.kvs_emulator import Faults, simple_block_ends, start_emulator
from runners.local.kvs_store import KvsStore
from voicelake.media import mkv_parser
from voicelake.media.kvs_client import KvsArchive, KvsError, ListedFragment, RetryPolicy

T0 = 1_700_000_000_000
BLOCKS_PER_FRAGMENT = 50  # 1 s of Chime audio in 20 ms blocks


def seeded(store: KvsStore, count: int) -> dict[str, bytes]:
    """A stream of ``count`` one-second fragments; fragment number -> its PCM."""
    store.create_stream("leg", creation_ms=T0 - 3_600_000)
    rng = np.random.default_rng(5)
    pcm = {}
    for i in range(count):
        data = rng.integers(-2000, 2000, BLOCKS_PER_FRAGMENT * 160, dtype=np.int16).tobytes()
        t = T0 + i * 1000
        fragment = store.put_fragment(
            "leg", producer_ms=t, server_ms=t, duration_ms=1000,
            make_chunk=lambda number, t=t, data=data: mkv_writer.chime_fragment(
                fragment_number=number, producer_ms=t, server_ms=t, transaction_id="tx",
                voice_connector_id="vc", call_id="call", pcm=data))
        pcm[fragment.number] = data
    return pcm


@pytest.fixture(autouse=True)
def credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def store(tmp_path) -> KvsStore:
    return KvsStore(tmp_path / "kvs")


def archive(emulator, **retry) -> KvsArchive:
    policy = RetryPolicy(sleep=lambda s: None, rng=random.Random(0), **retry)
    return KvsArchive(endpoint_url=emulator.url, region="us-east-1", retry=policy)


def listing(client: KvsArchive) -> list[ListedFragment]:
    return client.list_fragments(client.stream_arns("leg")[0], T0 - 1000, T0 + 60_000)


def received(fetch) -> dict[str, bytes]:
    return {f.fragment_number: b"".join(t.pcm() for t in f.tracks.values()) for f in fetch}


def test_a_block_cut_ends_the_body_cleanly_between_two_simple_blocks(store, tmp_path):
    seeded(store, 1)
    chunk = store.read_chunk("leg", store.fragments("leg")[0])
    ends = simple_block_ends(chunk)
    assert len(ends) == BLOCKS_PER_FRAGMENT and ends[-1] <= len(chunk)
    cut = mkv_parser.parse_bytes(chunk[:ends[10]])  # ...which the parser alone takes as whole
    assert not cut[0].truncated and len(cut[0].tracks["AUDIO"].blocks) == 11


def test_bodies_cut_between_blocks_are_refetched_until_every_fragment_is_whole(store):
    pcm = seeded(store, 30)
    with start_emulator(store.root, tps_limit=None, now_ms=T0 + 60_000,
                        faults=Faults(block_cut_probability=0.5, seed=11)) as kvs:
        client = archive(kvs, max_attempts=20)
        listed = listing(client)
        fetch = client.fetch_fragments(client.stream_arns("leg")[0], listed)
        assert received(fetch) == pcm
        assert fetch.missing == {} and fetch.attempts > 1


def test_a_fragment_that_always_ends_a_body_short_is_reported_missing_not_kept(store):
    seeded(store, 3)
    with start_emulator(store.root, tps_limit=None, now_ms=T0 + 60_000,
                        faults=Faults(block_cut_probability=1.0, seed=2)) as kvs:
        client = archive(kvs, max_attempts=3)
        listed = listing(client)
        fetch = client.fetch_fragments(client.stream_arns("leg")[0], listed)
        got = received(fetch)
    assert len(got) + len(fetch.missing) == 3 and fetch.missing
    # the last fragment of every body was cut short; fragments after the cut never came at all
    assert any("body ended" in why for why in fetch.missing.values())
    assert all("body ended" in why or why == "not in the response" for why in fetch.missing.values())
    assert all(len(data) == BLOCKS_PER_FRAGMENT * 320 for data in got.values())


def test_without_the_listing_a_clean_cut_cannot_be_told_and_the_fragment_is_taken(store):
    """Why the pipeline always passes ListFragments' answer to the fetch."""
    seeded(store, 1)
    with start_emulator(store.root, tps_limit=None, now_ms=T0 + 60_000,
                        faults=Faults(block_cut_probability=1.0, seed=2)) as kvs:
        client = archive(kvs)
        number = listing(client)[0].number
        got = received(client.fetch_fragments(client.stream_arns("leg")[0], [number]))
    assert len(got[number]) < BLOCKS_PER_FRAGMENT * 320


def test_transient_faults_are_retried_for_the_time_budget_then_name_the_fault(store):
    seeded(store, 2)
    clock = iter(range(0, 10_000, 7))  # seconds: every attempt takes 7 s of the budget
    with start_emulator(store.root, tps_limit=None, now_ms=T0 + 60_000,
                        faults=Faults(throttle_probability=1.0)) as kvs:
        client = archive(kvs)
        client.retry.budget_s, client.retry.clock = 60, lambda: next(clock)
        with pytest.raises(KvsError) as raised:
            listing(client)
    assert raised.value.reason == "throttled"
    assert "gave up after" in raised.value.detail and "in 60 s" in raised.value.detail


def test_a_listed_fragment_past_retention_when_fetched_is_named_expired_with_the_retention(store):
    """Listed while in retention, gone when asked for: KVS answers FRAGMENT_NOT_FOUND in-band, and
    the stream's DataRetentionInHours against the answer's Date names it expired, by how much."""
    seeded(store, 3)
    with start_emulator(store.root, tps_limit=None, now_ms=T0 + 60_000) as emulator:
        client = archive(emulator, max_attempts=1)
        listed = listing(client)
    # the same store, served 24 h + 0.5 s after the first fragment: retention (24 h) took the first
    with start_emulator(store.root, tps_limit=None, now_ms=T0 + 24 * 3_600_000 + 500) as emulator:
        client = archive(emulator, max_attempts=1)
        fetch = client.fetch_fragments(client.stream_arns("leg")[0], listed)
        got = received(fetch)
    first, *rest = [f.number for f in listed]
    assert sorted(got) == sorted(rest)
    reason = fetch.missing[first]
    assert reason.startswith("outside_retention: ingested 24.0 h before KVS answered")
    assert "past the stream's DataRetentionInHours=24" in reason
