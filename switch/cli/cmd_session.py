"""``switchctl login|logout|status|unlock``: sessions and status over the API socket.

``register(subparsers)`` is called by ``switch.cli.switchctl``. Each command accepts
``--socket`` (default ``var/run/switch.sock``) and ``--token-file`` both before and after
the command name: the options are added with ``default=SUPPRESS`` here so that a value
given to the top-level parser is not overwritten by a subcommand default.

Exit status: 0 done, 1 refused by the daemon or daemon unreachable, 2 usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any
from urllib.parse import quote

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


def register(subparsers: Any) -> None:
    """Add the session commands to switchctl's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--socket",
        default=argparse.SUPPRESS,
        help=f"switchd API socket (default {DEFAULT_SOCKET})",
    )
    common.add_argument(
        "--token-file",
        default=argparse.SUPPRESS,
        help="where the session token is kept (default: see docs/api.md)",
    )

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


def format_status(data: dict[str, Any]) -> str:
    """The human table of ``/v1/status``."""
    lines = []
    links = data.get("links") or []
    if links:
        rows = [("LINK", "NETWORK", "STATE", "QUEUE")] + [
            (
                str(link.get("name", "")),
                str(link.get("network", "")),
                str(link.get("state", "")),
                str(link.get("queue_depth", "")),
            )
            for link in links
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    else:
        lines.append("links: none configured")
    audit = data.get("audit") or {}
    healthy = audit.get("healthy")
    lines.append(f"audit: {'healthy' if healthy else 'FAILING' if healthy is False else '?'}")
    lines.append(f"sessions: {data.get('sessions', '?')}")
    return "\n".join(lines)


def cmd_unlock(args: argparse.Namespace) -> int:
    try:
        data = _client(args).call("POST", f"/v1/operators/{quote(args.operator, safe='')}/unlock")
    except (ApiError, ClientError) as exc:
        return _fail(exc)
    state = "was locked, now unlocked" if data.get("was_locked") else "was not locked"
    print(f"{args.operator}: {state}")
    return 0
