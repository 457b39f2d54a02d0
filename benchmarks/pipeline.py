"""Audio-hours per CPU-hour: the voicelake pipeline beside a naive per-call script, same calls.

Seeds a day into a local world (moto S3 + KVS emulator, served from this process), then runs, in
interleaved rounds, each command in its own child process so that its CPU time (workers included)
and every process's peak RSS can be read from the OS:
  1. `voicelake run` on the FnApiRunner with 2 worker processes (the demo's settings), on the day
     and on a day without calls (start-up, imports, runner overhead);
  2. `benchmarks.naive_per_call` (ebmlite whole-body parse + librosa + soundfile, one call at a
     time, one process) on the same calls, and on no calls.
It prints medians over the rounds; "marginal" counts only the CPU above the same command's run on
the empty day.  Ratios are against the naive script measured in the same run.  Never a test:
timings are printed, not asserted.

    python -m benchmarks.pipeline [--calls 30 --minutes 4] [--long-call-minutes 240] [--rounds 3]

``--calls N --minutes M`` seeds N calls of M minutes (half Amazon Connect, half Chime);
``--long-call-minutes`` seeds one Connect call of that length instead.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.measure import measured
from runners.local.kvs_emulator import start_emulator
from runners.local.kvs_store import KvsStore
from runners.local.s3 import environment, local_s3
from runners.local.seed import PREFIX_CTR, PREFIX_EVENTS, PREFIX_SDR, WorldConfig, seed_world

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--long-call-minutes", type=float, default=None,
                        help="one Connect call of this length instead of --calls x --minutes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vads", default="silero,energy",
                        help="the pipeline's --vad values to run, each a row (default: both)")
    parser.add_argument("--workers", type=int, default=2,
                        help="FnApiRunner worker processes; 0 runs in one process (the default "
                             "runner of `voicelake run`)")
    return parser.parse_args()


def world_config(args) -> WorldConfig:
    if args.long_call_minutes:
        return WorldConfig(connect_calls=1, chime_calls=0, call_seconds=args.long_call_minutes * 60,
                           bad_records=False, bucket="bench", dropout_fragment=None)
    return WorldConfig(connect_calls=(args.calls + 1) // 2, chime_calls=args.calls // 2,
                       call_seconds=args.minutes * 60, bad_records=False, bucket="bench")


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    args = parse_args()
    config = world_config(args)
    work = Path(tempfile.mkdtemp(prefix="voicelake-bench-"))
    with local_s3() as s3, start_emulator(work / "kvs", tps_limit=None) as kvs, \
            environment(s3.environment()):
        truth = seed_world(s3.client(), KvsStore(work / "kvs"), config, work / "truth.json")
        audio_h = sum(c["channels"][0]["samples"] for c in truth.calls) / 8000 / 3600
        env = dict(os.environ)
        runner_args = (["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
                       if args.workers else ["--direct_running_mode=in_memory"])
        bucket = f"s3://{config.bucket}/"

        def pipeline_run(date: str, lake: str, vad: str) -> dict:
            return measured([
                sys.executable, "-m", "pipeline.cli", "run", f"--date={date}",
                f"--ctr_prefix={bucket}{PREFIX_CTR}", f"--sdr_prefix={bucket}{PREFIX_SDR}",
                f"--events_prefix={bucket}{PREFIX_EVENTS}", f"--output={work / lake}",
                f"--kvs_endpoint_url={kvs.url}", "--runner=FnApiRunner", f"--vad={vad}", *runner_args], env)

        def naive_run(truth_file: Path, out: str) -> dict:
            return measured([sys.executable, "-m", "benchmarks.naive_per_call",
                             str(truth_file), kvs.url, str(work / out)], env)

        (work / "empty.json").write_text(json.dumps({"calls": []}))
        vads = [v.strip() for v in args.vads.split(",") if v.strip()]
        runs: dict[str, list[dict]] = {"naive": [], "naive_empty": []}
        for vad in vads:
            runs[f"pipeline-{vad}"], runs[f"pipeline-{vad}_empty"] = [], []
        for _ in range(args.rounds):  # interleaved, so a drift of the machine hits every command
            for vad in vads:
                runs[f"pipeline-{vad}_empty"].append(pipeline_run("2000-01-01", f"empty-lake-{vad}", vad))
                runs[f"pipeline-{vad}"].append(pipeline_run(config.date, f"lake-{vad}", vad))
            runs["naive_empty"].append(naive_run(work / "empty.json", "empty-naive"))
            runs["naive"].append(naive_run(work / "truth.json", "naive"))
    for vad in vads:
        summary = json.loads((work / f"lake-{vad}/_runs" / config.date / "summary.json").read_text())
        if summary["calls"] != len(truth.calls):
            raise SystemExit(f"the pipeline wrote {summary['calls']} of {len(truth.calls)} calls: {summary}")
    print(f"{len(truth.calls)} calls, {audio_h:.2f} audio-hours (call time, 2 channels each), "
          f"{os.cpu_count()} CPUs, medians of {args.rounds} interleaved rounds")
    print(f"{'':46} {'CPU s':>7} {'wall s':>7} {'empty-day CPU s':>15} {'audio-h/CPU-h':>13} "
          f"{'marginal':>9} {'CPU s per audio-h':>17}")
    rates = {}
    label = f"voicelake (FnApiRunner, {args.workers or 'no'} workers)"
    for name, key in (*((f"{label}, --vad {v}", f"pipeline-{v}") for v in vads),
                      ("naive per-call script (baseline)", "naive")):
        cpu, empty = median(runs[key], "cpu_s"), median(runs[f"{key}_empty"], "cpu_s")
        rates[key] = audio_h / ((cpu - empty) / 3600)
        print(f"{name:46} {cpu:7.1f} {median(runs[key], 'wall_s'):7.1f} {empty:15.2f} "
              f"{audio_h / (cpu / 3600):13.0f} {rates[key]:9.0f} {(cpu - empty) / audio_h:17.2f}")
    for vad in vads:
        print(f"marginal rate, voicelake --vad {vad} / naive: {rates[f'pipeline-{vad}'] / rates['naive']:.2f}x")
    if len(vads) > 1:
        base = f"pipeline-{vads[-1]}"
        for vad in vads[:-1]:
            extra = (audio_h / rates[f"pipeline-{vad}"] - audio_h / rates[base]) * 3600 / audio_h
            print(f"--vad {vad} costs {extra:+.2f} CPU-s per audio-hour over --vad {vads[-1]}")
    print("peak RSS MB (largest round): ")
    for key in (*(f"pipeline-{v}" for v in vads), *(f"pipeline-{v}_empty" for v in vads), "naive"):
        root = max(r["root_rss_mb"] for r in runs[key])
        children = [max(r["child_rss_mb"][i] if i < len(r["child_rss_mb"]) else 0.0 for r in runs[key])
                    for i in range(max(len(r["child_rss_mb"]) for r in runs[key]))]
        print(f"  {key:24} main {root:6.0f}   other processes: "
              f"{', '.join(f'{mb:.0f}' for mb in children[:6]) or '-'}")
    print("marginal = audio-hours per CPU-hour above the same command's run on a day without calls.")
    print("The pipeline also lists and parses records, computes every feature and writes Parquet; "
          "the baseline skips all of that.")


if __name__ == "__main__":
    main()
