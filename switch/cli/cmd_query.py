"""``switchctl query SUBJECT ...``: check a person, vehicle, gun... and show answers live.

The inquiry is posted to ``/v1/inquiries``; answers are followed on the event stream
(``/v1/events``) and printed as each network answers, cautions first; a one-line summary
closes. The stream is opened *before* the inquiry is posted so that a fast answer cannot
be missed; if the stream is unavailable or breaks, ``GET /v1/inquiries/{id}?wait=`` is
polled instead.

Exit status (also with ``--json``):

- 0: every asked network answered "no record";
- 1: a hit at any network (even if another network has not answered: act on the hit);
- 2: an error (bad input, the daemon refused or could not be reached), or no hit while a
  network answered error / timeout / unavailable or had not answered within ``--wait``:
  a "no record" would then be unsafe to rely on.

This module also holds the small helpers every operator command shares (the
``--socket``/``--token-file`` options, the client from the stored token, and the
one-line error report).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

from switch.cli import render
from switch.cli.client import DEFAULT_SOCKET, ApiError, Client, ClientError, load_token, token_path
from switch.cli.sse import EventStream, SSEError
from switch.model import (
    SUBJECT_FIELDS,
    SUBJECTS,
    ValidationError,
    validate_fields,
    validate_purpose,
)

DEFAULT_WAIT: Final = 60.0
#: The daemon blocks a GET at most 60 s; we ask for short waits to show answers as they come.
POLL_WAIT: Final = 5
#: How long the event stream may take to answer with its headers before we poll instead.
STREAM_OPEN_TIMEOUT: Final = 3.0
EXIT_ERROR: Final = 2

# --------------------------------------------------------------------------- shared helpers


def connection_options() -> argparse.ArgumentParser:
    """Parent parser: ``--socket`` and ``--token-file``, as ``switchctl login`` takes them.

    ``default=SUPPRESS`` so a value given before the command name is not overwritten.
    """
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
    return common


def socket_path(args: argparse.Namespace) -> str:
    return str(getattr(args, "socket", None) or DEFAULT_SOCKET)


def stored_token(args: argparse.Namespace) -> str | None:
    return load_token(token_path(socket_path(args), getattr(args, "token_file", None)))


def make_client(args: argparse.Namespace, timeout: float = 30.0) -> Client:
    """The shared ``Client`` with the token ``switchctl login`` stored."""
    return Client(socket_path(args), token=stored_token(args), timeout=timeout)


def fail(exc: BaseException) -> int:
    """Report an error as one line on stderr and return exit status 2. Never a traceback."""
    if isinstance(exc, ApiError):
        line = exc.message
        if exc.field:
            line += f" (field: {exc.field})"
        if exc.retry_after:
            line += f"; retry after {exc.retry_after} s"
        if exc.status == 401:
            line += "; log on with `switchctl login`"
    elif isinstance(exc, ValidationError):
        line = exc.message + (f" (field: {exc.field})" if exc.field else "")
    else:
        line = str(exc) or type(exc).__name__
    print(f"switchctl: {render.clean(line)}", file=sys.stderr)
    return EXIT_ERROR


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command so API, connection and validation errors become ``fail(...)``."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (ApiError, ClientError, ValidationError, SSEError) as exc:
            return fail(exc)

    run.__doc__ = func.__doc__
    return run


def q(value: str) -> str:
    """A path segment, quoted."""
    return quote(value, safe="")


# --------------------------------------------------------------------------- query

#: canonical field -> its command-line flag
FLAGS: Final = {
    "name": "--name",
    "dob": "--dob",
    "sex": "--sex",
    "race": "--race",
    "soc": "--soc",
    "oln": "--oln",
    "oln_state": "--oln-state",
    "plate": "--plate",
    "plate_state": "--plate-state",
    "plate_year": "--plate-year",
    "plate_type": "--plate-type",
    "vin": "--vin",
    "make": "--make",
    "serial": "--serial",
    "caliber": "--caliber",
    "article_type": "--article-type",
    "brand": "--brand",
}
_HELP: Final = {
    "name": "LAST, FIRST MIDDLE",
    "dob": "date of birth YYYY-MM-DD",
    "sex": "M, F or U",
    "race": "W, B, I, A or U",
    "soc": "social security number",
    "plate_year": "4-digit year",
}


def register(subparsers: Any) -> None:
    """Add ``query`` and its six subjects."""
    common = connection_options()
    query = subparsers.add_parser("query", help="check a subject against the networks")
    query.set_defaults(_parser=query)
    subjects = query.add_subparsers(dest="subject", metavar="SUBJECT")
    for subject in SUBJECTS:
        alternatives, optional = SUBJECT_FIELDS[subject]
        required = " or ".join("+".join(alt) for alt in alternatives)
        p = subjects.add_parser(
            subject,
            parents=[common],
            help=f"{subject} inquiry ({required})",
            description=f"Ask the networks about a {subject}; identify it by {required}.",
        )
        names = [f for alt in alternatives for f in alt] + list(optional)
        for name in dict.fromkeys(names):
            p.add_argument(
                FLAGS[name], dest=f"field_{name}", metavar=name.upper(), help=_HELP.get(name)
            )
        p.add_argument(
            "--networks",
            action="append",
            help="networks to ask (comma-separated or repeated; default: from routes)",
        )
        p.add_argument("--purpose", help="purpose code: C criminal justice, J employment, ...")
        p.add_argument("--requester", help="who asked the operator (ATN)")
        p.add_argument("--recipient", help="secondary recipient (SRN)")
        p.add_argument(
            "--wait",
            type=float,
            default=DEFAULT_WAIT,
            metavar="S",
            help=f"give up on missing answers after S seconds (default {DEFAULT_WAIT:g})",
        )
        p.add_argument("--json", action="store_true", help="print only the final inquiry JSON")
        p.set_defaults(func=guarded(cmd_query), subject=subject)


def build_body(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The POST body from the flags; validated here for a quick clear error."""
    raw = {
        name: getattr(args, f"field_{name}")
        for name in FLAGS
        if getattr(args, f"field_{name}", None) not in (None, "")
    }
    fields = validate_fields(args.subject, raw)
    body: dict[str, Any] = {"subject": args.subject, "fields": fields}
    if args.networks:
        nets = [n.strip() for item in args.networks for n in item.split(",") if n.strip()]
        if not nets:
            raise ValidationError("networks", "networks: name at least one network")
        body["networks"] = nets
    if args.purpose:
        body["purpose"] = validate_purpose(args.purpose)
    for key in ("requester", "recipient"):
        value = getattr(args, key)
        if value is not None:
            if not value.strip():
                raise ValidationError(key, f"{key}: expected non-empty text")
            body[key] = value.strip()
    return body, fields


class _Follower:
    """Prints each network's answer once, as it arrives (unless quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.shown: set[str] = set()

    def show(self, reply: Mapping[str, Any]) -> None:
        network = str(reply.get("network"))
        late = bool(reply.get("late"))
        if network in self.shown and not late:
            return
        self.shown.add(network)
        if not self.quiet:
            print(render.render_reply(reply), flush=True)

    def show_all(self, inquiry: Mapping[str, Any]) -> None:
        replies = inquiry.get("replies")
        for reply in render.display_order(replies if isinstance(replies, list) else []):
            if isinstance(reply, Mapping) and str(reply.get("network")) not in self.shown:
                self.show(reply)


def cmd_query(args: argparse.Namespace) -> int:
    """Submit the inquiry, follow its answers, print them and the summary."""
    body, fields = build_body(args)
    wait = max(0.0, float(args.wait))
    if not math.isfinite(wait):
        raise ValidationError("wait", "wait: a number of seconds")
    label = render.subject_label(args.subject, fields)
    start = time.monotonic()
    deadline = start + wait
    client = make_client(args, timeout=POLL_WAIT + 30.0)
    follower = _Follower(quiet=args.json)

    stream: EventStream | None = None
    if wait > 0:
        try:  # before the POST, so that no answer can slip by unseen
            stream = EventStream(
                socket_path(args), client.token, connect_timeout=min(STREAM_OPEN_TIMEOUT, wait)
            )
        except (ApiError, ClientError):
            stream = None  # no event stream: poll (the POST says if the daemon is there)
    try:
        accepted = client.call("POST", "/v1/inquiries", body)
        if not isinstance(accepted, Mapping) or not isinstance(accepted.get("id"), str):
            raise ClientError("switchd answered the inquiry without an id")
        inquiry_id = accepted["id"]
        final: Mapping[str, Any] | None = None
        if accepted.get("status") == "complete":
            final = accepted
        elif stream is not None:
            final = _follow_stream(stream, inquiry_id, deadline, follower)
    finally:
        if stream is not None:
            stream.close()
    if final is None:
        final = _poll(client, inquiry_id, deadline, follower)
    if args.json:
        print(json.dumps(final, sort_keys=True))
    else:
        follower.show_all(final)
        print(render.final_block(final, label))
        if final.get("status") != "complete":
            print(f"switchctl: no complete result within {wait:g} s", file=sys.stderr)
    return render.inquiry_exit_code(final)


def _follow_stream(
    stream: EventStream, inquiry_id: str, deadline: float, follower: _Follower
) -> Mapping[str, Any] | None:
    """Read events until this inquiry completes; None if the stream ends, breaks or times out."""
    try:
        for event in stream.events(deadline):
            if event.event not in ("reply", "inquiry_complete"):
                continue
            item = render.item_payload(_as_mapping(event.json()))
            if event.event == "reply" and item.get("inquiry") == inquiry_id:
                follower.show(item)
            elif event.event == "inquiry_complete" and item.get("id") == inquiry_id:
                return item
    except (TimeoutError, ClientError, SSEError):
        pass
    return None


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _poll(
    client: Client, inquiry_id: str, deadline: float, follower: _Follower
) -> Mapping[str, Any]:
    """Fallback: GET with short waits until complete or the deadline; then the last state."""
    path = f"/v1/inquiries/{q(inquiry_id)}"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            state = _as_mapping(client.call("GET", path))
            return state
        wait = max(1, min(POLL_WAIT, math.ceil(remaining)))
        asked = time.monotonic()
        state = _as_mapping(client.call("GET", f"{path}?wait={wait}"))
        if state.get("status") == "complete":
            return state
        if time.monotonic() - asked < 0.2:  # a daemon that does not block: do not spin
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        replies = state.get("replies")
        for reply in replies if isinstance(replies, list) else []:
            if isinstance(reply, Mapping):
                follower.show(reply)
