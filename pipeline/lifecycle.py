"""``voicelake forget`` and ``voicelake expire``: erasure of calls and expiry of old days on a Hive
lake (``voicelake.lifecycle``); refusals in one line with exit status 2, nothing changed."""
from __future__ import annotations

import argparse
import datetime as dt
import sys

from pipeline.console import EXIT_USAGE
from voicelake import layout, lifecycle, storage

FORGET_HELP = """Remove every row of the given calls from every table (calls, channels, segments, gaps,
phases, failures), in every date and partition, and their WAVs; record a one-way digest of each id
in <lake>/_erasure/ledger.txt so that no later run lands them again. Partitions that held none of
them are not touched. See docs/lifecycle.md."""
EXPIRE_HELP = """Remove every date= folder older than today minus --keep-days from every table and
audio/. See docs/lifecycle.md."""


def _refuse(command: str, message: str) -> int:
    print(f"voicelake {command}: {message}", file=sys.stderr)
    return EXIT_USAGE


def _relative(root: str, path: str) -> str:
    return path[len(root.rstrip("/")) + 1:]


def forget_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="voicelake forget", description=FORGET_HELP)
    parser.add_argument("--lake", required=True, help="the lake's root (a folder or s3://bucket/prefix)")
    ids = parser.add_mutually_exclusive_group(required=True)
    ids.add_argument("--call-ids", metavar="FILE", help="one call id a line; blank lines and # comments allowed")
    ids.add_argument("--call-id", metavar="ID", nargs="+", action="extend", help="call ids to forget")
    args = parser.parse_args(argv)
    try:
        if args.call_ids:
            with open(args.call_ids, encoding="utf-8") as f:
                call_ids = lifecycle.parse_ids(f.read(), args.call_ids)
        else:
            call_ids = [lifecycle.check_id(c) for c in args.call_id]
        if not call_ids:
            return _refuse("forget", "no call ids given")
        root = lifecycle.check_lake(args.lake)
        done = lifecycle.forget(root, call_ids)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return _refuse("forget", str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}")
    found = len(call_ids) - len(done.unmatched)
    print(f"voicelake forget {root}: {found} of {len(call_ids)} calls found")
    for table, n in done.rows.items():
        print(f"  {table}: {n} rows removed")
    parquet_removed = [p for p in done.removed if p not in done.wavs]
    print(f"  files: {len(done.rewritten)} Parquet files rewritten, {len(parquet_removed)} removed, "
          f"{len(done.wavs)} WAVs removed")
    for path in [*done.rewritten, *done.removed]:
        print(f"    {'rewritten' if path in done.rewritten else 'removed'} {_relative(root, path)}")
    for path in done.redacted:
        print(f"  run file: the ids were replaced by [forgotten] in {_relative(root, path)}")
    for path in done.deleted:
        print(f"  run file: deleted {_relative(root, path)} (it named a forgotten call)")
    if done.unmatched:
        print(f"  matched nothing: {', '.join(done.unmatched)}")
    print(f"  ledger: {_relative(root, layout.erasure_ledger(root))} "
          f"({done.new_digests} new digests, {len(lifecycle.read_ledger(root))} in all)")
    return 0


def expire_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="voicelake expire", description=EXPIRE_HELP)
    parser.add_argument("--lake", required=True, help="the lake's root (a folder or s3://bucket/prefix)")
    parser.add_argument("--keep-days", required=True, type=int, metavar="N",
                        help="keep the dates of the last N days before today (0 keeps today only)")
    parser.add_argument("--today", metavar="YYYY-MM-DD", help="the day to count back from (default: today, UTC)")
    args = parser.parse_args(argv)
    try:
        today = dt.date.fromisoformat(args.today) if args.today else dt.datetime.now(dt.timezone.utc).date()
    except ValueError:
        return _refuse("expire", f"--today {args.today!r} is not a date (YYYY-MM-DD)")
    if args.keep_days < 0:
        return _refuse("expire", f"--keep-days must be 0 or more, not {args.keep_days}")
    try:
        root = lifecycle.check_lake(args.lake)
        removed = lifecycle.expire(root, args.keep_days, today)
    except (OSError, ValueError) as exc:
        return _refuse("expire", str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}")
    cutoff = today - dt.timedelta(days=args.keep_days)
    total = sum(len(d) for d in removed.values())
    print(f"voicelake expire {storage.absolute(root)}: dates before {cutoff.isoformat()} removed "
          f"({total} date folders)")
    for folder, dates in removed.items():
        print(f"  {folder}: {', '.join(dates) if dates else 'nothing'}")
    return 0


main = forget_main
