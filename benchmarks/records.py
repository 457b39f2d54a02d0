"""Benchmark record splitting on junk against the same number of bytes of real CTRs.

    python -m benchmarks.records [--max-mib 16] [--junk-mb 50] [--bomb-gib 1]

Part 1 splits random bytes of 1/4 MiB up to ``--max-mib``, doubling, and as a baseline measured in
the same run the same number of bytes of real Connect CTRs (the shared sample object, repeated).
It prints CPU seconds per MiB for each and the ratio junk / CTRs: flat per-MiB figures as the
size doubles mean linear time (the splitter before this benchmark doubled its per-MiB time with
every doubling: quadratic).

Part 2 reads a ``--junk-mb`` MB junk object and a gzip that inflates to ``--bomb-gib`` GiB the way
a worker does (``firehose.read_records``), each in a child process of its own, and prints its
wall time, CPU time, peak RSS (the child's own VmHWM; ru_maxrss would carry over the parent's
high-water mark) beside an import-only child as the baseline, and the failure rows it produced.
Nothing is asserted.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from voicelake.records.firehose import split_json_objects

ROOT = Path(__file__).resolve().parents[1]

CTR_SAMPLE = (ROOT.parent / "shared" / "samples" / "records" / "s3" / "example-connect-ctr-bucket" / "2024" / "05"
              / "14" / "15" / "voicelake-ctr-firehose-1-2024-05-14-15-11-02-65ede050-4b0b-4cf5-893e-5ba0b981ef46")

CHILD = """
import json, re, sys, time
from voicelake.records import firehose

path = sys.argv[1]
started, cpu = time.perf_counter(), time.process_time()
rows = [] if path == "-" else [
    {"reason": f.reason, "source_offset": f.source_offset, "detail": f.detail}
    for f in firehose.read_records(open(path, "rb").read(), source="connect", source_key=path)]
hwm = int(re.search(r"VmHWM:\\s*(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"rows": rows, "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu,
                  "peak_rss_mb": hwm / 1024}))
"""


def cpu_to_split(data: bytes) -> tuple[float, int]:
    started = time.process_time()
    items = sum(1 for _ in split_json_objects(data))
    return time.process_time() - started, items


def in_child(path: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def gzip_bomb(inflated_bytes: int) -> bytes:
    member = gzip.compress(bytes(2**20), compresslevel=1, mtime=0)
    return member * (inflated_bytes // 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-mib", type=float, default=16)
    parser.add_argument("--junk-mb", type=int, default=50)
    parser.add_argument("--bomb-gib", type=float, default=1)
    args = parser.parse_args()
    if not CTR_SAMPLE.is_file():
        sys.exit(f"{CTR_SAMPLE} is missing: the benchmark needs ../shared beside the project")
    ctrs = CTR_SAMPLE.read_bytes()

    print("splitting: CPU s per MiB (items found)")
    print(f"{'MiB':>6} {'random junk':>18} {'real CTRs':>18} {'junk / CTRs':>12}")
    size = 0.25
    while size <= args.max_mib:
        n = int(size * 2**20)
        junk_s, junk_items = cpu_to_split(random.Random(int(size * 4)).randbytes(n))
        ctr_s, ctr_items = cpu_to_split((ctrs * (n // len(ctrs) + 1))[:n])
        print(f"{size:6.2f} {junk_s / size:9.3f} ({junk_items:>6}) {ctr_s / size:9.3f} ({ctr_items:>6}) "
              f"{junk_s / ctr_s:12.2f}")
        size *= 2

    baseline = in_child("-")
    print(f"\nwhole objects, each read in a child process (import-only child: peak RSS "
          f"{baseline['peak_rss_mb']:.0f} MB)")
    with tempfile.TemporaryDirectory() as folder:
        junk, bomb = Path(folder) / "junk", Path(folder) / "bomb.gz"
        junk.write_bytes(random.Random(10).randbytes(args.junk_mb * 2**20))
        bomb.write_bytes(gzip_bomb(int(args.bomb_gib * 2**30)))
        bomb_label = f"gzip of {bomb.stat().st_size / 2**20:.1f} MiB inflating to {args.bomb_gib:g} GiB"
        for label, path in ((f"{args.junk_mb} MiB of random bytes", junk), (bomb_label, bomb)):
            result = in_child(str(path))
            print(f"- {label}: wall {result['wall_s']:.2f} s, CPU {result['cpu_s']:.2f} s, "
                  f"peak RSS {result['peak_rss_mb']:.0f} MB, {len(result['rows'])} failure row(s):")
            for row in result["rows"]:
                print(f"    {row['reason']} at byte {row['source_offset']}: {row['detail']}")


if __name__ == "__main__":
    main()
