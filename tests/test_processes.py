"""runners.processes: this machine's process tree and groups as /proc shows them, checked against
processes this test starts itself."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from runners import processes

# a parent that starts a child and prints the child's pid, then both sleep
PARENT = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', "
          "'import time; time.sleep(60)']); print(child.pid, flush=True); time.sleep(60)")


def test_a_tree_holds_its_children_and_a_group_its_members():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        table = processes.process_table()
        assert table[child].parent == parent.pid and table[child].group == parent.pid
        assert processes.members(table, {parent.pid}) == {parent.pid, child}
        assert processes.members(table, set(), {parent.pid}) == {parent.pid, child}
        assert processes.is_running(child) and processes.group_alive(parent.pid)
        assert processes.peak_rss_mb(child) > 1
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 10
    while processes.group_alive(parent.pid) and time.time() < deadline:  # the child is reaped by init
        time.sleep(0.05)
    assert not processes.group_alive(parent.pid)
    assert processes.stat(parent.pid) is None and processes.peak_rss_mb(parent.pid) == 0.0


def test_a_zombie_is_not_running_and_its_cpu_is_counted_in_seconds():
    child = subprocess.Popen([sys.executable, "-c", "sum(range(10**7))"])
    while processes.stat(child.pid).state != "Z":  # exited, not yet waited for
        time.sleep(0.02)
    assert not processes.is_running(child.pid)
    assert 0 < processes.stat(child.pid).cpu_s < 60
    own = processes.stat(os.getpid())
    child.wait()
    assert processes.stat(os.getpid()).reaped_children_cpu_s > own.reaped_children_cpu_s


def test_a_free_port_can_be_listened_on():
    port = processes.free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
