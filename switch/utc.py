"""UTC timestamps as text: the audit's ``ts`` column and the application log's
``timestamp`` (DESIGN §7: UTC, at least 1/100 s).

Microseconds and ``Z``, fixed width, so that text order is time order (audit search
relies on it). Both are written for every record and every log line, so the text of
the current second is kept and only the microseconds are formatted each time.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Final

TS_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_ts(seconds: float) -> str:
    """Same text as ``datetime.fromtimestamp(seconds, UTC).strftime(TS_FORMAT)`` (a
    property test compares them), rounding to the microsecond included."""
    fraction, whole = math.modf(seconds)
    micros = round(fraction * 1e6)  # half-even, as datetime.fromtimestamp rounds
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1.0
    elif micros < 0:
        micros += 1_000_000
        whole -= 1.0
    global _second
    second = _second  # one read: another thread may replace it meanwhile
    if whole != second[0]:
        value = _dt.datetime.fromtimestamp(whole, _dt.UTC)
        if value.year < 1000:  # isoformat pads the year; keep strftime's text for these
            return _dt.datetime.fromtimestamp(seconds, _dt.UTC).strftime(TS_FORMAT)
        second = _second = (whole, value.replace(tzinfo=None).isoformat(timespec="seconds"))
    return f"{second[1]}.{micros:06d}Z"


#: The last second :func:`format_ts` wrote, and its text.
_second: tuple[float, str] = (math.nan, "")


def parse_ts(text: str) -> str:
    """An ISO date or date-time (naive means UTC) in the column's format, for --since."""
    try:
        value = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO date or date-time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value.astimezone(_dt.UTC).strftime(TS_FORMAT)
