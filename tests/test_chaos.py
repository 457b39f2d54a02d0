"""A hostile night lands whole: with every KVS fault on and some calls past retention, every call
in retention lands in calls with its exact audio, every expired call fails as outside_retention,
nothing is lost or doubled, and a second run (meeting other faults) writes the same bytes."""
from __future__ import annotations

import pytest

from pipeline.run import run
from runners.local.chaos import hostile_night


@pytest.mark.long
def test_a_hostile_night_lands_whole_and_twice_the_same(s3_server, tmp_path):
    report = hostile_night(tmp_path, s3_server, run, connect_calls=5, chime_calls=5, call_seconds=20,
                           expired=2, seed=3, extra_args=("--max_attempts=10",))
    assert report.seeded == 10 and report.expired == 2
    assert report.kept_in_calls == 8 and report.in_calls == 8
    assert report.failures_by_reason == {"outside_retention": 2}
    assert report.expired_as_outside_retention == 2
    assert (report.duplicates, report.lost, report.wrong_pcm) == (0, 0, 0)
    assert report.identical_reruns


@pytest.mark.long
def test_calls_partly_past_retention_fail_as_outside_retention_not_as_lost_media(s3_server, tmp_path):
    """The retention start falls inside the last expired call: its record's start fragment is asked
    for, KVS answers FRAGMENT_NOT_FOUND in-band, and the stream's DataRetentionInHours against the
    answer's Date says why (the operator ran too late), while its later fragments still come."""
    report = hostile_night(tmp_path, s3_server, run, connect_calls=4, chime_calls=4, call_seconds=20,
                           expired=3, seed=5, extra_args=("--max_attempts=10",), partly=True)
    assert report.kept_in_calls == report.in_calls == report.seeded - report.expired
    assert report.failures_by_reason == {"outside_retention": report.expired}
    assert report.expired_as_outside_retention == report.expired >= 3
    assert (report.duplicates, report.lost, report.wrong_pcm) == (0, 0, 0)
    assert report.identical_reruns
