"""A small Server-Sent Events client for ``GET /v1/events`` (DESIGN §5), for switchctl.

Two parts, kept apart so the hard one is testable without a socket:

- :class:`SSEParser`, sans-IO: ``feed(bytes) -> list[SSEEvent]`` following the WHATWG
  event-stream rules (lines end in CR LF, LF or CR, possibly split across reads; ``:``
  starts a comment; ``data`` lines join with ``\\n``; an empty line dispatches; ``id``
  persists as the last event id). UTF-8 is decoded incrementally, so a character split
  across two reads is not mangled. A line longer than ``max_line`` is refused with
  :class:`SSEError` (a hostile or broken daemon must not make us buffer without bound).
- :class:`EventStream`, blocking I/O on top of :class:`switch.cli.client.UnixHTTPConnection`
  (the same connection class as every other switchctl call, with the same stored bearer
  token). ``Client`` reads whole bodies; a stream needs to be read as it arrives, hence
  this module rather than a second client.
"""

from __future__ import annotations

import codecs
import http.client
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from switch.cli.client import ApiError, ClientError, UnixHTTPConnection

MAX_LINE: Final = 1024 * 1024  # a mailbox item is at most a few KiB; 1 MiB is generous
READ_SIZE: Final = 8192


class SSEError(Exception):
    """The event stream is malformed or oversized."""


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event. ``id`` is the last event id in force when it was dispatched."""

    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        """``data`` decoded as JSON; SSEError if it is not."""
        try:
            return json.loads(self.data)
        except ValueError:
            raise SSEError(f"event {self.event!r}: data is not JSON") from None


class SSEParser:
    """Incremental event-stream parser: feed bytes, get the events they complete."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max_line = max_line
        self._buffer = ""
        self._pending_cr = False  # the last chunk ended in CR: a following LF belongs to it
        self._first = True  # a leading BOM is ignored
        self._data: list[str] = []
        self._event = ""
        self._has_data = False
        self.last_event_id: str | None = None
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk``; return every event completed by it, in order."""
        text = self._decoder.decode(chunk)
        if self._first and text:
            self._first = False
            text = text.removeprefix("\ufeff")
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = False
        self._buffer += text
        events: list[SSEEvent] = []
        start = 0
        buf = self._buffer
        while True:
            cr = buf.find("\r", start)
            lf = buf.find("\n", start)
            if cr < 0 and lf < 0:
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            line = buf[start:end]
            if buf[end] == "\r":
                if end + 1 < len(buf):
                    start = end + 2 if buf[end + 1] == "\n" else end + 1
                else:
                    self._pending_cr = True
                    start = end + 1
            else:
                start = end + 1
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = buf[start:]
        if len(self._buffer) > self._max_line:
            raise SSEError(f"event stream line longer than {self._max_line} characters")
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
            if sum(len(d) for d in self._data) > self._max_line:
                raise SSEError(f"event data longer than {self._max_line} characters")
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isdigit():
                self.retry = int(value)
        return None  # unknown fields are ignored, as the standard says

    def _dispatch(self) -> SSEEvent | None:
        data, event, has_data = self._data, self._event, self._has_data
        self._data, self._event, self._has_data = [], "", False
        if not has_data:
            return None
        return SSEEvent(event or "message", "\n".join(data), self.last_event_id)


def api_error(status: int, raw: bytes, headers: dict[str, str]) -> ApiError:
    """The ApiError for an error answer, read as :meth:`Client.call` reads one."""
    error: Any = {}
    try:
        data = json.loads(raw) if raw else None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            error = data["error"]
    except ValueError:
        pass
    return ApiError(
        status,
        str(error.get("code", "error")),
        str(error.get("message", f"HTTP {status}")),
        error.get("field"),
        headers.get("retry-after"),
    )


class EventStream:
    """``GET /v1/events`` held open; iterate :meth:`events` until ``deadline`` or EOF.

    Raises ApiError for an error status, ClientError if the daemon cannot be reached
    or the stream breaks, SSEError for a malformed stream, TimeoutError at ``deadline``.
    """

    def __init__(
        self,
        socket_path: str,
        token: str | None,
        last_event_id: str | None = None,
        path: str = "/v1/events",
        connect_timeout: float = 10.0,
        clock: Any = time.monotonic,
    ) -> None:
        self.socket_path = socket_path
        self.parser = SSEParser()
        self.parser.last_event_id = last_event_id
        self._clock = clock
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self._conn = UnixHTTPConnection(socket_path, connect_timeout)
        try:
            self._conn.request("GET", path, headers=headers)
            self._resp = self._conn.getresponse()
            if self._resp.status >= 400:
                raw = self._resp.read()
                heads = {k.lower(): v for k, v in self._resp.getheaders()}
                raise api_error(self._resp.status, raw, heads)
            kind = (self._resp.getheader("Content-Type") or "").split(";")[0].strip()
            if kind != "text/event-stream":
                raise ClientError(f"switchd answered {path} with {kind or 'no content type'}")
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ClientError(f"cannot talk to switchd at {socket_path}: {exc}") from None
        except BaseException:
            self.close()
            raise

    @property
    def last_event_id(self) -> str | None:
        return self.parser.last_event_id

    def events(self, deadline: float | None = None) -> Iterator[SSEEvent]:
        """Events as they arrive; returns at end of stream; TimeoutError past ``deadline``."""
        while True:
            if deadline is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise TimeoutError("no event before the deadline")
                self._settimeout(remaining)
            else:
                self._settimeout(None)
            try:
                chunk = self._resp.read1(READ_SIZE)
            except TimeoutError:
                raise
            except (OSError, http.client.HTTPException) as exc:
                raise ClientError(f"event stream from switchd broke: {exc}") from None
            if not chunk:
                return
            yield from self.parser.feed(chunk)

    def _settimeout(self, value: float | None) -> None:
        sock = self._conn.sock
        if isinstance(sock, socket.socket):
            sock.settimeout(value)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
