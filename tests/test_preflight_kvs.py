"""`voicelake run` refuses, before Beam starts and before it writes anything, a run whose KVS does not
answer: one ListStreams with the run's credentials, region and endpoint, and one line naming
--kvs_endpoint_url or --kvs_region and what went wrong.

The runs are the console command as an operator runs it (a subprocess), over real HTTP against the
local S3 server and the KVS emulator.
"""
from __future__ import annotations

import os
import socket
import time

import botocore.exceptions
import pytest

from pipeline.preflight import check_kvs, kvs_problem
from pipeline.run import voicelake_options
from runners.local.kvs_emulator import Faults, start_emulator
from tests.pipeline_runs import file_digests, pipeline_args
from tests.test_operator import no_aws_env, refused, voicelake, world_args


def nothing_listens() -> str:
    """A loopback URL whose port was free a moment ago: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_run_against_an_endpoint_where_nothing_listens_fails_in_seconds_and_writes_nothing(
        world, tmp_path):
    url, lake = nothing_listens(), tmp_path / "lake"
    env = {**os.environ, **world.s3.environment()}
    args = [a for a in world_args(world, lake) if not a.startswith("--kvs_endpoint_url")]
    started = time.monotonic()
    done = voicelake(*args, f"--kvs_endpoint_url={url}", env=env)
    took = time.monotonic() - started
    assert refused(done) == (f'voicelake run: cannot reach KVS at --kvs_endpoint_url={url}: Could '
                             f'not connect to the endpoint URL: "{url}/listStreams"')
    assert took < 30, took  # the command starts, checks S3, and gives up on KVS: no 30-minute retries
    assert not lake.exists()


def test_a_run_whose_credentials_may_not_list_streams_names_the_action_and_region_and_leaves_the_lake(
        world, tmp_path):
    lake = tmp_path / "lake"
    (lake / "calls").mkdir(parents=True)
    (lake / "calls" / "earlier.parquet").write_bytes(b"what an earlier run wrote")
    before = file_digests(lake)
    env = {**os.environ, **world.s3.environment()}
    args = [a for a in world_args(world, lake) if not a.startswith("--kvs_endpoint_url")]
    with start_emulator(world.root / "kvs", faults=Faults(deny_all=True)) as denying:
        done = voicelake(*args, f"--kvs_endpoint_url={denying.url}", "--kvs_region=eu-west-1",
                         env=env)
    assert refused(done) == (
        f"voicelake run: --kvs_endpoint_url={denying.url}: access denied (AccessDeniedException): "
        f"the credentials in use may not call kinesisvideo:ListStreams in eu-west-1")
    assert file_digests(lake) == before
    assert not (lake / "_runs").exists()


def test_a_run_with_local_records_and_no_credentials_is_refused_before_it_calls_kvs(world, tmp_path):
    records = tmp_path / "ctr"
    records.mkdir()
    (records / "object").write_text("{}")
    lake = tmp_path / "lake"
    done = voicelake("run", "--date=2024-05-14", f"--ctr_prefix={records}", f"--output={lake}",
                     f"--kvs_endpoint_url={world.kvs.url}", env=no_aws_env())
    assert refused(done) == (
        f"voicelake run: no AWS credentials to call KVS at --kvs_endpoint_url={world.kvs.url}: set "
        f"AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance role")
    assert not lake.exists()


def test_the_worlds_kvs_passes_the_check_and_answers_list_streams_as_botocore_models_it(world, tmp_path):
    check_kvs(voicelake_options(pipeline_args(world, tmp_path / "lake")))  # no refusal
    page = world.kvs_client("kinesisvideo").list_streams(MaxResults=1)
    assert len(page["StreamInfoList"]) == 1 and page["NextToken"]
    assert page["StreamInfoList"][0]["StreamARN"].startswith("arn:aws:kinesisvideo:")
    assert not (tmp_path / "lake").exists()


def test_a_run_without_record_prefixes_has_nothing_to_fetch_and_no_kvs_check(tmp_path):
    opts = voicelake_options([f"--output={tmp_path}", f"--kvs_endpoint_url={nothing_listens()}"])
    check_kvs(opts)


def client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "ListStreams")


@pytest.mark.parametrize("exc, line", [
    (client_error("UnrecognizedClientException", 400),
     "the AWS credentials in use were refused (UnrecognizedClientException) calling KVS at "
     "--kvs_region=us-east-1"),
    (client_error("ExpiredTokenException", 400),
     "the AWS credentials in use were refused (ExpiredTokenException) calling KVS at "
     "--kvs_region=us-east-1"),
    (client_error("NotAuthorizedException", 401),
     "--kvs_region=us-east-1: access denied (NotAuthorizedException): the credentials in use may "
     "not call kinesisvideo:ListStreams in us-east-1"),
    (botocore.exceptions.ConnectTimeoutError(endpoint_url="https://kinesisvideo.us-east-1.amazonaws.com/listStreams"),
     'cannot reach KVS at --kvs_region=us-east-1: Connect timeout on endpoint URL: '
     '"https://kinesisvideo.us-east-1.amazonaws.com/listStreams"'),
])
def test_what_kvs_or_the_network_answers_becomes_one_line_naming_the_region(exc, line):
    assert kvs_problem(exc, None, "us-east-1", "--kvs_region=us-east-1") == line


def test_a_region_with_no_kvs_is_named_as_such():
    exc = botocore.exceptions.EndpointConnectionError(
        endpoint_url="https://kinesisvideo.us-esat-1.amazonaws.com/listStreams")
    assert kvs_problem(exc, None, "us-esat-1", "--kvs_region=us-esat-1") == (
        '--kvs_region=us-esat-1: not a region with Kinesis Video Streams (Could not connect to the '
        'endpoint URL: "https://kinesisvideo.us-esat-1.amazonaws.com/listStreams")')
    with pytest.raises(ValueError, match=r"^--kvs_region=us east 1: not a region name, e\.g\. us-east-1$"):
        check_kvs(voicelake_options(["--ctr_prefix=/nowhere", "--kvs_region=us east 1"]))
