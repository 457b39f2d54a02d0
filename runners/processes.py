"""This machine's processes as Linux's /proc shows them: who started whom, in which process group,
how much CPU each spent and its peak RSS; and a free port for the next server.  The clusters tell
a serving process from a zombie with it; the benchmarks measure a job's whole process tree (JVMs,
SDK workers) with it."""
from __future__ import annotations

import os
import socket
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessStat:
    """The fields of ``/proc/<pid>/stat`` that are used here; CPU in seconds."""
    pid: int
    state: str  # R, S, D, Z (a zombie: exited, not yet reaped), ...
    parent: int
    group: int
    cpu_s: float  # utime + stime: the process itself
    reaped_children_cpu_s: float  # cutime + cstime: its children it has waited for

    @property
    def total_cpu_s(self) -> float:
        return self.cpu_s + self.reaped_children_cpu_s


def _read_stat(path: Path) -> ProcessStat | None:
    try:
        text = path.read_text()
    except OSError:  # gone between listing and reading
        return None
    # the command name (in parentheses) may hold spaces and parentheses: split after the last ")"
    fields = text.rsplit(")", 1)[1].split()
    return ProcessStat(
        pid=int(path.parent.name), state=fields[0], parent=int(fields[1]), group=int(fields[2]),
        cpu_s=(int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        reaped_children_cpu_s=(int(fields[13]) + int(fields[14])) / CLOCK_TICKS)


def stat(pid: int) -> ProcessStat | None:
    """One process, None when it is gone."""
    return _read_stat(Path(f"/proc/{pid}/stat"))


def process_table() -> dict[int, ProcessStat]:
    """Every process of this machine, by pid."""
    table = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        found = _read_stat(path)
        if found is not None:
            table[found.pid] = found
    return table


def members(table: dict[int, ProcessStat], roots: set[int], groups: set[int] = frozenset()) -> set[int]:
    """The processes under ``roots`` (themselves included) and those in the process ``groups``."""
    children = defaultdict(list)
    for pid, process in table.items():
        children[process.parent].append(pid)
    found = {pid for pid, process in table.items() if process.group in groups}
    todo = [root for root in roots if root in table]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children[pid]
    return found


def is_running(pid: int) -> bool:
    """It exists and is not a zombie (killed, not yet reaped by the process that started it)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    process = stat(pid)
    return process is not None and process.state != "Z"


def group_alive(group: int) -> bool:
    """Whether any process of a process group still runs (zombies do not count)."""
    return any(p.group == group and p.state != "Z" for p in process_table().values())


def free_port() -> int:
    """A loopback port no one listens on now (the kernel's pick): for a server started next."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    """A process's high-water mark of resident memory (VmHWM), MB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
