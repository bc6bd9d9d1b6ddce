"""``switchctl login|logout|status|unlock``: sessions and status over the API socket.

``register(subparsers)`` is called by ``switch.cli.switchctl``. Each command accepts
``--socket`` (default ``var/run/switch.sock``) and ``--token-file`` both before and after
the command name: the options are added with ``default=SUPPRESS`` here so that a value
given to the top-level parser is not overwritten by a subcommand default.

Exit status: 0 done, 1 refused by the daemon or daemon unreachable, 2 usage.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import getpass
import json
import sys
import time
from typing import Any
from urllib.parse import quote

from switch.cli import render
from switch.cli.client import (
    DEFAULT_SOCKET,
    ApiError,
    Client,
    ClientError,
    clear_token,
    load_token,
    save_token,
    token_path,
)
from switch.cli.cmd_query import connection_options


def register(subparsers: Any) -> None:
    """Add the session commands to switchctl's subparsers."""
    common = connection_options()

    p = subparsers.add_parser("login", parents=[common], help="log on to switchd")
    p.add_argument("--terminal", required=True, help="terminal id, e.g. ADMIN1")
    p.add_argument("--operator", required=True, help="operator name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=cmd_login)

    p = subparsers.add_parser("logout", parents=[common], help="end the session")
    p.set_defaults(func=cmd_logout)

    p = subparsers.add_parser("status", parents=[common], help="links, audit, sessions")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("unlock", parents=[common], help="lift an operator's lockout")
    p.add_argument("operator", help="operator name")
    p.set_defaults(func=cmd_unlock)


def _socket(args: argparse.Namespace) -> str:
    return str(getattr(args, "socket", None) or DEFAULT_SOCKET)


def _client(args: argparse.Namespace, with_token: bool = True) -> Client:
    token = None
    if with_token:
        token = load_token(token_path(_socket(args), getattr(args, "token_file", None)))
    return Client(_socket(args), token=token)


def _fail(exc: Exception) -> int:
    if isinstance(exc, ApiError):
        extra = f" (field {exc.field})" if exc.field else ""
        if exc.retry_after:
            extra += f"; retry after {exc.retry_after} s"
        print(f"switchctl: {exc.message}{extra} [HTTP {exc.status}]", file=sys.stderr)
        if exc.status == 401:
            print("switchctl: log on with `switchctl login`", file=sys.stderr)
    else:
        print(f"switchctl: {exc}", file=sys.stderr)
    return 1


def cmd_login(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.operator}: ")
    client = _client(args, with_token=False)
    try:
        data = client.call(
            "POST",
            "/v1/sessions",
            {"terminal": args.terminal, "operator": args.operator, "password": password},
        )
    except (ApiError, ClientError) as exc:
        return _fail(exc)
    path = token_path(_socket(args), getattr(args, "token_file", None))
    save_token(path, str(data["token"]))
    expires = data.get("expires") or "never (idle-exempt terminal)"
    roles = ", ".join(data.get("roles", []))
    print(f"logged on: {args.operator} at {args.terminal}; roles {roles}; expires {expires}")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    path = token_path(_socket(args), getattr(args, "token_file", None))
    client = _client(args)
    if client.token is None:
        print("switchctl: not logged on", file=sys.stderr)
        return 1
    try:
        client.call("DELETE", "/v1/sessions/current")
    except ApiError as exc:
        if exc.status != 401:  # an expired session is logged off anyway
            return _fail(exc)
    except ClientError as exc:
        return _fail(exc)
    clear_token(path)
    print("logged off")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        data = _client(args).call("GET", "/v1/status")
    except (ApiError, ClientError) as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print(format_status(data))
    return 0


def format_status(data: dict[str, Any], now: float | None = None) -> str:
    """The human tables of ``/v1/status``: links (state, since, queue depth and age, last
    error), audit health, sessions, hit confirmations. Everything the daemon sends is
    printed through :func:`render.clean` (no control characters reach the terminal)."""
    now = time.time() if now is None else now
    lines = []
    links = data.get("links") or []
    if links:
        rows = []
        for link in links:
            oldest = link.get("queue_oldest_seconds")
            rows.append(
                (
                    link.get("name", ""),
                    link.get("network", ""),
                    link.get("state", ""),
                    _since(link.get("since"), now),
                    link.get("queue_depth", ""),
                    _duration(oldest) if oldest else "-",
                    render.short(link.get("last_error") or "-", 60),
                )
            )
        header = ("LINK", "NETWORK", "STATE", "SINCE", "QUEUE", "OLDEST", "LAST ERROR")
        lines.append(render.table(header, rows))
    else:
        lines.append("links: none configured")
    audit = data.get("audit") or {}
    healthy = audit.get("healthy")
    lines.append("")
    lines.append(f"audit: {'healthy' if healthy else 'FAILING' if healthy is False else '?'}")
    lines.append(f"sessions: {render.clean(data.get('sessions', '?'))}")
    sessions = data.get("session_list") or []
    if sessions:
        session_rows = [
            (
                "  " + render.clean(s.get("terminal", "")),
                s.get("operator", ""),
                ",".join(str(r) for r in s.get("roles") or []),
                _since(s.get("since"), now),
                "-" if s.get("idle_seconds") is None else _duration(s["idle_seconds"]),
            )
            for s in sessions
        ]
        session_header = ("  TERMINAL", "OPERATOR", "ROLES", "SINCE", "IDLE")
        lines.append(render.table(session_header, session_rows))
    confirmations = data.get("hit_confirmations")
    if isinstance(confirmations, dict):
        overdue = confirmations.get("overdue", 0)
        mark = "  <-- answer them (switchctl confirm)" if overdue else ""
        lines.append(f"hit confirmations overdue: {render.clean(overdue)}{mark}")
    return "\n".join(lines)


def _duration(seconds: object) -> str:
    """``75`` -> ``1m15s``; ``3700`` -> ``1h01m``."""
    try:
        total = int(float(str(seconds)))
    except ValueError:
        return "?"
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60:02d}m"
    return f"{total // 86400}d{total % 86400 // 3600:02d}h"


def _since(value: object, now: float) -> str:
    """An ISO time as ``HH:MM:SSZ (age)``; unparseable values are shown as they are."""
    if not isinstance(value, str) or not value:
        return "-"
    try:
        moment = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return render.clean(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    age = max(0.0, now - moment.timestamp())
    return f"{moment.astimezone(_dt.UTC):%H:%M:%S}Z ({_duration(age)} ago)"


def cmd_unlock(args: argparse.Namespace) -> int:
    try:
        data = _client(args).call("POST", f"/v1/operators/{quote(args.operator, safe='')}/unlock")
    except (ApiError, ClientError) as exc:
        return _fail(exc)
    state = "was locked, now unlocked" if data.get("was_locked") else "was not locked"
    print(f"{args.operator}: {state}")
    return 0
