"""The one way ``voicelake run``, ``export`` and ``report`` are given UTC days.

A day is ``YYYY-MM-DD``; a list of days is days and ``FIRST..LAST`` ranges (both ends included),
comma-separated and mixed at will: ``2024-05-01..2024-05-03,2024-05-07``.  The days come back
sorted, each once.  Every refusal is the same one line, naming the option, the part that is wrong
and what is expected.  Pure Python: the commands check their dates before Beam is imported.
"""
from __future__ import annotations

import datetime as dt
import re

DAY = "YYYY-MM-DD"
DAYS = "YYYY-MM-DD, a comma-separated list of them, or FIRST..LAST ranges"
DAYS_EXAMPLE = "2024-05-01..2024-05-03,2024-05-07"

# fromisoformat alone would also take 20240514 and 2024-W20-2 (Python 3.11)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def refusal(option: str, text: str, part: str, problem: str, expected: str, example: str) -> ValueError:
    """``--date=14/05/2024 is not a date: expected ...``; the wrong part is named apart when it is
    not the whole value."""
    where = f"{option}={text}" if part == text else f"{option}={text}: {part}"
    return ValueError(f"{where} {problem}: expected {expected}, e.g. {option}={example}")


def _parsed_day(text: str) -> dt.date | None:
    if not _DAY.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:  # 2024-02-30
        return None


def day(option: str, text: str) -> dt.date:
    """One day, for an option that takes exactly one (``run --start_date``)."""
    found = _parsed_day(text)
    if found is None:
        raise refusal(option, text, text, "is not a date", DAY, "2024-05-14")
    return found


def days_between(first: dt.date, last: dt.date) -> list[str]:
    """Every day from ``first`` to ``last``, both included, as YYYY-MM-DD."""
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def parse_dates(text: str, option: str) -> list[str]:
    """The days an option's value names, sorted and each once; ValueError naming the option and
    the wrong part otherwise (a day that is not one, a range that ends before it starts, nothing)."""
    found: set[str] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        first_text, is_range, last_text = (end.strip() for end in item.partition(".."))
        first, last = _parsed_day(first_text), _parsed_day(last_text if is_range else first_text)
        if first is None or last is None:
            bad = (first_text if first is None else last_text) or item  # "2024-05-14.." names it all
            raise refusal(option, text, bad, "is not a date", DAYS, DAYS_EXAMPLE)
        if last < first:
            raise refusal(option, text, item, "ends before it starts", DAYS, DAYS_EXAMPLE)
        found.update(days_between(first, last))
    if not found:
        raise refusal(option, text, text, "holds no date", DAYS, DAYS_EXAMPLE)
    return sorted(found)
