"""``voicelake run``: the nightly job for a date or a date range, on any Beam runner."""
from __future__ import annotations

import argparse
import logging
import json
import sys

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline import graph
from pipeline.options import VoicelakeOptions, run_dates
from transforms.lake_sink import join, write_bytes

DEFAULT_RUNNER = "FnApiRunner"  # DirectRunner would first try Prism, which ignores our worker mode


def help_text() -> str:
    parser = argparse.ArgumentParser(
        prog="voicelake run",
        description="Read Chime SDRs / streaming events and Connect CTRs for the given UTC days, "
                    "fetch each call's audio from Kinesis Video Streams, and write the lake: "
                    "Parquet tables calls/, channels/, segments/, failures/ and WAV under audio/, "
                    "Hive-partitioned by date and voice_connector_id.",
        epilog="Any Apache Beam pipeline option is accepted too, in Beam's spelling, e.g. "
               "--runner=FlinkRunner --flink_master=[local] --parallelism=2, "
               "--direct_running_mode=multi_processing --direct_num_workers=2. The default runner "
               "is FnApiRunner. S3 is reached with the standard AWS configuration (environment, "
               "profile or role; AWS_ENDPOINT_URL_S3 for an S3-compatible server).")
    VoicelakeOptions._add_argparse_args(parser)
    return parser.format_help()


def summarise(result, dates: list[str]) -> dict:
    """Beam metrics of a finished run as one flat, deterministic dictionary."""
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
        "calls": counters.get("analyse.calls", 0),
        "failed": sum(failures.values()),
        "failures_by_reason": dict(sorted(failures.items())),
        "fragments": counters.get("media.fragments", 0),
        "foreign_fragments": counters.get("media.foreign_fragments", 0),
        "missing_fragments": counters.get("media.missing_fragments", 0),
        "bytes_fetched": counters.get("media.bytes_fetched", 0),
        "audio_seconds": round(counters.get("analyse.audio_ms", 0) / 1000, 3),
        "counters": dict(sorted(counters.items())),
    }


def summary_path(output: str, dates: list[str]) -> str:
    label = dates[0] if len(dates) == 1 else f"{dates[0]}_{dates[-1]}"
    return join(output, "_runs", label, "summary.json")


def check_engine_versions(options: PipelineOptions) -> None:
    """A job-server jar of another Beam release fails late and obscurely: refuse it in one line."""
    from runners.engines import check_job_server_jar

    given = options.get_all_options()
    for name in ("flink_job_server_jar", "spark_job_server_jar"):
        if given.get(name):
            problem = check_job_server_jar(given[name])
            if problem:
                raise ValueError(problem)


def run(argv: list[str], engine: str | None = None) -> dict:
    """Run the job; ``engine`` (``voicelake demo --engine``) is only recorded in the summary."""
    options = PipelineOptions(argv)
    check_engine_versions(options)
    if not options.view_as(StandardOptions).runner:
        options.view_as(StandardOptions).runner = DEFAULT_RUNNER
    opts = options.view_as(VoicelakeOptions)
    dates = run_dates(opts)
    pipeline = beam.Pipeline(options=options)
    graph.build(pipeline, opts)
    result = pipeline.run()
    result.wait_until_finish()
    summary = summarise(result, dates)
    # which runner wrote this day: lakes are byte-identical across runners, the run log says which ran
    summary["runner"] = options.view_as(StandardOptions).runner
    if engine:
        summary["engine"] = engine
    write_bytes(summary_path(opts.output, dates),
                (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode())
    return summary


def print_summary(summary: dict, out=sys.stdout) -> None:
    print(f"voicelake run {', '.join(summary['dates'])}: {summary['calls']} calls, "
          f"{summary['failed']} failures, {summary['fragments']} fragments "
          f"({summary['foreign_fragments']} of other calls skipped), "
          f"{summary['bytes_fetched'] / 1e6:.1f} MB fetched, {summary['audio_seconds']:.0f} s of audio",
          file=out)
    for reason, n in summary["failures_by_reason"].items():
        print(f"  failures[{reason}] = {n}", file=out)


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    logging.basicConfig(level=logging.WARNING)
    try:
        summary = run(argv)
    except ValueError as exc:
        print(f"voicelake run: {exc}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0
