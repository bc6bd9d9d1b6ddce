"""``switchctl intercept ...|link retry|reload|route explain``: the admin's commands.

- ``intercept list|show|lock|edit|reroute|resend|delete``: the intercept queue (DESIGN §6);
  edit, reroute, resend and delete need the item locked by you first (else 409).
- ``link retry NAME``: redial a link now (after ``auth_failed``, say).
- ``reload``: the daemon re-reads and applies its configuration, or refuses it.
- ``route explain DEST``: which rule and network a teletype destination gets. Asks the
  daemon (its live configuration); when switchd is not running, or with ``--offline``,
  answers from the configuration files instead.

Exit status: 0 done, 2 error (one line on stderr); ``route explain`` exits 1 when the
destination is unroutable (it would go to the intercept queue).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from switch.cli import render
from switch.cli.client import ClientError
from switch.cli.cmd_query import connection_options, guarded, make_client, print_json, q
from switch.cli.cmd_teletype import _split, read_text
from switch.cli.switchctl import add_config_option, config_path
from switch.config import ConfigInvalid, load_config
from switch.model import ValidationError
from switch.routing.destinations import is_destination, match, validate_destinations

EXIT_UNROUTABLE: Final = 1


def register(subparsers: Any) -> None:
    """Add intercept, link, reload and route."""
    common = connection_options()

    intercept = subparsers.add_parser("intercept", help="the intercept queue (admin)")
    intercept.set_defaults(_parser=intercept)
    sub = intercept.add_subparsers(dest="intercept_command", metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="items waiting for an admin")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=guarded(cmd_intercept_list))

    p = sub.add_parser("show", parents=[common], help="one item in full")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=guarded(cmd_intercept_show))

    p = sub.add_parser("lock", parents=[common], help="lock an item to work on it (15 min)")
    p.add_argument("id")
    p.set_defaults(func=guarded(cmd_intercept_lock))

    p = sub.add_parser("edit", parents=[common], help="change the text and/or destinations")
    p.add_argument("id")
    p.add_argument("--text", help="new text")
    p.add_argument("--text-stdin", action="store_true", help="read the new text from stdin")
    p.add_argument("--to", action="append", metavar="DEST", help="new destinations")
    p.set_defaults(func=guarded(cmd_intercept_edit))

    p = sub.add_parser("reroute", parents=[common], help="change the destinations")
    p.add_argument("id")
    p.add_argument("--to", action="append", required=True, metavar="DEST", help="destinations")
    p.set_defaults(func=guarded(cmd_intercept_edit), text=None, text_stdin=False)

    p = sub.add_parser("resend", parents=[common], help="send the (edited) item again")
    p.add_argument("id")
    p.set_defaults(func=guarded(cmd_intercept_resend))

    p = sub.add_parser("delete", parents=[common], help="drop the item (audited)")
    p.add_argument("id")
    p.set_defaults(func=guarded(cmd_intercept_delete))

    link = subparsers.add_parser("link", help="network links")
    link.set_defaults(_parser=link)
    link_sub = link.add_subparsers(dest="link_command", metavar="COMMAND")
    p = link_sub.add_parser("retry", parents=[common], help="redial a link now")
    p.add_argument("name", help="link name: local, regional, state, national")
    p.set_defaults(func=guarded(cmd_link_retry))

    p = subparsers.add_parser("reload", parents=[common], help="re-read the configuration")
    p.set_defaults(func=guarded(cmd_reload))

    route = subparsers.add_parser("route", help="teletype routing")
    route.set_defaults(_parser=route)
    route_sub = route.add_subparsers(dest="route_command", metavar="COMMAND")
    p = route_sub.add_parser("explain", parents=[common], help="which rule and network for DEST")
    p.add_argument("dest", help="ORI, state code or broadcast code")
    p.add_argument("--offline", action="store_true", help="use the config files, not switchd")
    p.add_argument("--json", action="store_true", help="print the JSON answer")
    add_config_option(p)
    p.set_defaults(func=guarded(cmd_route_explain))


# --------------------------------------------------------------------------- intercept


def _items(data: Any) -> list[Mapping[str, Any]]:
    items = data.get("items") if isinstance(data, Mapping) else None
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def cmd_intercept_list(args: argparse.Namespace) -> int:
    """A table of intercepted messages."""
    data = make_client(args).call("GET", "/v1/intercept")
    if args.json:
        print_json(data)
        return 0
    items = _items(data)
    if not items:
        print("intercept queue empty")
        return 0
    rows = []
    for item in items:
        message = item.get("message") if isinstance(item.get("message"), Mapping) else {}
        assert isinstance(message, Mapping)
        to = message.get("to") if isinstance(message.get("to"), list) else []
        rows.append(
            (
                item.get("id", "?"),
                item.get("reason", "?"),
                message.get("key", "?"),
                ",".join(map(str, to or [])),
                item.get("locked_by") or "-",
                render.short(message.get("text", "")),
            )
        )
    print(render.table(("ID", "REASON", "KEY", "TO", "LOCKED BY", "TEXT"), rows))
    return 0


def cmd_intercept_show(args: argparse.Namespace) -> int:
    """One item with its whole message."""
    data = make_client(args).call("GET", f"/v1/intercept/{q(args.id)}")
    if args.json:
        print_json(data)
    else:
        print(render.render_intercept(data if isinstance(data, Mapping) else {}))
    return 0


def cmd_intercept_lock(args: argparse.Namespace) -> int:
    data = make_client(args).call("POST", f"/v1/intercept/{q(args.id)}/lock")
    until = data.get("expires") if isinstance(data, Mapping) else None
    print(
        f"intercept {render.clean(args.id)} locked"
        + (f" until {render.clean(until)}" if until else "")
    )
    return 0


def cmd_intercept_edit(args: argparse.Namespace) -> int:
    """PATCH the text and/or the destinations (needs the lock)."""
    body: dict[str, Any] = {}
    if args.text is not None or args.text_stdin:
        body["text"] = read_text(args.text if not args.text_stdin else None)
    if args.to:
        body["to"] = list(validate_destinations("AM", _split(args.to)))
    if not body:
        raise ValidationError("text", "nothing to change: give --text, --text-stdin or --to")
    make_client(args).call("PATCH", f"/v1/intercept/{q(args.id)}", body)
    changed = " and ".join(("text" if k == "text" else "destinations") for k in body)
    print(f"intercept {render.clean(args.id)}: {changed} changed")
    return 0


def cmd_intercept_resend(args: argparse.Namespace) -> int:
    data = make_client(args).call("POST", f"/v1/intercept/{q(args.id)}/resend")
    print(f"intercept {render.clean(args.id)} resent")
    routes = data.get("routes") if isinstance(data, Mapping) else None
    if isinstance(routes, list):
        for line in render.render_routes(r for r in routes if isinstance(r, Mapping)):
            print(line)
    return 0


def cmd_intercept_delete(args: argparse.Namespace) -> int:
    make_client(args).call("DELETE", f"/v1/intercept/{q(args.id)}")
    print(f"intercept {render.clean(args.id)} deleted")
    return 0


# --------------------------------------------------------------------------- link, reload


def cmd_link_retry(args: argparse.Namespace) -> int:
    data = make_client(args).call("POST", f"/v1/links/{q(args.name)}/retry")
    state = data.get("state") if isinstance(data, Mapping) else None
    line = f"link {render.clean(args.name)}: redial requested"
    print(line + (f" (state {render.clean(state)})" if state else ""))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Ask the daemon to reload; a refused configuration is an error with its reason."""
    data = make_client(args, timeout=60.0).call("POST", "/v1/reload")
    print("configuration reloaded")
    if isinstance(data, Mapping):
        for key, value in data.items():
            if isinstance(value, list) and value:
                print(f"  {render.clean(key)}: {', '.join(render.clean(v) for v in value)}")
    return 0


# --------------------------------------------------------------------------- route explain


def cmd_route_explain(args: argparse.Namespace) -> int:
    """The daemon's answer, or the config files' when switchd cannot be reached."""
    dest = args.dest.strip().upper()
    if not is_destination(dest):
        raise ValidationError("dest", f"dest: {args.dest!r} is not an ORI, state or broadcast code")
    source = "switchd"
    answer: Mapping[str, Any] | None = None
    if not args.offline:
        try:
            data = make_client(args).call("GET", f"/v1/routes/explain?dest={quote(dest)}")
            answer = data if isinstance(data, Mapping) else {}
        except ClientError as exc:
            print(f"switchctl: {exc}; answering from the config files", file=sys.stderr)
    if answer is None:
        answer = explain_offline(config_path(args), dest)
        source = str(config_path(args))
    if args.json:
        print_json(dict(answer))
    network, rule = answer.get("network"), answer.get("rule")
    if not args.json:
        if network and rule is not None:
            print(f"{dest}: rule {render.clean(rule)} -> {render.clean(network)}  ({source})")
        elif rule is not None:
            print(f"{dest}: rule {render.clean(rule)} has no link: unroutable, intercept queue")
        else:
            print(f"{dest}: no rule matches: unroutable, intercept queue  ({source})")
    return 0 if network else EXIT_UNROUTABLE


def explain_offline(path: Any, dest: str) -> dict[str, Any]:
    """{dest, rule, network} from routes.toml, as the daemon would answer (first match)."""
    try:
        config = load_config(path, check_files=False, check_demo_passwords=False)
    except ConfigInvalid as exc:
        first = str(exc.errors[0]) if exc.errors else str(exc)
        raise ClientError(f"{path}: {len(exc.errors)} config error(s), first: {first}") from None
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    rule = match(config.routes.destinations, dest)
    return {
        "dest": dest,
        "rule": rule.pattern if rule else None,
        "network": rule.link if rule else None,
    }
