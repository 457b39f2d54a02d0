"""Progress of a running pipeline, on every runner: a heartbeat that worker processes write and the
driver reads.

Beam's metrics reach the driver only when the runner reports them, and FnApiRunner (the default)
reports them when the job is done.  So the counters that tell progress also count into a small
per-process tally, which a daemon thread writes every second or few as ``<folder>/<worker>.json``;
the driver sums the files every ``--progress_interval`` seconds and prints one line.  The folder is
local for local runs (FnApiRunner's worker processes, Prism's, a worker pool on this machine) or on
S3 for workers elsewhere.  No Beam here: a DoFn wraps its Beam counter with ``counted``.

    self.records = progress.counted(Metrics.counter(NAMESPACE, "records"))   # in __init__
    self.records.inc()                                                        # in process

``counted`` must be called while the pipeline is built (``recording(folder)`` is active), so the
folder travels to the workers inside the pickled DoFn.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
import uuid

from voicelake import storage

_building: list[str] = []  # the folder of the pipeline being built, on the driver


@contextlib.contextmanager
def recording(folder: str):
    """Counters made (``counted``) inside this block report to ``folder``."""
    _building.append(folder)
    try:
        yield
    finally:
        _building.pop()


class Counted:
    """A Beam counter that also counts into the worker process's heartbeat."""

    def __init__(self, counter, name: str | None = None):
        self.counter = counter
        metric = counter.metric_name
        self.name = name or f"{metric.namespace.removeprefix('voicelake.')}.{metric.name}"
        self.folder = _building[-1] if _building else None

    def inc(self, n: int = 1) -> None:
        self.counter.inc(n)
        if self.folder:
            _heartbeat(self.folder).add(self.name, n)


def counted(counter, name: str | None = None) -> Counted:
    return Counted(counter, name)


class _Heartbeat:
    """This process's tallies for one folder, written by a daemon thread when they change."""

    def __init__(self, folder: str):
        worker = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = f"{folder.rstrip('/')}/{worker}.json"
        # Local files are cheap to rewrite; an S3 PUT per worker every 5 s is cheap enough.
        self.every_s = 5.0 if storage.is_s3(folder) else 1.0
        self.counts: dict[str, int] = {}
        self.written: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        threading.Thread(target=self._loop, name="voicelake-heartbeat", daemon=True).start()

    def add(self, name: str, n: int) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def flush(self) -> None:
        with self.lock:
            counts = dict(self.counts)
        if counts != self.written:
            storage.write_bytes(self.path, json.dumps(counts, sort_keys=True).encode())
            self.written = counts

    def _loop(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                self.flush()
            except Exception:  # progress is best effort: never fail a worker over it
                pass


_heartbeats: dict[tuple[int, str], _Heartbeat] = {}
_lock = threading.Lock()


def _heartbeat(folder: str) -> _Heartbeat:
    key = (os.getpid(), folder)  # a forked worker starts its own thread and file
    with _lock:
        if key not in _heartbeats:
            _heartbeats[key] = _Heartbeat(folder)
        return _heartbeats[key]


def flush_local(folder: str) -> None:
    """Write this process's tallies now (workers running as threads of the driver)."""
    beat = _heartbeats.get((os.getpid(), folder))
    if beat:
        beat.flush()


def finish_local(folder: str) -> None:
    """Stop this process's heartbeat for a finished run, so nothing writes to its folder again."""
    with _lock:
        beat = _heartbeats.pop((os.getpid(), folder), None)
    if beat:
        beat.stopped.set()


def read(folder: str) -> dict[str, int]:
    """The sum of every worker's tallies in ``folder``."""
    total: dict[str, int] = {}
    for path in storage.list_paths(f"{folder.rstrip('/')}/*.json"):
        try:
            counts = json.loads(storage.read_bytes(path))
        except (OSError, ValueError):  # a file being replaced, or gone: the next read has it
            continue
        for name, n in counts.items():
            total[name] = total.get(name, 0) + int(n)
    return total


# What a progress line shows, from the counter names of the stages.
RECORDS = "records.records"
CALLS_PLANNED = ("records.connect_calls", "records.chime_calls")
RANGES_PLANNED = "fragments.ranges"
RANGES_FETCHED = "media.ranges"
CALLS_WRITTEN = "analyse.calls"


def line(label: str, elapsed_s: float, counts: dict[str, int]) -> str:
    """``voicelake run 2024-05-14 [0:00:40] 1200 records read, 40 calls planned, ...``

    A counter no worker has reported yet shows as ``-``: not started, or not counted on this
    version of the stage.
    """
    def value(*names: str) -> str:
        seen = [counts[n] for n in names if n in counts]
        return str(sum(seen)) if seen else "-"

    elapsed = dt.timedelta(seconds=int(elapsed_s))
    return (f"voicelake run {label} [{elapsed}] {value(RECORDS)} records read, "
            f"{value(*CALLS_PLANNED)} calls planned, "
            f"{value(RANGES_FETCHED)}/{value(RANGES_PLANNED)} ranges fetched, "
            f"{value(CALLS_WRITTEN)} calls written")


class Reporter:
    """On the driver: a progress line every ``interval_s`` seconds until stopped, and one at the end."""

    def __init__(self, folder: str, label: str, write, interval_s: float = 10.0):
        self.folder, self.label, self.write, self.interval_s = folder, label, write, interval_s
        self.started = time.monotonic()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="voicelake-progress", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()
        flush_local(self.folder)
        self._report()

    def _report(self) -> None:
        try:
            counts = read(self.folder)
        except Exception as e:  # a progress line must never fail the run
            self.write(f"voicelake run {self.label}: progress unavailable ({type(e).__name__}: {e})")
            return
        self.write(line(self.label, time.monotonic() - self.started, counts))

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self._report()
