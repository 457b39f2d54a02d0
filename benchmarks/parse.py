"""Benchmark voicelake.mkv_parser against a plain ebmlite walk and ``mkvextract --raw``.

    python benchmarks/parse.py [--minutes 60] [--keep DIR]

Builds Connect GetMediaForFragmentList bodies with runners/local/mkv_writer.py (two tracks of
8 kHz s16le noise, 1.024 s fragments) in a temporary directory, then measures each tool once on the
same bytes and prints a table.  CPU time is user + system: in-process for the parser and ebmlite,
RUSAGE_CHILDREN deltas for child processes.  Peak RSS comes from running the parser alone in a
child process on a 10-minute and a full-length body (plus an import-only child as the baseline)
that reports its own VmHWM: ru_maxrss would not do, as Linux carries the parent's high-water mark
into a spawned child.  Equal numbers mean memory does not grow with the body.  Nothing is asserted.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import ebmlite
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicelake.mkv_parser import iter_fragments  # noqa: E402
from runners.local import mkv_writer as w  # noqa: E402

FRAGMENT_MS = 1024
FRAGMENT_PCM_BYTES = FRAGMENT_MS * 16  # per track: 8000 samples/s x 2 bytes


def build_body(path: Path, minutes: int) -> int:
    """Write a Connect body of ``minutes`` minutes; returns the number of fragments."""
    rng = np.random.default_rng(minutes)
    count = -(-minutes * 60_000 // FRAGMENT_MS)
    start_ms = 1_782_912_654_536
    with path.open("wb") as out:
        for i in range(count):
            a, b = rng.integers(-8000, 8000, (2, FRAGMENT_PCM_BYTES // 2), dtype=np.int16)
            out.write(w.connect_fragment(
                fragment_number=str(91343852333181551234925834077012571618243808844 + i),
                producer_ms=start_ms + i * FRAGMENT_MS, server_ms=start_ms + i * FRAGMENT_MS + 170,
                contact_id="bench", instance_id="bench", from_customer=a.tobytes(), to_customer=b.tobytes()))
    return count


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_with_voicelake(path: Path) -> int:
    """Parse the whole body; returns the number of audio frames delivered."""
    with path.open("rb") as stream:
        return sum(len(t.blocks) for fragment in iter_fragments(stream) for t in fragment.tracks.values())


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
    long_body, short_body = workdir / f"connect-{args.minutes}min.mkv", workdir / "connect-10min.mkv"
    fragments = build_body(long_body, args.minutes)
    build_body(short_body, 10)
    megabytes = long_body.stat().st_size / 1e6
    print(f"body: {megabytes:.1f} MB, {fragments} fragments ({args.minutes} min), 2 tracks, "
          f"{2 * fragments * 16} SimpleBlocks of 1037 bytes\n")

    hours = fragments * FRAGMENT_MS / 3_600_000  # of two-track call audio
    expected_frames = 2 * fragments * 16
    frames, voicelake_cpu = timed(parse_with_voicelake, long_body)
    blocks, ebmlite_cpu = timed(walk_with_ebmlite, long_body)
    if frames != expected_frames or blocks != expected_frames:
        print(f"frame counts differ: parser {frames}, ebmlite {blocks}, built {expected_frames}",
              file=sys.stderr)
        return 1
    done, mkvextract_cpu = run_child(["mkvextract", str(long_body), "tracks", "--raw",
                                      f"0:{workdir / 'a.raw'}", "--raw", f"1:{workdir / 'b.raw'}"])
    if done.returncode not in (0, 1):  # 1: warnings about the chained Segments
        print(f"mkvextract failed: {done.stdout[-300:]}", file=sys.stderr)
        return 1
    probes = {}
    for label, body in (("import only", "-"), ("10 min", short_body), (f"{args.minutes} min", long_body)):
        done, cpu = run_child([sys.executable, __file__, "--child", str(body)])
        probes[label] = (cpu, int(done.stdout) / 1024)

    print(f"| {'tool (same bytes, one run each)':<34} | {'CPU s':>7} | {'MB/CPU-s':>8} | "
          f"{'call-h/s':>8} | {'vs mkvx':>9} | {'peak RSS':>8} |")
    print(f"|{'-' * 36}|{'-' * 9}|{'-' * 10}|{'-' * 10}|{'-' * 11}|{'-' * 10}|")
    long_label = f"{args.minutes} min"
    print(row("voicelake mkv_parser (in-process)", voicelake_cpu, megabytes, hours, mkvextract_cpu,
              f"{probes[long_label][1]:.0f} MB"))
    print(row("ebmlite load + full walk", ebmlite_cpu, megabytes, hours, mkvextract_cpu, "-"))
    print(row("mkvextract --raw, both tracks", mkvextract_cpu, megabytes, hours, mkvextract_cpu, "-"))
    print("\nparser peak RSS in a child process (CPU includes interpreter start-up):")
    for label, (cpu, rss) in probes.items():
        print(f"  {label:<12} CPU {cpu:6.3f} s   peak RSS {rss:6.1f} MB")
    print("\ncall-h/s = hours of two-track call audio per CPU-second; vs mkvx = mkvextract CPU / tool CPU")
    if args.keep:
        print(f"bodies kept in {workdir}")
    else:
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
