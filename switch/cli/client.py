"""A small synchronous client for the switchd API over its UNIX socket (for switchctl).

Blocking on purpose: switchctl is a one-shot command, and ``http.client`` over an
``AF_UNIX`` socket needs no Twisted reactor.

Where the token lives (``switchctl login`` writes it, the other commands read it):

1. ``--token-file PATH`` if given;
2. else ``$XDG_RUNTIME_DIR/switchctl-<hash>.token`` when ``XDG_RUNTIME_DIR`` is set
   (a per-user tmpfs, the usual place for session secrets);
3. else ``switchctl-<uid>-<hash>.token`` beside the socket (``var/run/``).

``<hash>`` is the first 12 hex digits of SHA-256 of the socket's absolute path, so two
daemons on one host keep separate tokens. The file is created mode 0600 (written beside
and renamed) and removed by ``switchctl logout``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

DEFAULT_SOCKET: Final = "var/run/switch.sock"
DEFAULT_TIMEOUT: Final = 30.0


class ClientError(Exception):
    """The daemon could not be reached or answered nonsense."""


class ApiError(Exception):
    """The daemon answered an error status; fields from its JSON error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(f"{message} (HTTP {status} {code})")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after


class UnixHTTPConnection(http.client.HTTPConnection):
    """``HTTPConnection`` whose socket is ``AF_UNIX`` at ``path``; Host is ``switch``."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__("switch", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass
class Reply:
    """A decoded answer."""

    status: int
    data: Any
    headers: dict[str, str] = field(default_factory=dict)


class Client:
    """``call(method, path, body)`` -> decoded JSON; raises ApiError on >= 400."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str] = DEFAULT_SOCKET,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.socket_path = os.fspath(socket_path)
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> Reply:
        headers = {"Accept": "application/json"}
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            answer_headers = {k.lower(): v for k, v in resp.getheaders()}
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError(f"cannot talk to switchd at {self.socket_path}: {exc}") from None
        finally:
            conn.close()
        data: Any = None
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                raise ClientError(f"switchd answered {resp.status} with non-JSON") from None
        return Reply(resp.status, data, answer_headers)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        reply = self.request(method, path, body)
        if reply.status >= 400:
            error = reply.data.get("error", {}) if isinstance(reply.data, dict) else {}
            raise ApiError(
                reply.status,
                str(error.get("code", "error")),
                str(error.get("message", "request failed")),
                error.get("field"),
                reply.headers.get("retry-after"),
            )
        return reply.data


# --------------------------------------------------------------------------- token file


def token_path(socket_path: str | os.PathLike[str], explicit: str | None = None) -> Path:
    """Where the token for the daemon on ``socket_path`` is kept (see module doc)."""
    if explicit:
        return Path(explicit)
    absolute = os.path.abspath(os.fspath(socket_path))
    tag = hashlib.sha256(absolute.encode("utf-8")).hexdigest()[:12]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / f"switchctl-{tag}.token"
    return Path(absolute).parent / f"switchctl-{os.getuid()}-{tag}.token"


def save_token(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` mode 0600, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_token(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeError):
        return None
    return text or None


def clear_token(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
