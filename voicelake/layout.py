"""Every path of the lake and of its scratch, in one place: the lake's layout is a public contract
(the README, the Athena DDL, the export reader and every analyst's query depend on it), so it is
spelled here and nowhere else.  No Beam, no I/O.

    <root>/<table>/date=D/voice_connector_id=V/part-00000.parquet   the tables (schemas.tables)
    <root>/audio/date=D/voice_connector_id=V/<call_id>.wav           a call's ML WAV
    <root>/audio/date=D/voice_connector_id=V/<call_id>.8k.wav        its source audio (kept by default)
    <root>/_runs/<label>/summary.json, partitions.sql, progress/, report.html   what a run says
    <root>/_work/date=D/...                                          a run's scratch, removed when it ends
    <root>/_work/date=D/staged/<the lake path>                       a file the run wrote, until it commits
    <root>/_commits/<label>.json                                     a commit under way (the next run ends it)
    <root>/_erasure/ledger.txt                                       digests of forgotten calls (voicelake forget)

``label`` is the run's date, or ``first_last`` for a range (``run_label``).  IDs that come from records become
path parts only through ``safe_part``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import NamedTuple

AUDIO = "audio"
SCRATCH = "_work"
RUNS = "_runs"
COMMITS = "_commits"
ERASURE = "_erasure"
STAGED = "staged"
DATE_KEY = "date"
PARTITION_KEY = "voice_connector_id"
SOURCE_SUFFIX = ".8k"  # the source-rate WAV beside the ML WAV
WAV = ".wav"
PARQUET = ".parquet"
SAFE_PART = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def safe_part(value: str) -> str:
    """IDs from records become path parts only through this allow-list."""
    if not isinstance(value, str) or not SAFE_PART.match(value) or value in (".", ".."):
        raise ValueError(f"unsafe path part {value!r}")
    return value


def join(root: str, *parts: str) -> str:
    """``root`` (a folder or ``s3://bucket/prefix``) and parts, with one ``/`` between each."""
    return "/".join([root.rstrip("/"), *parts])


# ---- the tables and the audio ----------------------------------------------------------------

def date_dir(root: str, folder: str, date: str) -> str:
    """``<root>/<table or audio>/date=D``: everything a run of D owns in one table."""
    return join(root, folder, f"{DATE_KEY}={safe_part(date)}")


def partition_dir(root: str, folder: str, date: str, partition: str) -> str:
    return join(date_dir(root, folder, date), f"{PARTITION_KEY}={safe_part(partition)}")


def table_file(root: str, table: str, date: str, partition: str, n: int) -> str:
    """The n-th Parquet file of a partition; fixed names, so a re-run writes the same files."""
    return join(partition_dir(root, table, date, partition), f"part-{n:05d}{PARQUET}")


def table_glob(table: str, date: str = "*", partition: str = "*") -> str:
    """A glob of a table's Parquet files below the root; ``*`` for any date or partition."""
    return f"{table}/{DATE_KEY}={date}/{PARTITION_KEY}={partition}/*{PARQUET}"


def table_files(root: str, table: str, date: str = "*", partition: str = "*") -> str:
    """The same glob under ``root`` (for ``storage.list_paths``)."""
    return join(root, table_glob(table, date, partition))


def wav_relpath(date: str, partition: str, call_id: str, *, source: bool = False) -> str:
    """Where a call's WAV sits below the lake root: ``source`` is the un-normalised source-rate one."""
    return (f"{AUDIO}/{DATE_KEY}={safe_part(date)}/{PARTITION_KEY}={safe_part(partition)}/"
            f"{safe_part(call_id)}{SOURCE_SUFFIX if source else ''}{WAV}")


def wav_path(root: str, date: str, partition: str, call_id: str, *, source: bool = False) -> str:
    return join(root, wav_relpath(date, partition, call_id, source=source))


def call_of_wav(path: str) -> str:
    """The call a WAV of the lake belongs to (its ML WAV or its source WAV)."""
    name = path.rsplit("/", 1)[-1].removesuffix(WAV)
    return name.removesuffix(SOURCE_SUFFIX)


def wav_glob(root: str, call_id: str, *, source: bool = False) -> str:
    """A glob of a call's WAV (or source WAV) in every date and partition of the lake."""
    return join(root, AUDIO, f"{DATE_KEY}=*", f"{PARTITION_KEY}=*",
                f"{safe_part(call_id)}{SOURCE_SUFFIX if source else ''}{WAV}")


def hive_template(location: str) -> str:
    """The partition folder with Athena's projection placeholders (``storage.location.template``)."""
    return f"{location.rstrip('/')}/{DATE_KEY}=${{{DATE_KEY}}}/{PARTITION_KEY}=${{{PARTITION_KEY}}}/"


class Partition(NamedTuple):
    folder: str  # a table's name, or AUDIO
    date: str
    partition: str


def partition_of(root: str, path: str) -> Partition | None:
    """The reverse direction: the (table, date, voice_connector_id) a file under ``root`` is in,
    or None for anything outside the partition folders (``_runs``, ``_work``, strays)."""
    prefix = root.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix):].split("/")
    if len(parts) < 4 or parts[0].startswith("_"):
        return None
    (date_key, _, date), (partition_key, _, partition) = parts[1].partition("="), parts[2].partition("=")
    if date_key != DATE_KEY or partition_key != PARTITION_KEY:
        return None
    return Partition(parts[0], date, partition)


# ---- what a run says ---------------------------------------------------------------------------

def run_label(dates: list[str]) -> str:
    """The run's folder name: its day, ``first_last`` for a range of days, and for a list with gaps
    that name plus a digest of the days, so it never shares the folder of the whole range."""
    if len(dates) == 1:
        return dates[0]
    label = f"{dates[0]}_{dates[-1]}"
    first, last = (dt.date.fromisoformat(d) for d in (dates[0], dates[-1]))
    if len(dates) == (last - first).days + 1:
        return label
    return f"{label}-{hashlib.sha256(','.join(dates).encode()).hexdigest()[:8]}"


def run_dir(root: str, dates: list[str]) -> str:
    return join(root, RUNS, run_label(dates))


def summary_path(root: str, dates: list[str]) -> str:
    return join(run_dir(root, dates), "summary.json")


def summaries(root: str) -> str:
    """A glob of every run's summary."""
    return join(root, RUNS, "*", "summary.json")


def partitions_sql_path(root: str, dates: list[str]) -> str:
    return join(run_dir(root, dates), "partitions.sql")


def progress_dir(root: str, dates: list[str]) -> str:
    return join(run_dir(root, dates), "progress")


def report_path(root: str, dates: list[str]) -> str:
    return join(run_dir(root, dates), "report.html")


def is_run_file(relpath: str) -> bool:
    """Whether a path below the root is one of the runs' own files (not the lake's data)."""
    return relpath.split("/", 1)[0] in (RUNS, COMMITS)


# ---- the commit -------------------------------------------------------------------------------

def staging_dir(root: str, date: str) -> str:
    """Where a run writes the lake files of one date before it commits: the lake's own paths below."""
    return join(scratch_date_dir(root, date), STAGED)


def staged(root: str, path: str) -> str:
    """The staging name of a lake file (a table's Parquet file or a WAV) under ``root``."""
    place = partition_of(root, path)
    if place is None:
        raise ValueError(f"{path} is no lake file under {root}")
    return join(staging_dir(root, place.date), path[len(root.rstrip("/")) + 1:])


def unstaged(root: str, date: str, path: str) -> str:
    """The lake file a staged file becomes when the run commits."""
    return join(root, path[len(staging_dir(root, date)) + 1:])


def commit_plan(root: str, dates: list[str]) -> str:
    """What the run's last stage plans to delete when it commits (written before the commit)."""
    return join(root, SCRATCH, f"commit-{run_label(dates)}.json")


def commit_marker(root: str, dates: list[str]) -> str:
    """A commit under way: present from the moment the run commits until every file is in place."""
    return join(root, COMMITS, f"{run_label(dates)}.json")


def commit_markers(root: str) -> str:
    return join(root, COMMITS, "*.json")


# ---- erasure -----------------------------------------------------------------------------------

def erasure_ledger(root: str) -> str:
    """One-way digests of the calls ``voicelake forget`` removed, one a line: every run leaves them out."""
    return join(root, ERASURE, "ledger.txt")


# ---- scratch ------------------------------------------------------------------------------------

def scratch_date_dir(root: str, date: str) -> str:
    """All of a run's scratch for one date: removed when the run's lake is written."""
    return join(root, SCRATCH, f"{DATE_KEY}={safe_part(date)}")


def channel_files_dir(root: str, date: str, source: str, partition: str, call_id: str) -> str:
    """Where the channel files of one call wait between the fetch and the per-call stage."""
    return join(scratch_date_dir(root, date), safe_part(source), safe_part(partition),
                safe_part(call_id))


def row_shard(root: str, table: str, date: str, partition: str, source: str, call_id: str) -> str:
    """One call's rows of one table, written by the per-call stage and merged into the table's
    partition files by the sink (Arrow IPC)."""
    return join(scratch_date_dir(root, date), "rows", safe_part(table), safe_part(partition),
                f"{safe_part(source)}.{safe_part(call_id)}.arrow")
