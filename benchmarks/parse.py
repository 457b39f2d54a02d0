"""Benchmark voicelake.media.mkv_parser against ``mkvextract --raw``, a plain EBML walk and ebmlite.

    python -m benchmarks.parse [--minutes 60] [--kind connect|chime] [--body FILE] [--rounds 3] [--keep DIR]

Builds a GetMediaForFragmentList body with runners/local/mkv_writer.py (Connect: two tracks of
8 kHz s16le noise in 64 ms blocks, 1.024 s fragments; Chime: one track in 20 ms blocks, 1 s
fragments), or takes any saved body (``--body``), then measures the parser, mkvextract and a plain
Python walk of every element header in interleaved rounds on the same bytes (medians), plus one
ebmlite whole-document walk, and prints a table.  CPU time is user + system: in-process for the
parser and the walks, RUSAGE_CHILDREN deltas for child processes.  Peak RSS comes from running the parser alone in a
child process on a 10-minute and a full-length body (plus an import-only child as the baseline)
that reports its own VmHWM: ru_maxrss would not do, as Linux carries the parent's high-water mark
into a spawned child.  Equal numbers mean memory does not grow with the body.  Nothing is asserted.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import ebmlite
import numpy as np

from runners.local import mkv_writer as w
from voicelake.media.mkv_parser import iter_fragments

FRAGMENT_MS = 1024
FRAGMENT_PCM_BYTES = FRAGMENT_MS * 16  # per track: 8000 samples/s x 2 bytes


def build_body(path: Path, minutes: int, kind: str = "connect") -> float:
    """Write a body of ``minutes`` minutes; returns the hours of call audio in it."""
    rng = np.random.default_rng(minutes)
    fragment_ms = FRAGMENT_MS if kind == "connect" else 1000
    count = -(-minutes * 60_000 // fragment_ms)
    start_ms = 1_782_912_654_536
    with path.open("wb") as out:
        for i in range(count):
            number = str(91343852333181551234925834077012571618243808844 + i)
            t = start_ms + i * fragment_ms
            if kind == "connect":
                a, b = rng.integers(-8000, 8000, (2, FRAGMENT_PCM_BYTES // 2), dtype=np.int16)
                out.write(w.connect_fragment(
                    fragment_number=number, producer_ms=t, server_ms=t + 170, contact_id="bench",
                    instance_id="bench", from_customer=a.tobytes(), to_customer=b.tobytes()))
            else:
                pcm = rng.integers(-8000, 8000, 8000, dtype=np.int16).tobytes()
                out.write(w.chime_fragment(
                    fragment_number=number, producer_ms=t, server_ms=t + 170, transaction_id="bench",
                    voice_connector_id="bench", call_id="bench", pcm=pcm))
    return count * fragment_ms / 3_600_000


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_with_voicelake(path: Path) -> int:
    """Parse the whole body; returns the number of audio frames delivered."""
    with path.open("rb") as stream:
        return sum(len(t.blocks) for fragment in iter_fragments(stream) for t in fragment.tracks.values())


def walk_plainly(path: Path) -> int:
    """A plain Python walk of every element header of the whole body; returns SimpleBlocks seen."""
    from runners.local.kvs_emulator import simple_block_ends

    return len(simple_block_ends(path.read_bytes()))


def walk_with_ebmlite(path: Path) -> int:
    """The naive way: load the document and visit every element; returns SimpleBlocks seen."""
    payloads = []

    def walk(element) -> None:
        for child in element:
            if child.name == "SimpleBlock":
                payloads.append(child.value)
            elif isinstance(child, ebmlite.core.MasterElement):
                walk(child)

    walk(ebmlite.loadSchema("matroska.xml").load(str(path)))
    return len(payloads)


def run_child(argv: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """(the finished process, its CPU seconds)."""
    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime
    before = children()
    done = subprocess.run(argv, capture_output=True, text=True)
    return done, children() - before


def peak_rss_kb() -> int:
    """This process's peak resident set since its exec (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def timed(work, *args) -> tuple[object, float]:
    """(result, CPU seconds) of one call."""
    before = cpu_seconds()
    result = work(*args)
    return result, cpu_seconds() - before


def row(label: str, cpu: float, megabytes: float, hours: float, reference: float, rss_mb: str) -> str:
    return (f"| {label:<34} | {cpu:7.3f} | {megabytes / cpu:8.1f} | {hours / cpu:8.2f} "
            f"| {reference / cpu:8.2f}x | {rss_mb:>8} |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--kind", choices=["connect", "chime"], default="connect")
    parser.add_argument("--body", type=Path, help="a saved GetMedia / GetMediaForFragmentList body")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the bodies here and keep them")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # the RSS probe
    args = parser.parse_args(argv)
    if args.child is not None:
        if args.child.name != "-":
            parse_with_voicelake(args.child)
        print(peak_rss_kb())
        return 0

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="voicelake-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    short_body = workdir / f"{args.kind}-10min.mkv"
    build_body(short_body, 10, args.kind)
    if args.body:
        long_body, hours = args.body, None
    else:
        long_body = workdir / f"{args.kind}-{args.minutes}min.mkv"
        hours = build_body(long_body, args.minutes, args.kind)
    megabytes = long_body.stat().st_size / 1e6
    frames = parse_with_voicelake(long_body)
    blocks = walk_plainly(long_body)
    if frames != blocks:
        print(f"frame counts differ: parser {frames}, plain walk {blocks}", file=sys.stderr)
        return 1
    print(f"body: {long_body.name}, {megabytes:.1f} MB, {frames} SimpleBlocks"
          + (f", {hours:.2f} h of call audio" if hours else "") + f"; medians of {args.rounds} rounds\n")

    def mkvextract() -> float:
        done, cpu = run_child(["mkvextract", str(long_body), "tracks", "--raw", f"0:{workdir / 'a.raw'}",
                               "--raw", f"1:{workdir / 'b.raw'}"])
        if done.returncode not in (0, 1, 2):  # 1: warnings about the chained Segments; 2: no track 1
            raise SystemExit(f"mkvextract failed: {done.stdout[-300:]}")
        return cpu

    cpu = {"parser": [], "plain": [], "mkvextract": []}
    for _ in range(args.rounds):  # interleaved, so a drift of the machine hits every tool
        cpu["parser"].append(timed(parse_with_voicelake, long_body)[1])
        cpu["plain"].append(timed(walk_plainly, long_body)[1])
        cpu["mkvextract"].append(mkvextract())
    median = {k: statistics.median(v) for k, v in cpu.items()}
    _, ebmlite_cpu = timed(walk_with_ebmlite, long_body)
    probes = {}
    for label, body in (("import only", "-"), ("10 min", short_body), ("the body", long_body)):
        done, probe_cpu = run_child([sys.executable, "-m", "benchmarks.parse", "--child", str(body)])
        probes[label] = (probe_cpu, int(done.stdout) / 1024)

    reference = median["mkvextract"]
    print(f"| {'tool (same bytes)':<38} | {'CPU s':>7} | {'MB/CPU-s':>8} | {'call-h/s':>8} | "
          f"{'vs mkvx':>9} | {'peak RSS':>8} |")
    print(f"|{'-' * 40}|{'-' * 9}|{'-' * 10}|{'-' * 10}|{'-' * 11}|{'-' * 10}|")
    for label, seconds, rss in (
            ("voicelake mkv_parser (in-process)", median["parser"], f"{probes['the body'][1]:.0f} MB"),
            ("plain Python walk of element headers", median["plain"], "-"),
            ("mkvextract --raw, every track", median["mkvextract"], "-"),
            ("ebmlite load + full walk (one round)", ebmlite_cpu, "-")):
        print(row(label, seconds, megabytes, hours or 0.0, reference, rss))
    print("\nparser peak RSS in a child process (CPU includes interpreter start-up):")
    for label, (probe_cpu, rss) in probes.items():
        print(f"  {label:<12} CPU {probe_cpu:6.3f} s   peak RSS {rss:6.1f} MB")
    print("\ncall-h/s = hours of call audio per CPU-second (0 for an outside body); "
          "vs mkvx = mkvextract CPU / tool CPU")
    if args.keep:
        print(f"bodies kept in {workdir}")
    else:
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
