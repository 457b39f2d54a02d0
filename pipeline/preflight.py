"""What ``voicelake run`` (and, for its engine, ``voicelake export``) refuses before Beam starts.

Each refusal is a ValueError whose message is the one line the operator reads: it names the option
and, for S3, the bucket or the missing credentials; for KVS, the endpoint or region and what KVS
said.  The checks take seconds and import no Beam: a run that cannot read its inputs, write its
lake or reach KVS stops before it starts workers, and writes nothing.
"""
from __future__ import annotations

import argparse
import os

from pipeline.options import PREFIX_OPTIONS


class NoRecords(Exception):
    """--require_records, and there is nothing to read."""


def check_engine_versions(argv: list[str]) -> None:
    """A job-server jar of a Beam release nobody measured with this SDK fails late and obscurely:
    refuse it in one line, before anything else is checked or started (no Beam import needed)."""
    from runners.engines import check_job_server_jar

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in ("flink_job_server_jar", "spark_job_server_jar"):
        parser.add_argument(f"--{name}")
    given = vars(parser.parse_known_args(argv)[0])
    for name in ("flink_job_server_jar", "spark_job_server_jar"):
        if given.get(name):
            problem = check_job_server_jar(given[name])
            if problem:
                raise ValueError(problem)


def s3_problem(exc: Exception, option: str, location: str, bucket: str) -> str | None:
    """One line for the S3 errors an operator can fix, naming the option and the bucket."""
    import botocore.exceptions as be

    if isinstance(exc, be.NoCredentialsError):
        return (f"no AWS credentials to read {option}={location}: set AWS_PROFILE, or "
                f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance role")
    if isinstance(exc, be.EndpointConnectionError):
        return f"cannot reach S3 to read {option}={location}: {exc}"
    if isinstance(exc, be.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404"):
            return f"{option}={location}: bucket {bucket!r} does not exist"
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return (f"{option}={location}: access denied to bucket {bucket!r} (the credentials in "
                    f"use may not list or write it)")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return f"the AWS credentials in use were refused ({code}) reading {option}={location}"
        return f"{option}={location}: S3 answered {code or 'an error'}: {exc}"
    return None


def input_is_empty(option: str, location: str) -> bool:
    """True when a record prefix holds no objects at all; ValueError naming the problem if it cannot
    be read (missing bucket, credentials)."""
    from voicelake import storage

    if not storage.is_s3(location):
        return not (os.path.isdir(location) and any(files for _, _, files in os.walk(location)))
    bucket, prefix = storage.split_s3(location)
    try:
        listing = storage.s3().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except Exception as exc:
        problem = s3_problem(exc, option, location, bucket)
        if problem:
            raise ValueError(problem) from exc
        raise
    return listing.get("KeyCount", 0) == 0


def check_output(location: str) -> None:
    from voicelake import storage

    if not storage.is_s3(location):
        return
    bucket, _ = storage.split_s3(location)
    try:
        storage.s3().head_bucket(Bucket=bucket)
    except Exception as exc:
        problem = s3_problem(exc, "--output", location, bucket)
        if problem:
            raise ValueError(problem) from exc
        raise


def check_inputs(opts) -> list[str]:
    """Refuse what cannot work in one line, before Beam starts; return warnings for empty prefixes."""
    from voicelake import storage

    given = [(f"--{name}", getattr(opts, name)) for name, _ in PREFIX_OPTIONS if getattr(opts, name)]
    if not opts.output:
        raise ValueError("--output is required: the lake's root, s3://bucket/prefix or a local path")
    if not given:
        raise ValueError("give at least one of --ctr_prefix, --sdr_prefix, --events_prefix")
    for option, location in [*given, ("--output", opts.output)]:
        try:
            storage.is_s3(location)
        except ValueError as exc:
            raise ValueError(f"{option}={location}: {exc}") from None
    check_output(opts.output)
    warnings = [f"{option}={location} holds no objects" for option, location in given
                if input_is_empty(option, location)]
    if warnings and opts.require_records:
        raise NoRecords("; ".join(warnings) + " (--require_records)")
    return warnings


# The KVS check: one control-plane call, which must fail in seconds when nothing answers (the
# pipeline's own clients wait 10 s to connect and 120 s to read, and retry for half an hour).
KVS_CONNECT_TIMEOUT_S = 3
KVS_READ_TIMEOUT_S = 10
KVS_ATTEMPTS = 2
KVS_ENDPOINT_ENV = "VOICELAKE_KVS_ENDPOINT_URL"  # what KvsArchive falls back on, as the run does
CREDENTIALS_REFUSED = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignatureException",
    "IncompleteSignature", "SignatureDoesNotMatch", "ExpiredTokenException", "ExpiredToken",
    "InvalidClientTokenId", "InvalidToken", "RequestExpired", "MissingAuthenticationTokenException"})
NOT_AUTHORIZED = frozenset({"AccessDeniedException", "AccessDenied", "NotAuthorizedException", "403"})


def kvs_target(opts) -> tuple[str | None, str, str]:
    """(endpoint URL or None for AWS's, region, how the one line names them): what the pipeline's
    KvsArchive uses for the same options and environment."""
    endpoint = opts.kvs_endpoint_url or os.environ.get(KVS_ENDPOINT_ENV) or None
    region = opts.kvs_region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if opts.kvs_endpoint_url:
        where = f"--kvs_endpoint_url={endpoint}"
    elif endpoint:
        where = f"{KVS_ENDPOINT_ENV}={endpoint} (no --kvs_endpoint_url given)"
    elif opts.kvs_region:
        where = f"--kvs_region={region}"
    elif os.environ.get("AWS_DEFAULT_REGION"):
        where = f"AWS_DEFAULT_REGION={region} (no --kvs_region given)"
    else:
        where = f"{region} (no --kvs_region given)"
    return endpoint, region, where


def kvs_problem(exc: Exception, endpoint: str | None, region: str, where: str) -> str | None:
    """One line for what stops a run from calling KVS, naming the endpoint or region (None: not
    one of those)."""
    import boto3
    import botocore.exceptions as be

    from voicelake.media.kvs_client import error_code

    if isinstance(exc, be.NoCredentialsError):
        return (f"no AWS credentials to call KVS at {where}: set AWS_PROFILE, or AWS_ACCESS_KEY_ID "
                f"and AWS_SECRET_ACCESS_KEY, or run with an instance role")
    if isinstance(exc, be.InvalidRegionError):
        return f"{where}: not a region name, e.g. us-east-1"
    if isinstance(exc, (be.ConnectionError, be.HTTPClientError)):
        if endpoint is None:
            session = boto3.session.Session()
            known = {r for partition in session.get_available_partitions()
                     for r in session.get_available_regions("kinesisvideo", partition)}
            if region not in known:
                return f"{where}: not a region with Kinesis Video Streams ({exc})"
        return f"cannot reach KVS at {where}: {exc}"
    if isinstance(exc, be.ClientError):
        code = error_code(exc) or ""
        if code in NOT_AUTHORIZED:
            return (f"{where}: access denied ({code}): the credentials in use may not call "
                    f"kinesisvideo:ListStreams in {region}")
        if code in CREDENTIALS_REFUSED:
            return f"the AWS credentials in use were refused ({code}) calling KVS at {where}"
        return f"{where}: KVS answered {code or 'an error'} to ListStreams: {exc}"
    if isinstance(exc, be.BotoCoreError):  # a profile that does not exist, a broken config...
        return f"cannot call KVS at {where}: {exc}"
    return None


def check_kvs(opts) -> None:
    """Every run with a record prefix (but --from_lake) fetches its audio from KVS: one ListStreams (MaxResults=1)
    with the run's credentials, region and endpoint shows that the control plane answers them.
    Refuses in one line (a ValueError) when it does not: no credentials, nothing listening, the
    credentials refused or not allowed kinesisvideo:ListStreams, an unknown region.  A throttled
    or 5xx answer passes: KVS is there, and the run's own retries outwait it."""
    if not any(getattr(opts, name) for name, _ in PREFIX_OPTIONS) or getattr(opts, "from_lake", False):
        return  # no records, or a re-analysis from the lake's own audio: no KVS call at all
    import boto3
    import botocore.config
    import botocore.exceptions

    from voicelake.media.kvs_client import is_retryable

    endpoint, region, where = kvs_target(opts)
    config = botocore.config.Config(
        connect_timeout=KVS_CONNECT_TIMEOUT_S, read_timeout=KVS_READ_TIMEOUT_S,
        retries={"total_max_attempts": KVS_ATTEMPTS, "mode": "standard"})
    try:
        # made as voicelake.media.kvs_client.shared_client makes the run's, but not shared with
        # them: they keep their own timeouts
        client = boto3.session.Session().client("kinesisvideo", endpoint_url=endpoint,
                                                region_name=region, config=config)
        client.list_streams(MaxResults=1)
    except Exception as exc:
        if isinstance(exc, botocore.exceptions.ClientError) and is_retryable(exc):
            return
        problem = kvs_problem(exc, endpoint, region, where)
        if problem:
            raise ValueError(problem) from exc
        raise
