"""``voicelake export``: ML training sets from a finished lake, on any Beam runner.

lake tables (calls, channels, segments) -> calls -> units (by default from the conversation's
segments) and splits -> shards (audio cut from the call WAVs, features) -> Hugging Face Parquet,
lhotse or NeMo manifests + a dataset card.
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.dates import parse_dates
from pipeline.options import DEFAULT_RUNNER
from pipeline.preflight import check_engine_versions
from transforms.export_units import FinishExport, PlanCalls, ReadLakeCalls, WriteShards
from voicelake import storage
from voicelake.export import manifests, units
from voicelake.export.ml_features import FeatureOptions
from voicelake.export.shards import ExportSettings
from voicelake.export.units import SplitOptions, UnitOptions


class ExportOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("voicelake export")
        g.add_argument("--lake", help="root of the lake (s3://bucket/prefix or a local path)")
        g.add_argument("--dates", help="UTC days to export: YYYY-MM-DD, comma-separated, and "
                                       "FIRST..LAST ranges, e.g. 2024-05-01..2024-05-31,2024-06-03")
        g.add_argument("--format", dest="export_format", default="hf", choices=manifests.FORMATS,
                       help="hf: Parquet shards with an audio column; lhotse: recordings, "
                            "supervisions and cuts manifests; nemo: JSON-lines manifests (default hf)")
        g.add_argument("--out", help="output folder (s3://bucket/prefix or a local path); files an "
                                     "earlier export left there are replaced")
        g.add_argument("--unit", default="segment", choices=units.KINDS,
                       help="segment: VAD segments of one channel (default); channel: a whole "
                            "channel; call: the whole call, every channel")
        g.add_argument("--min_duration_ms", type=int, default=0,
                       help="drop segment units shorter than this, before padding (default 0)")
        g.add_argument("--max_duration_ms", type=int, default=None,
                       help="split longer segment units into equal pieces of at most this")
        g.add_argument("--merge_pause_ms", type=int, default=0,
                       help="merge segments of the same channel across pauses of at most this, "
                            "while the result stays within --max_duration_ms (default 0: no merging)")
        g.add_argument("--pad_ms", type=int, default=0,
                       help="widen segment units by this at both ends, within the call (default 0)")
        g.add_argument("--roles", default=None,
                       help="comma-separated roles whose channels to export, e.g. customer "
                            "(default: every channel)")
        g.add_argument("--phases", default=None,
                       help="comma-separated phases of the calls whose segments to export, from "
                            f"{', '.join(units.PHASES)} (default agent,call: the conversation; the "
                            "agent channel of the others is prompts and music); segment units only")
        g.add_argument("--sample_rate", type=int, default=16000,
                       help="audio rate: the lake's ML WAV rate (16000, normalised) or its source "
                            "rate (8000: the un-normalised <call_id>.8k.wav that voicelake run "
                            "keeps unless --no_write_raw_channels); default 16000")
        g.add_argument("--splits", default="train=0.8,dev=0.1,test=0.1",
                       help="split fractions by call, from a hash of the call id "
                            "(default train=0.8,dev=0.1,test=0.1)")
        g.add_argument("--split_dates", default=None,
                       help="splits by call date, before the fractions: NAME=FIRST..LAST,... "
                            "e.g. test=2024-05-20..2024-05-31")
        g.add_argument("--features", default="",
                       help="comma-separated features computed with librosa per unit: logmel, mfcc")
        g.add_argument("--n_mels", type=int, default=80, help="mel bands (default 80)")
        g.add_argument("--n_mfcc", type=int, default=13, help="MFCC coefficients (default 13)")
        g.add_argument("--win_ms", type=float, default=25.0, help="analysis window, ms (default 25)")
        g.add_argument("--hop_ms", type=float, default=10.0, help="hop between frames, ms (default 10)")
        g.add_argument("--n_fft", type=int, default=512, help="FFT size (default 512)")
        g.add_argument("--fmin", type=float, default=0.0, help="lowest mel frequency, Hz (default 0)")
        g.add_argument("--fmax", type=float, default=None, help="highest mel frequency, Hz "
                                                                "(default: half the sample rate)")
        g.add_argument("--shard_mb", type=int, default=256,
                       help="target size of a shard, MB (a call is never split; default 256)")


def export_dates(opts: ExportOptions) -> list[str]:
    """The days ``--dates`` names, in the grammar every command shares (pipeline.dates)."""
    if not opts.dates:
        raise ValueError("--dates is required")
    return parse_dates(opts.dates, "--dates")


def settings_from(opts: ExportOptions) -> ExportSettings:
    if not opts.lake or not opts.out:
        raise ValueError("--lake and --out are required")
    storage.is_s3(opts.lake), storage.is_s3(opts.out)  # refuses other schemes early
    roles = tuple(r.strip() for r in opts.roles.split(",") if r.strip()) if opts.roles else None
    return ExportSettings(
        lake=opts.lake.rstrip("/"), out=opts.out.rstrip("/"), format=opts.export_format,
        sample_rate=opts.sample_rate,
        units=UnitOptions(kind=opts.unit, min_ms=opts.min_duration_ms, max_ms=opts.max_duration_ms,
                          merge_pause_ms=opts.merge_pause_ms, pad_ms=opts.pad_ms, roles=roles,
                          phases=units.parse_phases(opts.phases)),
        splits=SplitOptions(fractions=units.parse_fractions(opts.splits),
                            date_ranges=units.parse_date_ranges(opts.split_dates)),
        features=FeatureOptions(
            names=tuple(f.strip() for f in opts.features.split(",") if f.strip()),
            n_mels=opts.n_mels, n_mfcc=opts.n_mfcc, win_ms=opts.win_ms, hop_ms=opts.hop_ms,
            n_fft=opts.n_fft, fmin=opts.fmin, fmax=opts.fmax),
        shard_mb=opts.shard_mb)


def card_settings(settings: ExportSettings, dates: list[str], argv: list[str]) -> dict:
    """What the dataset card and export.json say about how the export was made."""
    audio = ("the un-normalised source audio (<call_id>.8k.wav)" if settings.sample_rate == 8000
             else "the lake's ML WAV (DC removed, peak-normalised to -1 dBFS per channel)")
    feats = settings.features
    return {
        "format": settings.format, "splits": list(settings.splits.names),
        "data_files": {s: settings.data_files(s) for s in settings.splits.names},
        "sample_rate": settings.sample_rate,
        "audio": audio + ("; each unit holds its speaker's channel alone"
                          if settings.units.kind != "call" else "; every channel of the call"),
        "dates": dates, "units": settings.units.describe(), "phases": settings.units.describe_phases(),
        "split_rule": settings.splits.describe(),
        "features": feats.describe(settings.sample_rate) if feats.names else None,
        "feature_widths": {n: feats.width(n) for n in feats.names},
        "command": "voicelake export " + " ".join(shlex.quote(a) for a in without_paths(argv)),
    }


def without_paths(argv: list[str]) -> list[str]:
    """The arguments without --lake and --out: the card travels with the data, the machine's
    paths do not (and the same lake exported from S3 or a local copy gives the same card)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--lake", "--out"):
            skip = True
        elif not arg.startswith(("--lake=", "--out=")):
            out.append(arg)
    return out


def build(p: beam.Pipeline, settings: ExportSettings, dates: list[str], argv: list[str]):
    calls = p | "LakeCalls" >> ReadLakeCalls(settings.lake, dates)
    keyed = calls | "PlanCalls" >> PlanCalls(settings)
    stats, failures, paths = keyed | "WriteShards" >> WriteShards(settings)
    return (stats, failures, paths) | "Finish" >> FinishExport(settings, card_settings(settings, dates, argv))


def run(argv: list[str]) -> dict:
    """Run the export; return what export.json says (counts, failures, settings)."""
    options = PipelineOptions(argv)
    check_engine_versions(argv)
    if not options.view_as(StandardOptions).runner:
        options.view_as(StandardOptions).runner = DEFAULT_RUNNER
    opts = options.view_as(ExportOptions)
    dates = export_dates(opts)
    settings = settings_from(opts)
    pipeline = beam.Pipeline(options=options)
    build(pipeline, settings, dates, argv)
    pipeline.run().wait_until_finish()
    return json.loads(storage.read_bytes(f"{settings.out}/export.json"))


def help_text() -> str:
    parser = argparse.ArgumentParser(
        prog="voicelake export", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
        epilog="Any Apache Beam pipeline option is accepted too, in Beam's spelling (--runner, "
               "--direct_num_workers, ...); the default runner is FnApiRunner.")
    ExportOptions._add_argparse_args(parser)
    return parser.format_help()


def print_summary(summary: dict, out=sys.stdout) -> None:
    units_ = sum(n for roles in summary["units"].values() for n, _ in roles.values())
    ms = sum(m for roles in summary["units"].values() for _, m in roles.values())
    splits = ", ".join(f"{s} {sum(n for n, _ in r.values())}" for s, r in summary["units"].items())
    print(f"voicelake export: {units_} units, {ms / 3_600_000:.3f} h of audio ({splits}), "
          f"{sum(summary['failures'].values())} failures", file=out)
    for reason, n in sorted(summary["failures"].items()):
        print(f"  failures[{reason}] = {n} (see failures.jsonl)", file=out)


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    logging.basicConfig(level=logging.WARNING)
    try:
        summary = run(argv)
    except ValueError as exc:
        print(f"voicelake export: {exc}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0
