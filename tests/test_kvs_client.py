"""The KVS client's own rules, as pure functions: pacing, backoff, what is retried, fragment ranges."""
from __future__ import annotations

import random

import botocore.exceptions
import pytest

from pipeline.options import VoicelakeOptions, run_dates
from transforms.fragment_ranges import clip_to_record, split_ranges
from voicelake.media.kvs_client import ListedFragment, RateLimiter, RetryPolicy, is_retryable
from voicelake.model import StreamSpan


def client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def test_a_stream_is_paced_to_five_requests_per_second_per_api():
    now, slept = [0.0], []
    limiter = RateLimiter(5, clock=lambda: now[0], sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)))
    for _ in range(6):
        limiter.wait(("stream-a", "LIST_FRAGMENTS"))
    limiter.wait(("stream-b", "LIST_FRAGMENTS"))  # another stream has its own budget
    assert [round(s, 3) for s in slept] == [0.2, 0.2, 0.2, 0.2, 0.2]


def test_backoff_is_full_jitter_capped_exponential():
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4, rng=random.Random(1))
    for attempt in range(8):
        assert 0 <= policy.delay(attempt) <= min(4, 0.5 * 2 ** attempt)


@pytest.mark.parametrize("error, retried", [
    (client_error("ClientLimitExceededException", 400), True),  # botocore itself never retries it
    (client_error("InternalFailure", 500), True),
    (client_error("ResourceNotFoundException", 404), False),
    (client_error("InvalidArgumentException", 400), False),
    (botocore.exceptions.ResponseStreamingError(error="reset"), True),
    (ConnectionResetError(), True),
])
def test_what_is_retried(error, retried):
    assert is_retryable(error) is retried


def fragments(*numbers: int) -> list[ListedFragment]:
    return [ListedFragment(str(n), 0, 0, 1000, 1) for n in numbers]


def test_record_fragment_numbers_clip_the_listed_window_as_integers():
    base = 91343852333181000000000000000000000000000000000
    listed = fragments(base + 9, base + 10, base + 11, base + 100)
    span = StreamSpan("arn", 0, 1, start_fragment=str(base + 10), stop_fragment=str(base + 11))
    assert [f.number for f in clip_to_record(listed, span)] == [str(base + 10), str(base + 11)]


def test_the_record_s_start_and_stop_fragments_are_asked_for_even_when_not_listed():
    base = 91343852333181000000000000000000000000000000000
    span = StreamSpan("arn", 0, 1, start_fragment=str(base + 5), stop_fragment=str(base + 40))
    clipped = clip_to_record(fragments(base + 10, base + 20), span)
    assert [f.number for f in clipped] == [str(base + n) for n in (5, 10, 20, 40)]


def test_ranges_hold_at_most_the_requested_number_of_fragments():
    chunks = split_ranges(fragments(*range(2500)), 1000)
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    with pytest.raises(ValueError):
        split_ranges(fragments(1), 1001)


def test_a_run_covers_a_date_or_an_inclusive_range():
    assert run_dates(VoicelakeOptions(["--date=2024-05-14"])) == ["2024-05-14"]
    assert run_dates(VoicelakeOptions(["--start_date=2024-02-28", "--end_date=2024-03-01"])) == [
        "2024-02-28", "2024-02-29", "2024-03-01"]
    with pytest.raises(ValueError):
        run_dates(VoicelakeOptions(["--start_date=2024-05-14", "--end_date=2024-05-13"]))


def test_a_job_server_jar_of_another_beam_release_is_refused_in_one_line():
    from pipeline.run import run

    with pytest.raises(ValueError, match="is Beam 2.70.0, but the Python SDK 2.77"):
        run(["--date=2024-05-14", "--output=/tmp/unused", "--ctr_prefix=/tmp/unused",
             "--flink_job_server_jar=/x/beam-runners-flink-2.2-job-server-2.70.0.jar"])
