"""What the benchmarks share: the seeded world they run on, and measuring a command as a whole
process tree: CPU seconds (descendants included), wall time and the peak RSS of its largest
process, for the benchmarks' tables."""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from runners import processes


class PeakRss(threading.Thread):
    """Largest VmHWM of any process in a tree, sampled from /proc (ru_maxrss would inherit the
    launching process's high-water mark across fork and exec)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()
        self.by_pid: dict[int, float] = {}  # every process of the tree -> its peak RSS, MB

    @property
    def peak(self) -> float:
        return max(self.by_pid.values(), default=0.0)

    def run(self):
        while not self.done.wait(0.1):
            for pid in processes.members(processes.process_table(), {self.pid}):
                self.by_pid[pid] = max(self.by_pid.get(pid, 0.0), processes.peak_rss_mb(pid))


def run_watched(command: list[str], watch, env: dict | None = None):
    """Run a child to completion while ``watch(pid)`` (a thread sampling /proc) looks at it:
    (wall seconds, the child's rusage with its descendants, the stopped watcher). A failed child
    stops the benchmark with the end of its stderr."""
    log = tempfile.TemporaryFile()
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    watcher = watch(child.pid)
    watcher.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    watcher.done.set()
    watcher.join()
    if status != 0:
        log.seek(0)
        raise SystemExit(f"{command[:4]} failed:\n{log.read().decode()[-3000:]}")
    return wall, usage, watcher


def measured(command: list[str], env: dict) -> dict:
    """Run a child to completion: CPU seconds of it and its descendants, wall time, peak RSS."""
    wall, usage, watcher = run_watched(command, PeakRss, env)
    others = sorted((mb for pid, mb in watcher.by_pid.items() if pid != watcher.pid), reverse=True)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": wall, "peak_rss_mb": watcher.peak,
            "root_rss_mb": watcher.by_pid.get(watcher.pid, 0.0), "child_rss_mb": others}


def seeded_world_arguments(prefix: str, *, connect_calls: int, chime_calls: int, call_seconds: float,
                           connect_streams: int = 2, chime_streams: int = 4, parser=None, **config):
    """The benchmark's command line (how many calls on how many streams, how long) -> (WorldConfig, a
    fresh work folder, the parsed arguments). ``parser`` may bring the benchmark's own flags."""
    from runners.local.seed import WorldConfig

    parser = parser or argparse.ArgumentParser()
    parser.add_argument("--connect-calls", type=int, default=connect_calls)
    parser.add_argument("--chime-calls", type=int, default=chime_calls)
    parser.add_argument("--call-seconds", type=float, default=call_seconds)
    parser.add_argument("--connect-streams", type=int, default=connect_streams,
                        help="pooled Connect streams the calls take in turn")
    parser.add_argument("--chime-streams", type=int, default=chime_streams,
                        help="pooled Chime streams (even: a call's legs are on two)")
    args = parser.parse_args()
    world = WorldConfig(connect_calls=args.connect_calls, chime_calls=args.chime_calls,
                        call_seconds=args.call_seconds, connect_streams=args.connect_streams,
                        chime_streams=args.chime_streams, **config)
    return world, Path(tempfile.mkdtemp(prefix=prefix)), args
