"""Application logs: structlog JSON lines on stdout, Twisted's own events forwarded.

THE RULE (DESIGN §7, last bullet): a log event carries ids, link and network names,
states, codes and counts, never criminal-justice information (names, DOBs, plates, VINs,
record or message text), passwords, tokens, secrets or frame contents. Concretely:

- The event string is a constant (``log.info("inquiry sent", ...)``), never formatted
  with values; values go in keyword arguments.
- Keyword arguments must be in :data:`ALLOWED_KEYS`. Anything else is replaced by
  ``"[redacted]"`` by a processor before rendering, so a careless ``text=frame`` shows up
  as a visible redaction, not as leaked data. Add a key to the list on purpose, in
  review, when it can only ever hold ids, states or numbers.
- Bind context explicitly (``log.bind(link=..., message_id=...)`` or :func:`bind_safe`);
  contextvars do not follow Deferred callbacks.
- Exceptions are rendered as type, message and frames without local variables (locals
  can hold message content).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Final, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, WrappedLogger
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)
from zope.interface import implementer

from switch.utc import format_ts

#: Keys a log event may carry (besides structlog's own). Ids, names of configured
#: things, states, codes, counts and durations only.
ALLOWED_KEYS: Final = frozenset(
    {
        # structlog / rendering
        "event",
        "level",
        "timestamp",
        "logger",
        "exception",
        "exc_info",
        # identifiers
        "id",
        "message_id",
        "msg_id",
        "inquiry_id",
        "wire_id",
        "re",
        "seq",
        "session",
        "request_id",
        "control",
        # configured names
        "link",
        "network",
        "terminal",
        "operator",
        "by_operator",
        "ori",
        "station",
        "route",
        "dest",
        "audit_event",
        "namespace",
        # states, codes, numbers
        "state",
        "old_state",
        "new_state",
        "old",
        "new",
        "cause",
        "fatal",
        "what",
        "status",
        "code",
        "reason",
        "method",
        "kind",
        "key",
        "subject",
        "outcome",
        "count",
        "attempt",
        "delay",
        "duration_ms",
        "size",
        "limit",
        "window",
        "pid",
        "path",
        "socket",
        "port",
        "host",
        "peer",
        "operators",
        "error",
        "version",
    }
)

REDACTED: Final = "[redacted]"

_TWISTED_LEVELS: Final = {
    LogLevel.debug: "debug",
    LogLevel.info: "info",
    LogLevel.warn: "warning",
    LogLevel.error: "error",
    LogLevel.critical: "critical",
}


def redact_unknown_keys(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """structlog processor: replace the value of any key not in ALLOWED_KEYS."""
    for key in list(event):
        if key not in ALLOWED_KEYS:
            event[key] = REDACTED
    return event


def add_timestamp(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """structlog processor: ``timestamp``, UTC with microseconds, the audit's format (a
    third of the cost of structlog's TimeStamper, which formats the whole date each time)."""
    event["timestamp"] = format_ts(time.time())
    return event


#: json.dumps(sort_keys=True) builds an encoder per call when given options; one, once.
_LOG_ENCODER: Final = json.JSONEncoder(sort_keys=True, default=repr)


def _render_json(event: EventDict, **_: Any) -> str:
    return _LOG_ENCODER.encode(event)


def processors() -> list[Any]:
    """The processor chain: level, UTC time, redaction, exceptions without locals, JSON."""
    return [
        structlog.processors.add_log_level,
        add_timestamp,
        redact_unknown_keys,
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
        structlog.processors.JSONRenderer(serializer=_render_json),
    ]


def configure(stream: TextIO | None = None, level: str = "info", *, cache: bool = False) -> None:
    """Configure structlog to write one JSON object per line to ``stream`` (stdout).

    ``cache``: each module logger binds its processors once, on first use, instead of on
    every call (a daemon's setting; tests that reconfigure logging leave it off).
    """
    structlog.configure(
        processors=processors(),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream if stream is not None else sys.stdout),
        cache_logger_on_first_use=cache,
    )


def bind_safe(logger: Any, **values: object) -> Any:
    """``logger.bind(**values)`` that refuses (ValueError) a key outside ALLOWED_KEYS.

    Use it where context is bound once for a long-lived object (a link, a session):
    a mistake is then caught by the first test, not merely redacted at run time.
    """
    bad = sorted(set(values) - ALLOWED_KEYS)
    if bad:
        raise ValueError(f"log keys not allowed (see switch.logs): {', '.join(bad)}")
    return logger.bind(**values)


@implementer(ILogObserver)
class TwistedToStructlog:
    """A Twisted log observer forwarding each event into structlog.

    Twisted's message is formatted (its formats hold peers, ports and states, not
    payloads); failures keep their type and message, and their traceback without
    locals (``Failure.getTraceback`` at its default detail).
    """

    def __init__(self, logger: Any | None = None) -> None:
        self._logger = logger if logger is not None else structlog.get_logger("twisted")

    def __call__(self, event: MutableMapping[str, Any]) -> None:
        level = _TWISTED_LEVELS.get(event.get("log_level", LogLevel.info), "info")
        if event.get("isError") and level == "info":
            level = "error"
        text = formatEvent(dict(event)) or ""
        fields: dict[str, object] = {"namespace": str(event.get("log_namespace", "twisted"))}
        failure = event.get("log_failure")
        if failure is not None:
            fields["error"] = f"{failure.type.__name__}: {failure.getErrorMessage()}"
            fields["exception"] = failure.getTraceback()
        getattr(self._logger, level)(text, **fields)


def start_twisted_logging(min_level: str = "info") -> None:
    """Route Twisted's global log to structlog (entry points only, once per process).

    ``redirectStandardIO=False``: we write to stdout ourselves, and redirecting it into
    the log would loop.
    """
    predicate = LogLevelFilterPredicate(
        defaultLogLevel=LogLevel.levelWithName(_twisted_level_name(min_level))
    )
    observer = FilteringLogObserver(TwistedToStructlog(), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _twisted_level_name(level: str) -> str:
    return {"warning": "warn"}.get(level.lower(), level.lower())
