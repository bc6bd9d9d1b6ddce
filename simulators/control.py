"""The simulators' control API (DESIGN §9): received log, stats, faults, originate.

HTTP + JSON with twisted.web on 127.0.0.1. Every answer is JSON, errors included
(``{"error": {"code", "message"}}``): bad JSON or values 400, unknown path 404, another
method 405, a body over 64 KiB 413; never a traceback or an HTML page.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request

from switch.formats.base import CodecError
from switch.model import ADMIN_KEYS, AdminMessage, ValidationError, is_ori

from .faults import FaultError
from .network import NLETS_ORI, Network

MAX_BODY = 64 * 1024
_SPECIAL_ORIS = ("NCIC", NLETS_ORI)


def _json(request: Request, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")  # type: ignore[no-untyped-call]
    return json.dumps(body).encode() + b"\n"


def _error(request: Request, status: int, message: str) -> bytes:
    return _json(request, status, {"error": {"code": status, "message": message}})


class _JsonResource(Resource):
    """Answers JSON for every method and path it does not otherwise handle."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        method = request.method.decode("ascii", "replace")
        handler = getattr(self, f"render_{method}", None)
        if handler is None:
            request.setHeader(b"allow", b"GET, POST")  # type: ignore[no-untyped-call]
            return _error(request, 405, "method not allowed")
        result: bytes = handler(request)
        return result


class NotFound(_JsonResource):
    """Any path that names no network."""

    def render_GET(self, request: Request) -> bytes:
        return _error(request, 404, "unknown path")

    render_POST = render_GET


class NetworkResource(_JsonResource):
    """``/<network>/received|stats|faults|originate``."""

    def __init__(self, network: Network) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.network = network

    @staticmethod
    def _action(request: Request) -> str:
        parts = [p for p in (request.postpath or []) if p]
        return parts[0].decode("ascii", "replace") if len(parts) == 1 else ""

    def render_GET(self, request: Request) -> bytes:
        action = self._action(request)
        net = self.network
        if action == "received":
            return _json(request, 200, {"items": net.received_items()})
        if action == "stats":
            return _json(request, 200, net.stats_json())
        if action == "faults":
            return _json(request, 200, net.faults.as_json())
        return _error(request, 404, "unknown path")

    def render_POST(self, request: Request) -> bytes:
        action = self._action(request)
        if action not in ("faults", "originate"):
            return _error(request, 404, "unknown path")
        length = request.getHeader(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return _error(request, 413, "body too large")
        assert request.content is not None
        raw = request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _error(request, 413, "body too large")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            return _error(request, 400, "malformed JSON")
        if not isinstance(body, dict):
            return _error(request, 400, "expected a JSON object")
        if action == "faults":
            try:
                return _json(request, 200, self.network.apply_faults(body))
            except FaultError as exc:
                return _error(request, 400, str(exc))
        try:
            message = originate_message(self.network, body)
        except (ValidationError, ValueError, TypeError) as exc:
            return _error(request, 400, str(exc))
        self.network.originate(message)
        return _json(request, 202, {"id": message.id})


def originate_message(network: Network, body: dict[str, Any]) -> AdminMessage:
    """``{"key", "from", "to", "text", "fields"?, "priority"?}`` -> a message the network's
    codec can send (tried here, so that a bad request is a 400, not a silent drop).
    ``to`` defaults to the gateway's ORI; ``from`` to the network's own sender (national:
    the interstate switch ``NL0000000``)."""
    unknown = set(body) - {"key", "from", "to", "text", "fields", "priority"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    key = body.get("key", "AM")
    if key not in ADMIN_KEYS:
        raise ValueError(f"key: one of {', '.join(ADMIN_KEYS)}")
    to = body.get("to", [network.station])
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(t, str) and t for t in to):
        raise ValueError("to: a non-empty list of ORIs")
    default_from = NLETS_ORI if network.name == "national" else network.ori
    sender = body.get("from", default_from)
    if not isinstance(sender, str) or not (is_ori(sender) or sender in _SPECIAL_ORIS):
        raise ValueError("from: a 9-character ORI")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text: non-empty text")
    fields = body.get("fields", {})
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise ValueError("fields: an object of strings")
    priority = body.get("priority", "routine")
    if priority not in ("routine", "urgent"):
        raise ValueError("priority: 'routine' or 'urgent'")
    message = AdminMessage(
        id=network.ids(),
        key=key,
        from_ori=sender,
        to=tuple(to),
        text=text,
        fields=dict(fields),
        priority=priority,
    )
    try:
        network.codec().encode(message)
    except CodecError as exc:
        raise ValueError(f"cannot be sent on the {network.name} wire: {exc.text}") from None
    return message


class Root(Resource):
    """``/<network>/...`` for the networks this process runs; JSON 404 elsewhere."""

    def __init__(self, networks: dict[str, Network]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.networks = networks

    def getChild(self, path: bytes, request: Request) -> Resource:
        network = self.networks.get(path.decode("ascii", "replace"))
        return NetworkResource(network) if network is not None else NotFound()  # type: ignore[no-untyped-call]

    def render(self, request: Request) -> bytes:
        return _error(request, 404, "unknown path")


def control_root(networks: dict[str, Network]) -> Resource:
    return Root(networks)
