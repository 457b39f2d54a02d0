"""A hostile night lands whole: with every KVS fault on and some calls past retention, every call
in retention lands in calls with its exact audio, every expired call fails as outside_retention,
nothing is lost or doubled, and a second run (meeting other faults) writes the same bytes."""
from __future__ import annotations

from pipeline.run import run
from runners.local.chaos import hostile_night


def test_a_hostile_night_lands_whole_and_twice_the_same(s3_server, tmp_path):
    report = hostile_night(tmp_path, s3_server, run, connect_calls=5, chime_calls=5, call_seconds=20,
                           expired=2, seed=3, extra_args=("--max_attempts=10",))
    assert report.seeded == 10 and report.expired == 2
    assert report.kept_in_calls == 8 and report.in_calls == 8
    assert report.failures_by_reason == {"outside_retention": 2}
    assert report.expired_as_outside_retention == 2
    assert (report.duplicates, report.lost, report.wrong_pcm) == (0, 0, 0)
    assert report.identical_reruns
