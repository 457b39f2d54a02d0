"""What an operator sees of a command on the console, and what goes to its log file instead.

The console gets voicelake's own lines (progress, warnings) and errors in one or two lines that name
the option, bucket or prefix; everything else (Beam's and the workers' output, tracebacks) goes to
the log file, whose path every error prints.  No Beam here: ``--help`` and refusals run without it.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import sys
import tempfile

# exit statuses, as ``voicelake run --help`` states them
EXIT_FAILED, EXIT_USAGE, EXIT_NO_RECORDS = 1, 2, 3


def default_log_file() -> str:
    """voicelake-run-<UTC time>-<pid>.log in the system's temporary folder."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return os.path.join(tempfile.gettempdir(), f"voicelake-run-{stamp}-{os.getpid()}.log")


def option_value(argv: list[str], name: str) -> str | None:
    """``--name=value`` or ``--name value`` in a command line, read before any parser is (the log
    file opens before the options are checked, so that their refusal is logged too)."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


@contextlib.contextmanager
def stderr_to(path: str):
    """This process's and its worker processes' stderr (fd 2) into a file: Beam and its workers
    write there directly, not only through logging.  Yields a stream on the terminal's stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)
    with open(path, "ab") as log_:
        os.dup2(log_.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            terminal.close()


def configure_logging(log_file: str, terminal) -> None:
    """Everything to the log file; voicelake's own lines (progress, warnings) to the terminal."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    to_file = logging.FileHandler(log_file)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_terminal = logging.StreamHandler(terminal)
    # tracebacks (exc_info) stay in the file: the terminal gets the one-line message after them
    to_terminal.addFilter(lambda record: record.name.startswith("voicelake") and not record.exc_info)
    to_terminal.setFormatter(logging.Formatter("%(message)s"))
    root.handlers[:] = [to_file, to_terminal]


def one_line(exc: BaseException) -> str:
    """The innermost error of a failed run in one line: Beam wraps a worker's exception in a
    RuntimeError whose text holds the whole remote traceback, the last line of which names it."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    named = text if ":" in text.split(" ", 1)[0] else f"{type(exc).__name__}: {text}"
    # worker processes wrap it once more: "RuntimeError: NotADirectoryError: ..."
    named = re.sub(r"^(?:RuntimeError: )+(?=[A-Za-z_.]*(?:Error|Exception|Exit): )", "", named)
    return named if len(named) <= 300 else named[:297] + "..."
