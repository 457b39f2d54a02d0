"""pipeline.console, the words an operator reads, without a run: the one-line cause of a failure
and the log file's option read before any parser.  tests/test_operator.py runs the commands."""
from __future__ import annotations

from pipeline.console import one_line, option_value

REMOTE = """Traceback (most recent call last):
  File "apache_beam/runners/worker/sdk_worker.py", line 300, in _execute
    response = task()
NotADirectoryError: [Errno 20] Not a directory: '/lake/calls' [while running 'Lake/Write']"""


def test_a_workers_error_is_its_last_line_once_unwrapped():
    try:
        try:
            raise RuntimeError(f"RuntimeError: {REMOTE}")
        except RuntimeError as inner:
            raise ValueError("the pipeline failed") from inner
    except ValueError as exc:
        assert one_line(exc) == \
            "NotADirectoryError: [Errno 20] Not a directory: '/lake/calls' [while running 'Lake/Write']"


def test_an_error_without_a_name_in_its_text_gets_its_type_and_a_long_one_is_cut():
    assert one_line(KeyError("call_id")) == "KeyError: 'call_id'"
    long = one_line(OSError("x" * 400))
    assert len(long) == 300 and long.startswith("OSError: xxx") and long.endswith("...")


def test_the_log_file_is_read_in_either_spelling_and_may_be_absent():
    assert option_value(["--date=2024-05-14", "--log_file=logs/a.log"], "--log_file") == "logs/a.log"
    assert option_value(["--log_file", "logs/b.log", "--date=2024-05-14"], "--log_file") == "logs/b.log"
    assert option_value(["--date=2024-05-14", "--log_file"], "--log_file") is None
