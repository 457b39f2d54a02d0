"""A hostile night, printed: every emulator fault on (throttling 30 %, 5xx 5 %, resets 10 %, cut
bodies 10 %, bodies ending cleanly between two blocks 30 %, in-band FRAGMENT_NOT_FOUND 5 % per
fragment) and the earliest calls past retention; the pipeline runs twice into one lake.

What must hold: every call in retention in `calls` with the seeded PCM, every expired call in
`failures` as outside_retention, no duplicates, the two runs byte-identical.

    python -m benchmarks.chaos [--connect-calls 18 --chime-calls 18 --call-seconds 60 --expired 4]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipeline.run import run
from runners.local.chaos import hostile_night
from runners.local.s3 import environment, local_s3

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect-calls", type=int, default=18)
    parser.add_argument("--chime-calls", type=int, default=18)
    parser.add_argument("--call-seconds", type=float, default=60.0)
    parser.add_argument("--expired", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="voicelake-chaos-"))
    started = time.perf_counter()
    with local_s3() as s3, environment(s3.environment()):
        report = hostile_night(work, s3, run, connect_calls=args.connect_calls,
                               chime_calls=args.chime_calls, call_seconds=args.call_seconds,
                               expired=args.expired, extra_args=("--max_attempts=10",))
    print("\n".join(report.lines()))
    print(f"the night's promise holds: {'yes' if report.whole else 'NO'} "
          f"({time.perf_counter() - started:.0f} s for seeding and both runs)")


if __name__ == "__main__":
    main()
