"""What ``voicelake run`` (and, for its engine, ``voicelake export``) refuses before Beam starts.

Each refusal is a ValueError whose message is the one line the operator reads: it names the option
and, for S3, the bucket or the missing credentials.  The checks take seconds and import no Beam: a
run that cannot read its inputs or write its lake stops before it starts workers.
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
