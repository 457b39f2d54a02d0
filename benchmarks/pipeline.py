"""Audio-hours per CPU-hour: the voicelake pipeline beside a naive per-call script, same calls.

Seeds N calls into a local world (moto S3 + KVS emulator, served from this process), then runs,
each in its own child process so that its CPU time and peak RSS (workers included) can be read
from the OS:
  1. `voicelake run` on the FnApiRunner with 2 worker processes (the demo's settings);
  2. `benchmarks/naive_per_call.py` (ebmlite whole-body parse + librosa + soundfile, one call at a
     time) on the same calls.
It prints one table; ratios are against the naive script measured in the same run.  Never used
as a test: timings are printed, not asserted.

    python benchmarks/pipeline.py [--connect-calls 6] [--chime-calls 3] [--call-seconds 120]
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import measured, seeded_world_arguments  # noqa: E402
from runners.local.kvs_emulator import start_emulator  # noqa: E402
from runners.local.kvs_store import KvsStore  # noqa: E402
from runners.local.s3 import environment, local_s3  # noqa: E402
from runners.local.seed import PREFIX_CTR, PREFIX_EVENTS, PREFIX_SDR, seed_world  # noqa: E402


def main() -> None:
    config, work = seeded_world_arguments("voicelake-bench-", connect_calls=6, chime_calls=3,
                                          call_seconds=120.0, bad_records=False, bucket="bench")
    with local_s3() as s3, start_emulator(work / "kvs", tps_limit=None) as kvs, \
            environment(s3.environment()):
        truth = seed_world(s3.client(), KvsStore(work / "kvs"), config, work / "truth.json")
        audio_h = sum(c["channels"][0]["samples"] for c in truth.calls) / 8000 / 3600
        env = dict(os.environ)
        bucket = f"s3://{config.bucket}/"

        def pipeline_run(date: str, lake: str) -> dict:
            return measured([
                sys.executable, "-m", "pipeline.cli", "run", f"--date={date}",
                f"--ctr_prefix={bucket}{PREFIX_CTR}", f"--sdr_prefix={bucket}{PREFIX_SDR}",
                f"--events_prefix={bucket}{PREFIX_EVENTS}", f"--output={work / lake}",
                f"--kvs_endpoint_url={kvs.url}", "--runner=FnApiRunner",
                "--direct_running_mode=multi_processing", "--direct_num_workers=2"], env)

        def naive_run(truth_file: Path, out: str) -> dict:
            return measured([sys.executable, str(ROOT / "benchmarks/naive_per_call.py"),
                             str(truth_file), kvs.url, str(work / out)], env)

        # The same commands on a day without calls: start-up, imports and runner overhead.
        (work / "empty.json").write_text(json.dumps({"calls": []}))
        empty_pipeline = pipeline_run("2000-01-01", "empty-lake")
        empty_naive = naive_run(work / "empty.json", "empty-naive")
        pipeline = pipeline_run(config.date, "lake")
        naive = naive_run(work / "truth.json", "naive")
    summary = json.loads((work / "lake/_runs" / config.date / "summary.json").read_text())
    assert summary["calls"] == len(truth.calls), summary
    print(f"{len(truth.calls)} calls, {audio_h * 60:.1f} audio-minutes (call time, 2 channels), "
          f"{os.cpu_count()} CPUs")
    header = f"{'':44} {'CPU s':>7} {'wall s':>7} {'fixed CPU s':>11} {'audio-h/CPU-h':>14} " \
             f"{'marginal':>9} {'vs baseline':>11} {'peak RSS MB':>11}"
    print(header)
    base = audio_h / ((naive["cpu_s"] - empty_naive["cpu_s"]) / 3600)
    for name, m, empty in (("voicelake pipeline (FnApiRunner, 2 workers)", pipeline, empty_pipeline),
                           ("naive per-call script (baseline)", naive, empty_naive)):
        whole = audio_h / (m["cpu_s"] / 3600)
        marginal = audio_h / ((m["cpu_s"] - empty["cpu_s"]) / 3600)
        print(f"{name:44} {m['cpu_s']:7.1f} {m['wall_s']:7.1f} {empty['cpu_s']:11.1f} {whole:14.0f} "
              f"{marginal:9.0f} {marginal / base:10.2f}x {m['peak_rss_mb']:11.0f}")
    print("marginal = audio-hours per CPU-hour above the same command's run on a day without calls; "
          "'vs baseline' compares marginal rates.")
    print("The pipeline also lists and parses records, computes every feature and writes Parquet; "
          "the baseline skips all of that.")


if __name__ == "__main__":
    main()
