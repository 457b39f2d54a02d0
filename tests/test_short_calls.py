"""Calls of a few seconds (1-7 fragments) keep every sample: the last fragment is never lost."""
from __future__ import annotations

import hashlib

import pytest

from pipeline.run import run
from runners.local.seed import WorldConfig
from tests.conftest import make_world
from tests.pipeline_runs import pipeline_args, raw_channels, table


@pytest.fixture(scope="module")
def short_world(tmp_path_factory, s3_server):
    w = make_world(tmp_path_factory.mktemp("short"), s3_server,
                   WorldConfig(call_seconds=0.5, bucket="world-short", seed=41))
    yield w
    w.kvs.stop()


def test_calls_of_a_few_seconds_land_whole(short_world, tmp_path):
    summary = run(pipeline_args(short_world, tmp_path))
    truth = short_world.truth.calls
    assert min(c["channels"][0]["samples"] for c in truth) < 4 * 8000
    assert sorted(r["call_id"] for r in table(tmp_path, "calls")) == sorted(c["call_id"] for c in truth)
    assert summary["calls"] == len(truth)
    for call in truth:
        wav = tmp_path / f"audio/date={call['date']}/voice_connector_id={call['partition_id']}/{call['call_id']}.8k.wav"
        got = [hashlib.sha256(c.astype("<i2").tobytes()).hexdigest() for c in raw_channels(wav)]
        assert got == [c["sha256"] for c in call["channels"]], call["call_id"]
