"""``switchctl send|message|inbox|watch|confirm``: teletype and the terminal's mailbox.

- ``send``: post an AM (or YQ/YR) to ``/v1/messages``; prints the routes it got.
- ``message ID``: a sent message and the state of each route.
- ``inbox``: the mailbox (``/v1/mailbox``); ``--ack SEQ`` acknowledges items.
- ``watch``: the live event stream, pretty-printed (``--json``: one object per event),
  reconnecting with ``Last-Event-ID`` so nothing is lost across a daemon restart.
- ``confirm request|reply|list``: hit confirmation (YQ / YR, ``/v1/hit-confirmations``).

Exit status: 0 done, 2 error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from typing import Any, Final

from switch.cli import render
from switch.cli.client import ApiError, Client, ClientError
from switch.cli.cmd_query import (
    connection_options,
    fail,
    guarded,
    make_client,
    print_json,
    q,
    socket_path,
    stored_token,
)
from switch.cli.sse import EventStream, SSEError
from switch.model import (
    ADMIN_KEYS,
    PRIORITIES,
    ValidationError,
    normalize_name,
    validate_date,
    validate_ori,
)
from switch.routing.destinations import validate_destinations

#: watch: first reconnect delay, doubling to the maximum (tests shorten it)
RECONNECT_INITIAL: float = 1.0
RECONNECT_MAX: Final = 30.0
MAX_TEXT: Final = 60 * 1024
PAGE: Final = 500  # mailbox items per GET (the API allows up to 1000)
MAX_PAGES: Final = 20  # the API refuses bodies over 64 KiB: say so before sending


def register(subparsers: Any) -> None:
    """Add send, message, inbox, watch and confirm."""
    common = connection_options()

    p = subparsers.add_parser("send", parents=[common], help="send a teletype message")
    p.add_argument("--key", default="AM", choices=ADMIN_KEYS, help="message key (default AM)")
    p.add_argument(
        "--to",
        action="append",
        required=True,
        metavar="DEST",
        help="ORI, state or broadcast code (repeat or comma-separate)",
    )
    p.add_argument("--priority", default="routine", choices=PRIORITIES)
    p.add_argument("--text", help="message text (default: read from stdin)")
    p.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a YQ/YR field, canonical name (e.g. nic=W000000001)",
    )
    p.add_argument("--json", action="store_true", help="print the raw JSON answer")
    p.set_defaults(func=guarded(cmd_send))

    p = subparsers.add_parser("message", parents=[common], help="show a sent message")
    p.add_argument("id", help="message id (from send)")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=guarded(cmd_message))

    p = subparsers.add_parser("inbox", parents=[common], help="this terminal's mailbox")
    p.add_argument(
        "--ack", action="append", type=int, default=[], metavar="SEQ", help="acknowledge item SEQ"
    )
    p.add_argument(
        "--ack-all", action="store_true", help="acknowledge every item listed, after listing"
    )
    p.add_argument("--all", action="store_true", help="include acknowledged items")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=guarded(cmd_inbox))

    p = subparsers.add_parser("watch", parents=[common], help="follow events live")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument("--last-event-id", metavar="SEQ", help="resume after this mailbox seq")
    p.add_argument("--count", type=int, metavar="N", help="stop after N events")
    p.add_argument(
        "--no-reconnect", action="store_true", help="exit when the stream ends instead of resuming"
    )
    p.set_defaults(func=guarded(cmd_watch))

    confirm = subparsers.add_parser("confirm", help="hit confirmation (YQ / YR)")
    confirm.set_defaults(_parser=confirm)
    sub = confirm.add_subparsers(dest="confirm_command", metavar="COMMAND")

    p = sub.add_parser("request", parents=[common], help="ask the entering agency (YQ)")
    p.add_argument("--to", required=True, metavar="ORI", help="the record's entering ORI")
    p.add_argument("--nic", help="NCIC number of the record")
    p.add_argument("--oca", help="originating case number")
    p.add_argument("--name", help="LAST, FIRST MIDDLE")
    p.add_argument("--dob", help="YYYY-MM-DD")
    p.add_argument(
        "--urgency",
        default="R",
        type=str.upper,
        choices=("U", "R"),
        help="U: answer within 10 minutes, R: within 1 hour (default R)",
    )
    p.add_argument("--requester-name", help="RNA")
    p.add_argument("--requester-agency", help="RAG")
    p.add_argument("--phone", help="PHO")
    p.add_argument("--remarks", help="REM")
    p.add_argument("--json", action="store_true", help="print the raw JSON answer")
    p.set_defaults(func=guarded(cmd_confirm_request))

    p = sub.add_parser("reply", parents=[common], help="answer a request (YR)")
    p.add_argument("id", help="hit confirmation id")
    p.add_argument(
        "--confirmed",
        required=True,
        type=str.upper,
        choices=("Y", "N", "P"),
        help="Y confirmed, N not confirmed, P pending (say until when in --remarks)",
    )
    p.add_argument("--remarks", help="REM")
    p.add_argument("--json", action="store_true", help="print the raw JSON answer")
    p.set_defaults(func=guarded(cmd_confirm_reply))

    p = sub.add_parser("list", parents=[common], help="open hit confirmations and deadlines")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=guarded(cmd_confirm_list))


# --------------------------------------------------------------------------- send


def _split(values: list[str]) -> list[str]:
    return [v.strip().upper() for item in values for v in item.split(",") if v.strip()]


def read_text(text: str | None) -> str:
    """``--text`` or all of stdin; never empty, never over the API's body limit."""
    if text is None:
        if sys.stdin.isatty():
            print("enter the text; end with Ctrl-D on a line of its own", file=sys.stderr)
        text = sys.stdin.read()
    text = text.strip("\r\n")
    if not text.strip():
        raise ValidationError("text", "text: empty message (give --text or pipe it on stdin)")
    if len(text.encode("utf-8")) > MAX_TEXT:
        raise ValidationError("text", f"text: more than {MAX_TEXT // 1024} KiB")
    return text


def cmd_send(args: argparse.Namespace) -> int:
    """Post the message; print its id and each route."""
    to = list(validate_destinations(args.key, _split(args.to)))
    text = read_text(args.text)
    body: dict[str, Any] = {"key": args.key, "to": to, "text": text, "priority": args.priority}
    if args.field:
        fields = {}
        for item in args.field:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise ValidationError("fields", f"fields: expected NAME=VALUE, got {item!r}")
            fields[name.strip()] = value.strip()
        body["fields"] = fields
    data = make_client(args).call("POST", "/v1/messages", body)
    if args.json:
        print_json(data)
        return 0
    answer = data if isinstance(data, Mapping) else {}
    routes = answer.get("routes") if isinstance(answer.get("routes"), list) else []
    print(f"message {render.clean(answer.get('id', '?'))} accepted")
    for line in render.render_routes(r for r in routes or [] if isinstance(r, Mapping)):
        print(line)
    stuck = [r for r in routes or [] if isinstance(r, Mapping) and not r.get("network")]
    if stuck:
        print(
            f"switchctl: {len(stuck)} destination(s) unroutable: held in the intercept queue",
            file=sys.stderr,
        )
    return 0


def cmd_message(args: argparse.Namespace) -> int:
    """A sent message and its routes."""
    data = make_client(args).call("GET", f"/v1/messages/{q(args.id)}")
    if args.json:
        print_json(data)
        return 0
    m = data if isinstance(data, Mapping) else {}
    to = ", ".join(render.clean(t) for t in m.get("to") or [])
    print(
        f"message {render.clean(m.get('id', args.id))} {render.clean(m.get('key', ''))} "
        f"{render.clean(m.get('priority', ''))} created {render.clean(m.get('created', '?'))}"
    )
    print(f"  to: {to}")
    print("\n".join(render.indent(render.clean_block(m.get("text", "")))))
    routes = m.get("routes") if isinstance(m.get("routes"), list) else []
    for line in render.render_routes(r for r in routes or [] if isinstance(r, Mapping)):
        print(line)
    return 0


# --------------------------------------------------------------------------- mailbox


def cmd_inbox(args: argparse.Namespace) -> int:
    """List the mailbox, or acknowledge items."""
    client = make_client(args)
    if args.ack:
        for seq in args.ack:
            client.call("POST", f"/v1/mailbox/{seq}/ack")
            print(f"acknowledged #{seq}")
        return 0
    items = _mailbox(client, unacked=not args.all)
    if args.json:
        print_json({"items": items})
    elif not items:
        print("inbox empty")
    else:
        for item in items:
            print(render.render_event(str(item.get("kind", "?")), item, item.get("seq")))
    if args.ack_all:
        for item in items:
            if isinstance(item.get("seq"), int):
                client.call("POST", f"/v1/mailbox/{item['seq']}/ack")
        if not args.json:
            print(f"acknowledged {len(items)} item(s)")
    return 0


def _mailbox(client: Client, unacked: bool) -> list[Mapping[str, Any]]:
    """Every item, page by page (``after=`` the last seq seen), at most MAX_PAGES pages."""
    items: list[Mapping[str, Any]] = []
    after = 0
    for _ in range(MAX_PAGES):
        flag = "&unacked=1" if unacked else ""
        data = client.call("GET", f"/v1/mailbox?after={after}&limit={PAGE}{flag}")
        page = data.get("items") if isinstance(data, Mapping) else None
        page = [i for i in page if isinstance(i, Mapping)] if isinstance(page, list) else []
        items += page
        seqs = [i["seq"] for i in page if isinstance(i.get("seq"), int)]
        if len(page) < PAGE or not seqs or max(seqs) <= after:
            break
        after = max(seqs)
    return items


def cmd_watch(args: argparse.Namespace) -> int:
    """Print events as they arrive; resume after a lost stream unless ``--no-reconnect``."""
    last_id: str | None = args.last_event_id
    seen = 0
    delay = RECONNECT_INITIAL
    while True:
        try:
            stream = EventStream(socket_path(args), stored_token(args), last_id)
        except ApiError as exc:
            if exc.status != 503 or args.no_reconnect:
                return fail(exc)
            problem: Exception = exc
        except ClientError as exc:
            if args.no_reconnect:
                return fail(exc)
            problem = exc
        else:
            try:
                for event in stream.events():
                    _print_event(event.event, event.data, event.id, args.json)
                    seen += 1
                    delay = RECONNECT_INITIAL
                    if args.count is not None and seen >= args.count:
                        return 0
                problem = ClientError("event stream ended")
                if args.no_reconnect:
                    return 0
            except (ClientError, SSEError) as exc:
                if args.no_reconnect:
                    return fail(exc)
                problem = exc
            finally:
                last_id = stream.last_event_id
                stream.close()
        print(f"switchctl: {problem}; reconnecting in {delay:g} s", file=sys.stderr, flush=True)
        time.sleep(delay)
        delay = min(RECONNECT_MAX, delay * 2)


def _print_event(kind: str, data: str, seq: str | None, as_json: bool) -> None:
    try:
        item: Any = json.loads(data)
    except ValueError:
        item = data
    if as_json:
        print(json.dumps({"id": seq, "event": kind, "data": item}, sort_keys=True), flush=True)
    elif isinstance(item, Mapping):
        print(render.render_event(kind, item, seq), flush=True)
    else:
        print(f"#{render.clean(seq)} {render.clean(kind)} {render.clean(item)}", flush=True)


# --------------------------------------------------------------------------- confirm

_URGENCY_WORDS: Final = {"U": "urgent: answer due within 10 minutes", "R": "routine: within 1 hour"}
_CONFIRMED_WORDS: Final = {"Y": "confirmed", "N": "NOT confirmed", "P": "pending"}


def cmd_confirm_request(args: argparse.Namespace) -> int:
    """Send a YQ for a hit record to the agency that entered it."""
    ori = validate_ori(args.to, "entering_ori")
    if not (args.nic or args.oca):
        raise ValidationError("nic", "nic: give --nic or --oca to name the record")
    body: dict[str, Any] = {"entering_ori": ori, "urgency": args.urgency}
    if args.name:
        body["name"] = normalize_name(args.name)
    if args.dob:
        body["dob"] = validate_date(args.dob)
    for key in ("nic", "oca", "requester_name", "requester_agency", "phone", "remarks"):
        value = getattr(args, key)
        if value is not None and value.strip():
            body[key] = value.strip()
    data = make_client(args).call("POST", "/v1/hit-confirmations", body)
    if args.json:
        print_json(data)
        return 0
    d = data if isinstance(data, Mapping) else {}
    line = (
        f"hit confirmation {render.clean(d.get('id', '?'))} requested from {ori} "
        f"({_URGENCY_WORDS[args.urgency]})"
    )
    due = d.get("deadline") or d.get("due")
    if due:
        line += f"; due {render.clean(due)}"
    print(line)
    return 0


def cmd_confirm_reply(args: argparse.Namespace) -> int:
    """Answer a YQ with a YR."""
    body: dict[str, Any] = {"confirmed": args.confirmed}
    if args.remarks is not None and args.remarks.strip():
        body["remarks"] = args.remarks.strip()
    data = make_client(args).call("POST", f"/v1/hit-confirmations/{q(args.id)}/reply", body)
    if args.json:
        print_json(data)
        return 0
    print(f"hit confirmation {render.clean(args.id)}: answered {_CONFIRMED_WORDS[args.confirmed]}")
    return 0


def _first(item: Mapping[str, Any], *keys: str) -> object:
    fields = item.get("fields") if isinstance(item.get("fields"), Mapping) else {}
    assert isinstance(fields, Mapping)
    for key in keys:
        for source in (item, fields):
            value = source.get(key)
            if value not in (None, "", []):
                return ",".join(map(str, value)) if isinstance(value, list) else value
    return "-"


def cmd_confirm_list(args: argparse.Namespace) -> int:
    """Hit confirmations in progress, sent and received, with their deadlines."""
    data = make_client(args).call("GET", "/v1/hit-confirmations")
    if args.json:
        print_json(data)
        return 0
    items = data.get("items") if isinstance(data, Mapping) else None
    rows = [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
    if not rows:
        print("no hit confirmations")
        return 0
    print(
        render.table(
            ("ID", "DIR", "PRI", "ORI", "NIC", "OCA", "STATE", "DUE"),
            [
                (
                    _first(i, "id"),
                    _first(i, "direction"),
                    _first(i, "urgency"),
                    _first(i, "counterpart", "entering_ori", "to", "from"),
                    _first(i, "nic"),
                    _first(i, "oca"),
                    _first(i, "outcome", "state", "status", "confirmed"),
                    _first(i, "deadline", "due"),
                )
                for i in rows
            ],
        )
    )
    return 0
