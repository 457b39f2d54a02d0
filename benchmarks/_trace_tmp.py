"""A big night on one machine: about 50 audio-hours of 5-minute calls, Connect and Chime, through the
default `voicelake run` once, every call checked against the seeded truth.  Prints; asserts nothing.

Prints wall time, CPU (the whole process tree), audio-hours per CPU-hour, the peak RSS of every
process, and the disk the scratch folder (``<output>/_work``) used at its peak; then whether every
call of the day landed exactly once with its exact 8 kHz PCM, and that the next day's calls did not.
``--runner-args`` runs something else than the default, e.g. ``--direct_running_mode=in_memory`` for
Beam's in-process runner, so the two can be set side by side.  A developer's run, not CI's: the
default night needs about 25 GB of disk (media, WAVs, scratch) and a quarter of an hour.

    python -m benchmarks.big_night [--connect-calls 300 --chime-calls 300 --call-seconds 300]
                                   [--runner-args "--direct_running_mode=in_memory"]
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import threading
from collections import Counter
from pathlib import Path

from benchmarks.measure import PeakRss, run_watched, seeded_world_arguments
from runners.local.chaos import channel_digests, read_table
from runners.local.kvs_emulator import start_emulator
from runners.local.kvs_store import KvsStore
from runners.local.s3 import environment, local_s3
from runners.local.seed import PREFIX_CTR, PREFIX_EVENTS, PREFIX_SDR, seed_world
from voicelake import layout

ROOT = Path(__file__).resolve().parents[1]


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:  # removed while we looked
                pass
    return total


class Watch(PeakRss):
    """Peak RSS of every process of the run, and the scratch folder's peak disk use."""

    scratch: Path

    def __init__(self, pid: int):
        super().__init__(pid)
        self.scratch_peak = 0
        self.sampler = threading.Thread(target=self._disk, daemon=True)

    def start(self):
        super().start()
        self.sampler.start()

    def _disk(self):
        while not self.done.wait(1.0):
            self.scratch_peak = max(self.scratch_peak, folder_bytes(self.scratch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runner-args", default="",
                        help="flags for voicelake run instead of its default runner")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    config, work, args = seeded_world_arguments(
        "voicelake-big-night-", connect_calls=300, chime_calls=300, call_seconds=300,
        connect_streams=40, chime_streams=80, parser=parser, bad_records=False, bucket="big-night",
        dropout_fragment=None)
    lake = work / "lake"
    Watch.scratch = lake / layout.SCRATCH
    try:
        with local_s3() as s3, start_emulator(work / "kvs", tps_limit=None) as kvs, \
                environment(s3.environment()):
            truth = seed_world(s3.client(), KvsStore(work / "kvs"), config, work / "truth.json")
            bucket = f"s3://{config.bucket}/"
            command = [sys.executable, "/tmp/vl/trace/bufsize.py", "run", f"--date={config.date}",
                       f"--ctr_prefix={bucket}{PREFIX_CTR}", f"--sdr_prefix={bucket}{PREFIX_SDR}",
                       f"--events_prefix={bucket}{PREFIX_EVENTS}", f"--output={lake}",
                       f"--kvs_endpoint_url={kvs.url}", "--write_raw_channels",
                       *shlex.split(args.runner_args)]
            wall, usage, watch = run_watched(command, Watch, dict(os.environ))
        report(truth, lake, wall, usage.ru_utime + usage.ru_stime, watch, args.runner_args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(truth, lake: Path, wall: float, cpu: float, watch: Watch, runner_args: str) -> None:
    today = [c for c in truth.calls if c["date"] == truth.date]
    audio_h = sum(c["channels"][0]["samples"] for c in today) / 8000 / 3600
    calls, failures = read_table(lake, "calls"), read_table(lake, "failures")
    landed = Counter([c["call_id"] for c in calls] + [f["call_id"] for f in failures if f["call_id"]])
    wrong = 0
    for call in today:
        wav = lake / layout.wav_relpath(call["date"], call["partition_id"], call["call_id"], source=True)
        if not wav.exists() or channel_digests(wav) != [c["sha256"] for c in call["channels"]]:
            wrong += 1
    later = {c["call_id"] for c in truth.calls if c["date"] != truth.date}
    print(f"{len(truth.calls)} calls seeded, {len(today)} on {truth.date} ({audio_h:.1f} audio-hours), "
          f"{len(later)} on the next day; runner: {runner_args or 'the default'}; {os.cpu_count()} CPUs")
    print(f"wall {wall:.0f} s, CPU {cpu:.0f} s ({cpu / wall:.2f} cores busy), "
          f"{audio_h / (cpu / 3600):.0f} audio-hours per CPU-hour")
    rss = sorted(watch.by_pid.items(), key=lambda item: item[0])
    print("peak RSS MB: main " + f"{watch.by_pid.get(watch.pid, 0):.0f}; other processes: "
          + ", ".join(f"{mb:.0f}" for pid, mb in rss if pid != watch.pid and mb > 5))
    print(f"scratch folder (_work) at its peak: {watch.scratch_peak / 2**30:.2f} GiB")
    print(f"in calls {len(calls)}, in failures {sum(1 for f in failures if f['call_id'])}; "
          f"duplicates {sum(n - 1 for n in landed.values() if n > 1)}; "
          f"calls of the day missing {sum(1 for c in today if c['call_id'] not in landed)}; "
          f"wrong PCM {wrong}; next day's calls written {len(later & set(landed))}")


if __name__ == "__main__":
    main()
