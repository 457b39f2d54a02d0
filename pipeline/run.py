"""``voicelake run``: the nightly job for a date or a date range, on any Beam runner.

What an operator sees: a progress line every ``--progress_interval`` seconds (voicelake.progress),
warnings when an input prefix holds nothing or the run reads no records, errors in one or two lines
that name the option, bucket or prefix, and the summary.  Everything else (Beam's and the workers'
output, tracebacks) goes to the log file, whose path every error prints.  Beam is imported only to
run: ``--help`` prints without it.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import re
import resource
import shutil
import sys
import tempfile
import textwrap
import time

from pipeline.options import REQUIRED, VoicelakeArguments, run_dates
from voicelake import layout

DEFAULT_RUNNER = "FnApiRunner"  # DirectRunner would first try Prism, which ignores our worker mode
RUNNER_FLAGS = ("--runner", "--direct_running_mode", "--direct_num_workers")


def machine_runner(argv: list[str]) -> list[str]:
    """What ``voicelake run`` adds when it is given no runner flag: the FnApiRunner with one worker
    process per core of this machine, not Beam's in-process default, which uses one core."""
    if any(a.split("=", 1)[0] in RUNNER_FLAGS for a in argv):
        return []
    return [f"--runner={DEFAULT_RUNNER}", "--direct_running_mode=multi_processing",
            f"--direct_num_workers={os.cpu_count() or 1}"]


def execution(options) -> dict:
    """The runner a run uses, and for the local FnApiRunner its mode and worker processes."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    runner = options.view_as(StandardOptions).runner
    out = {"runner": runner}
    if runner in (DEFAULT_RUNNER, "DirectRunner"):
        direct = options.view_as(DirectOptions)
        out["running_mode"] = direct.direct_running_mode
        if direct.direct_running_mode != "in_memory":
            out["workers"] = direct.direct_num_workers or os.cpu_count() or 1
    return out


def describe_execution(run_: dict) -> str:
    if "workers" in run_:
        return f"{run_['runner']}, {run_['workers']} worker processes ({run_['running_mode']})"
    if run_.get("running_mode"):
        return f"{run_['runner']}, in this process ({run_['running_mode']})"
    return run_["runner"]
PREFIX_OPTIONS = (("ctr_prefix", "ctr"), ("sdr_prefix", "sdr"), ("events_prefix", "event"))
EXIT_USAGE, EXIT_FAILED, EXIT_NO_RECORDS = 2, 1, 3
log = logging.getLogger("voicelake.run")


class NoRecords(Exception):
    """--require_records, and there is nothing to read."""


def help_text() -> str:
    from schemas.tables import TABLES

    tables = ", ".join(f"{name}/" for name in TABLES)
    parser = argparse.ArgumentParser(
        prog="voicelake run",
        usage="voicelake run --date=YYYY-MM-DD --output=ROOT [--ctr_prefix=...] [--sdr_prefix=...] "
              "[--events_prefix=...] [options] [Beam options]",
        description=textwrap.fill(
            "Read Chime SDRs / streaming events and Connect CTRs for the given UTC days, fetch "
            "each call's audio from Kinesis Video Streams, and write the lake: Parquet tables "
            f"{tables} and WAV under audio/, Hive-partitioned by date and voice_connector_id, and "
            "the run's summary under _runs/<date>/summary.json.", 80)
        + "\n\nrequired:\n" + "".join(f"  {item}\n" for item in REQUIRED),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
               "  voicelake run --date=2024-05-14 --ctr_prefix=s3://ctr-bucket/ \\\n"
               "    --sdr_prefix=s3://chime-records/ --events_prefix=s3://chime-events/ \\\n"
               "    --output=s3://lake-bucket/voicelake --kvs_region=us-east-1\n\n"
               "Any Apache Beam pipeline option is accepted too, in Beam's spelling, e.g.\n"
               "--runner=PrismRunner, --runner=FlinkRunner --flink_master=[local] --parallelism=2,\n"
               "--direct_running_mode=multi_processing --direct_num_workers=2. With no runner flag\n"
               "it runs on FnApiRunner with one worker process per core. S3 is reached with the\n"
               "standard AWS configuration (environment, profile or role; AWS_ENDPOINT_URL_S3 for\n"
               "an S3-compatible server).\n\n"
               "exit status: 0 done (warnings included), 1 the run failed, 2 a bad option or input\n"
               "location, 3 no records with --require_records.")
    VoicelakeArguments._add_argparse_args(parser)
    return parser.format_help()


def summarise(result, dates: list[str]) -> dict:
    """Beam metrics of a finished run as one flat, deterministic dictionary."""
    from apache_beam.metrics.metric import MetricsFilter

    counters = {}
    for c in result.metrics().query(MetricsFilter())["counters"]:
        namespace = c.key.metric.namespace
        if not namespace.startswith("voicelake"):
            continue
        value = c.committed if c.committed is not None else c.attempted
        name = f"{namespace.removeprefix('voicelake.')}.{c.key.metric.name}"
        counters[name] = counters.get(name, 0) + int(value or 0)
    failures = {k.split(".", 1)[1]: v for k, v in counters.items() if k.startswith("failures.")}
    return {
        "dates": dates,
        "records": counters.get("records.records", 0),
        "records_by_source": {kind: counters.get(f"records.{kind}_records", 0)
                              for _, kind in PREFIX_OPTIONS},
        "calls": counters.get("analyse.calls", 0),
        "partial_calls": counters.get("lake.partial_calls", 0),
        "failed": sum(failures.values()),
        "failures_by_reason": dict(sorted(failures.items())),
        "fragments": counters.get("media.fragments", 0),
        "foreign_fragments": counters.get("media.foreign_fragments", 0),
        "missing_fragments": counters.get("media.missing_fragments", 0),
        "bytes_fetched": counters.get("media.bytes_fetched", 0),
        "audio_seconds": round(counters.get("analyse.audio_ms", 0) / 1000, 3),
        "counters": dict(sorted(counters.items())),
    }


def written_partitions(output: str, dates: list[str]) -> dict[str, list[tuple[str, str]]]:
    """The (date, voice_connector_id) partitions holding files after the run: exactly what it wrote,
    since the run removed whatever an earlier run had left under its dates."""
    from schemas.tables import TABLES
    from voicelake import storage

    found: dict[str, list[tuple[str, str]]] = {}
    for table in TABLES:
        for date in dates:
            places = [layout.partition_of(output, p)
                      for p in storage.list_paths(layout.table_files(output, table, date))]
            found.setdefault(table, []).extend((p.date, p.partition) for p in places if p)
    return {table: sorted(set(pairs)) for table, pairs in found.items()}


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


# ---- inputs, before Beam starts -------------------------------------------------------------------

def _s3_problem(exc: Exception, option: str, location: str, bucket: str) -> str | None:
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
        problem = _s3_problem(exc, option, location, bucket)
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
        problem = _s3_problem(exc, "--output", location, bucket)
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


# ---- the run ----------------------------------------------------------------------------------

def progress_folder(opts, dates: list[str]) -> tuple[str, bool]:
    """(folder for the workers' progress files, whether it is a temporary one of this machine)."""
    from voicelake import storage

    if opts.progress_dir:
        return opts.progress_dir, False
    if storage.is_s3(opts.output):
        return layout.progress_dir(opts.output, dates), False
    return tempfile.mkdtemp(prefix="voicelake-progress-"), True


def _cpu_seconds() -> float:
    """CPU of this process and of the worker processes it started (local runners)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def voicelake_options(argv: list[str]) -> argparse.Namespace:
    """The voicelake options alone, without Beam: checked before Beam is imported (seconds)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    VoicelakeArguments._add_argparse_args(parser)
    return parser.parse_known_args(argv)[0]


def run(argv: list[str], *, progress=None, log_file: str | None = None, engine: str | None = None) -> dict:
    """Run the pipeline; ``progress`` (a function taking one line) gets the progress lines;
    ``engine`` (``voicelake demo --engine``) is only recorded in the summary."""
    started, cpu_before = time.monotonic(), _cpu_seconds()
    given = voicelake_options(argv)
    dates = run_dates(given)
    label = layout.run_label(dates)
    check_engine_versions(argv)
    warnings = check_inputs(given)
    for warning in warnings:
        log.warning("voicelake run %s: %s", label, warning)

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from pipeline import graph
    from pipeline.options import VoicelakeOptions
    from voicelake import progress as heartbeat
    from voicelake import storage

    options = PipelineOptions(argv)
    if not options.view_as(StandardOptions).runner:
        options.view_as(StandardOptions).runner = DEFAULT_RUNNER
    opts = options.view_as(VoicelakeOptions)
    runs_on = execution(options)
    if progress:
        progress(f"voicelake run {label}: running on {describe_execution(runs_on)}")
    pipeline = beam.Pipeline(options=options)
    if not progress:  # nobody reads progress lines: no heartbeat either
        graph.build(pipeline, opts)
        result = pipeline.run()
        result.wait_until_finish()
    else:
        folder, temporary = progress_folder(opts, dates)
        storage.delete(storage.list_paths(f"{folder.rstrip('/')}/*.json"))  # an earlier run's counts
        with heartbeat.recording(folder):
            graph.build(pipeline, opts)
        try:
            with heartbeat.Reporter(folder, label, progress, opts.progress_interval):
                result = pipeline.run()
                result.wait_until_finish()
        finally:
            heartbeat.finish_local(folder)
            if temporary:
                shutil.rmtree(folder, ignore_errors=True)
    summary = summarise(result, dates)
    if summary["records"] == 0:
        warnings.append(f"no records were read for {', '.join(dates)}")
        log.warning("voicelake run %s: %s", label, warnings[-1])
    summary["warnings"] = warnings
    wall, cpu = time.monotonic() - started, _cpu_seconds() - cpu_before
    from schemas import athena

    try:
        partitions_sql = athena.add_partitions(athena.location_uri(opts.output), "voicelake",
                                               written_partitions(opts.output, dates))
        storage.write_bytes(layout.partitions_sql_path(opts.output, dates), ("\n\n".join(partitions_sql) + "\n").encode())
    except ValueError as exc:  # a lake path DDL cannot quote: the lake itself is fine
        warnings.append(f"{layout.partitions_sql_path(opts.output, dates)} not written: {exc}")
        log.warning("voicelake run %s: %s", label, warnings[-1])
    summary["run"] = {
        # which runner wrote this day: lakes are byte-identical across runners, the run log says which
        **runs_on,
        **({"engine": engine} if engine else {}),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),  # this machine's processes only: not remote workers
        "audio_hours_per_cpu_hour": round(summary["audio_seconds"] / cpu, 1) if cpu > 0 else None,
        "lake": opts.output,
        "summary": layout.summary_path(opts.output, dates),
        "partitions": layout.partitions_sql_path(opts.output, dates),
        "log": log_file,
    }
    storage.write_bytes(layout.summary_path(opts.output, dates),
                (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode())
    if summary["records"] == 0 and opts.require_records:
        raise NoRecords(f"no records were read for {', '.join(dates)} (--require_records); the "
                        f"summary is at {summary['run']['summary']}")
    return summary


def print_summary(summary: dict, out=sys.stdout) -> None:
    print(f"voicelake run {', '.join(summary['dates'])}: {summary['calls']} calls, "
          f"{summary['failed']} failures, {summary['fragments']} fragments "
          f"({summary['foreign_fragments']} of other calls skipped), "
          f"{summary['bytes_fetched'] / 1e6:.1f} MB fetched, {summary['audio_seconds']:.0f} s of audio",
          file=out)
    by_source = ", ".join(f"{n} {kind}" for kind, n in summary["records_by_source"].items())
    print(f"  records read: {summary['records']} ({by_source}); partial calls: "
          f"{summary['partial_calls']}", file=out)
    for reason, n in summary["failures_by_reason"].items():
        print(f"  failures[{reason}] = {n}", file=out)
    for warning in summary.get("warnings", []):
        print(f"  warning: {warning}", file=out)
    run_ = summary.get("run")
    if run_:
        print(f"  wall time {run_['wall_seconds']:.1f} s, {run_['cpu_seconds']:.1f} CPU s on this "
              f"machine ({describe_execution(run_)})", file=out)
        print(f"  lake: {run_['lake']}", file=out)
        print(f"  summary: {run_['summary']}", file=out)
        print(f"  partitions: {run_['partitions']} (ALTER TABLE ... ADD PARTITION for what it wrote)",
              file=out)
        if run_["log"]:
            print(f"  log: {run_['log']}", file=out)


# ---- the command ------------------------------------------------------------------------------

def default_log_file() -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return os.path.join(tempfile.gettempdir(), f"voicelake-run-{stamp}-{os.getpid()}.log")


def _option_value(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


@contextlib.contextmanager
def stderr_to(path: str):
    """This process's and its worker processes' stderr (fd 2) into a file: Beam and its workers
    write there directly, not only through logging.  Yields a stream on the terminal's stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)
    with open(path, "ab") as log_:
        os.dup2(log_.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            terminal.close()


def configure_logging(log_file: str, terminal) -> None:
    """Everything to the log file; voicelake's own lines (progress, warnings) to the terminal."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    to_file = logging.FileHandler(log_file)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_terminal = logging.StreamHandler(terminal)
    # tracebacks (exc_info) stay in the file: the terminal gets the one-line message after them
    to_terminal.addFilter(lambda record: record.name.startswith("voicelake") and not record.exc_info)
    to_terminal.setFormatter(logging.Formatter("%(message)s"))
    root.handlers[:] = [to_file, to_terminal]


def one_line(exc: BaseException) -> str:
    """The innermost error of a failed run in one line: Beam wraps a worker's exception in a
    RuntimeError whose text holds the whole remote traceback, the last line of which names it."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    named = text if ":" in text.split(" ", 1)[0] else f"{type(exc).__name__}: {text}"
    # worker processes wrap it once more: "RuntimeError: NotADirectoryError: ..."
    named = re.sub(r"^(?:RuntimeError: )+(?=[A-Za-z_.]*(?:Error|Exception|Exit): )", "", named)
    return named if len(named) <= 300 else named[:297] + "..."


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    log_file = os.path.abspath(_option_value(argv, "--log_file") or default_log_file())
    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    with stderr_to(log_file) as terminal:
        configure_logging(log_file, terminal)
        progress_log = logging.getLogger("voicelake.progress")
        try:
            summary = run([*argv, *machine_runner(argv)], progress=progress_log.info,
                          log_file=log_file)
        except NoRecords as exc:
            log.error("voicelake run: %s", exc)
            return EXIT_NO_RECORDS
        except ValueError as exc:  # an option or an input location: the message names it
            log.info("voicelake run refused", exc_info=True)
            log.error("voicelake run: %s\n  (log: %s)", exc, log_file)
            return EXIT_USAGE
        except Exception as exc:
            log.error("voicelake run failed", exc_info=True)
            log.error("voicelake run failed: %s\n  the traceback and the workers' output are in %s",
                      one_line(exc), log_file)
            return EXIT_FAILED
    print_summary(summary)
    return 0
