"""``voicelake run``: the nightly job for a date or a date range, on any Beam runner.

What an operator sees: a progress line every ``--progress_interval`` seconds (voicelake.progress),
warnings when an input prefix holds nothing or the run reads no records, errors in one or two lines
that name the option, bucket or prefix, and the summary.  Everything else (Beam's and the workers'
output, tracebacks) goes to the log file, whose path every error prints (pipeline.console).  What
cannot work is refused before Beam starts (pipeline.preflight).  Beam is imported only to run:
``--help`` prints without it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import textwrap
import time

from pipeline.console import (
    EXIT_FAILED,
    EXIT_NO_RECORDS,
    EXIT_USAGE,
    configure_logging,
    default_log_file,
    one_line,
    option_value,
    stderr_to,
)
from pipeline.options import DEFAULT_RUNNER, PREFIX_OPTIONS, REQUIRED, VoicelakeArguments, run_dates
from pipeline.preflight import NoRecords, check_engine_versions, check_inputs, check_kvs
from voicelake import layout

RUNNER_FLAGS = ("--runner", "--direct_running_mode", "--direct_num_workers")


MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas() -> bool:
    """Two glibc malloc arenas for this process and the worker processes it starts, unless the
    operator set MALLOC_ARENA_MAX.  glibc gives each thread that allocates an arena of its own
    (up to 8 per core) and keeps what an arena once held; the driver's and workers' gRPC threads
    then hold the high-water mark of every hand-over, which grew the driver's peak 1.37x from a
    2- to a 50-audio-hour night (1.22x with two arenas, benchmarks/big_night.py).  Workers read
    the variable when they start; this process is told through mallopt.  Elsewhere than glibc it
    does nothing."""
    import ctypes
    import ctypes.util

    arenas = os.environ.setdefault("MALLOC_ARENA_MAX", str(MALLOC_ARENAS))
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc and arenas.isdigit() and libc.mallopt(M_ARENA_MAX, int(arenas)) == 1)
    except (OSError, AttributeError):
        return False


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


log = logging.getLogger("voicelake.run")


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
               "exit status: 0 done (warnings and calls that keep an earlier landing included), 1 the\n"
               "run failed, 2 a bad option or input location or KVS refusing or not answering (nothing\n"
               "written), 3 no records with --require_records.")
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
        # calls this run did not land that keep what an earlier run landed, by the reason
        "kept_calls": counters.get("lake.kept_calls", 0),
        "kept_by_reason": {k.split(".", 1)[1]: v for k, v in sorted(counters.items()) if k.startswith("kept.")},
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
    check_kvs(given)
    for warning in warnings:
        log.warning("voicelake run %s: %s", label, warning)

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from pipeline import graph
    from pipeline.options import VoicelakeOptions
    from voicelake import lake_commit, storage
    from voicelake import progress as heartbeat

    options = PipelineOptions(argv)
    if not options.view_as(StandardOptions).runner:
        options.view_as(StandardOptions).runner = DEFAULT_RUNNER
    opts = options.view_as(VoicelakeOptions)
    runs_on = execution(options)
    if progress:
        progress(f"voicelake run {label}: running on {describe_execution(runs_on)}")
    root = storage.absolute(opts.output)
    lake_commit.recover(root)  # a commit an earlier run left under way comes first
    lake_commit.discard_scratch(root, dates)  # what a run of these dates left without committing
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
    lake_commit.commit(root, dates)  # the pipeline succeeded: its files come in at once
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
        storage.write_bytes(layout.partitions_sql_path(opts.output, dates),
                            ("\n\n".join(partitions_sql) + "\n").encode())
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
    if summary.get("kept_calls"):
        reasons = ", ".join(f"{n} {reason}" for reason, n in summary["kept_by_reason"].items())
        print(f"  kept from earlier runs: {summary['kept_calls']} calls ({reasons}): see failures.kept",
              file=out)
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

def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    log_file = os.path.abspath(option_value(argv, "--log_file") or default_log_file())
    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    with stderr_to(log_file) as terminal:
        configure_logging(log_file, terminal)
        progress_log = logging.getLogger("voicelake.progress")
        limit_malloc_arenas()
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
