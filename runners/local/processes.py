"""Helper servers started as processes on loopback (Beam's job service, worker pools), for tests
and benchmarks."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path


def job_service_command(port: int) -> list[str]:
    """Beam's Python local job service: the PortableRunner's endpoint without any engine."""
    return [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", f"--port={port}"]


@contextlib.contextmanager
def serving(command: list[str], port: int, log: Path | None = None, *, timeout_s: float = 60, **popen):
    """A server process, once its port accepts connections; stopped afterwards."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    try:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen)
        try:
            deadline = time.time() + timeout_s
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.time() > deadline:
                        tail = Path(log).read_text()[-2000:] if log else ""
                        raise RuntimeError(f"{' '.join(command[:3])} did not start on port {port}\n{tail}") from None
                    time.sleep(0.2)
            yield process
        finally:
            process.terminate()
            process.wait(30)
    finally:
        if log:
            out.close()
