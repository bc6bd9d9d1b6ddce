"""The ``local`` wire (DESIGN §4.1): one UTF-8 JSON object per line over TCP.

Field names and values are the canonical ones of the model, so this codec mostly checks
types and applies the model's validation. A line is at most 64 KiB *including* its
newline; the framer never holds more than that: an over-long line is dropped up to its
newline and reported once as a non-fatal ``CodecError(11)``.

Notices (``ER``/``SM``), which DESIGN §4.1 does not list, travel as ``msg`` with that key,
an integer ``code``, ``to: []`` and an optional ``re`` naming the message concerned
(docs/protocols/local.md). ``msg`` also takes an optional ``re`` for
``AdminMessage.in_reply_to``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from switch.jsontext import loads
from switch.model import (
    ADMIN_KEYS,
    DATE_FIELDS,
    FIELD_CODES,
    NAK_INVALID_FORMAT,
    NAK_MALFORMED,
    NAK_TOO_LARGE,
    NAK_UNKNOWN_TYPE,
    NOTICE_KEYS,
    Ack,
    AdminMessage,
    Heartbeat,
    Inquiry,
    Logoff,
    Logon,
    LogonResult,
    Nak,
    Notice,
    Origin,
    Record,
    Reply,
    ValidationError,
    Warrant,
    WireMessage,
    validate_date,
    validate_fields,
    validate_id,
    validate_ori,
    validate_priority,
    validate_purpose,
    validate_subject,
)

from .base import CodecError, EventFramer

MAX_LINE: Final = 64 * 1024
#: json.dumps(obj, ensure_ascii=False), built once (dumps builds one per call otherwise).
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False)
_WARRANT_ATTRS: Final = (
    "number",
    "offense",
    "issued",
    "court",
    "extradition",
    "entering_ori",
    "oca",
    "nic",
)
_CONTROL_TYPES: Final = frozenset({"logon", "logon_ok", "logon_fail", "hb", "logoff", "ack", "nak"})


class LineFramer(EventFramer):
    """Cuts a byte stream into ``\\n``-terminated lines of at most ``limit`` bytes.

    Frames are returned with their newline. The buffer never exceeds ``limit - 1``
    bytes: as soon as a partial line cannot fit, it is dropped, the rest of that line is
    skipped as it arrives, and ``CodecError(11)`` (non-fatal) is raised once.

    ``feed`` raises the first error of a chunk at once and keeps the chunk's good lines
    (before and after the bad one) for the next call: after a non-fatal error, call
    ``feed(b"")`` until it stops raising (switch/protocols/link.py and the simulators do).
    :meth:`feed_events` never raises and gives lines and errors in stream order.
    """

    def __init__(self, limit: int = MAX_LINE) -> None:
        super().__init__()
        self._limit = limit
        self._buf = bytearray()
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete line (never more than ``limit - 1``)."""
        return len(self._buf)

    def feed_events(self, data: bytes) -> list[bytes | CodecError]:
        """Every complete line and every over-long-line error, in stream order."""
        out: list[bytes | CodecError] = []
        view = memoryview(data)
        start = 0
        end = len(data)
        while start < end:
            nl = data.find(b"\n", start)
            if self._discarding:
                if nl < 0:
                    return out
                self._discarding = False
                start = nl + 1
                continue
            if nl < 0:
                if len(self._buf) + (end - start) >= self._limit:
                    self._buf.clear()
                    self._discarding = True
                    out.append(CodecError(NAK_TOO_LARGE))
                else:
                    self._buf += view[start:end]
                return out
            if len(self._buf) + (nl + 1 - start) > self._limit:
                out.append(CodecError(NAK_TOO_LARGE))
                self._buf.clear()
            elif self._buf:
                self._buf += view[start : nl + 1]
                out.append(bytes(self._buf))
                self._buf.clear()
            else:
                out.append(data[start : nl + 1])
            start = nl + 1
        return out


# --------------------------------------------------------------------------- helpers

#: Names an error text may repeat; anything else the peer sent is never echoed.
_KNOWN_NAMES: Final = (
    frozenset(FIELD_CODES)
    | frozenset(_WARRANT_ATTRS)
    | frozenset(
        "id re ori subject fields purpose requester recipient hit records text key from to "
        "priority code station secret reason file caveats warrant".split()
    )
)


def _field_text(field: str | None) -> str:
    return f"INVALID FIELD {field}" if field in _KNOWN_NAMES else "INVALID MESSAGE FORMAT"


def _fail(text: str, msg_id: str = "", code: int = NAK_INVALID_FORMAT) -> CodecError:
    return CodecError(code, text, msg_id=msg_id)


def _str(obj: Mapping[str, Any], key: str, *, optional: bool = False) -> Any:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValidationError(key, f"{key}: expected a string")
    return value


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(key, f"{key}: expected an integer")
    return value


def _str_map(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError(key, f"{key}: expected an object of strings")
    return dict(value)


def _str_list(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(key, f"{key}: expected a list of strings")
    return list(value)


def _canonical_fields(value: Any, key: str) -> dict[str, str]:
    """Record / teletype fields: known canonical names, ISO dates checked."""
    fields = _str_map(value, key)
    for name, item in fields.items():
        if name not in FIELD_CODES:
            raise ValidationError(name, f"{name}: unknown field")
        if name in DATE_FIELDS:
            validate_date(item, name)
    return fields


def _destination(value: str) -> str:
    if not (1 <= len(value) <= 9 and value.isascii() and value.isalnum() and value.isupper()):
        raise ValidationError("to", "to: ORIs or broadcast codes")
    return value


def _record(obj: Any) -> Record:
    if not isinstance(obj, dict):
        raise ValidationError("records", "records: expected objects")
    file = _str(obj, "file")
    fields = _canonical_fields(obj.get("fields", {}), "fields")
    caveats = tuple(_str_list(obj.get("caveats", []), "caveats"))
    raw = obj.get("warrant")
    warrant = None
    if raw is not None:
        attrs = _str_map(raw, "warrant")
        if not set(attrs) <= set(_WARRANT_ATTRS):
            raise ValidationError("warrant", "warrant: unknown attribute")
        if attrs.get("issued"):
            validate_date(attrs["issued"], "issued")
        if attrs.get("entering_ori"):
            validate_ori(attrs["entering_ori"], "entering_ori")
        warrant = Warrant(**attrs)
    return Record(file=file, fields=fields, caveats=caveats, warrant=warrant)


def _record_json(record: Record) -> dict[str, Any]:
    warrant = (
        None
        if record.warrant is None
        else {attr: getattr(record.warrant, attr) for attr in _WARRANT_ATTRS}
    )
    return {
        "file": record.file,
        "fields": dict(record.fields),
        "caveats": list(record.caveats),
        "warrant": warrant,
    }


# --------------------------------------------------------------------------- codec


class LocalCodec:
    """JSON lines codec for the ``local`` network (city RMS / municipal warrants)."""

    name: str = "local"
    max_frame: int = MAX_LINE

    def __init__(self, own_ori: str) -> None:
        self.own_ori = own_ori

    def framer(self) -> LineFramer:
        return LineFramer(self.max_frame)

    # ----------------------------------------------------------------- encode

    def encode(self, message: WireMessage) -> bytes:
        """One JSON line; CodecError for what the wire cannot say (e.g. a timeout reply)."""
        obj = self._to_json(message)
        try:
            line = (_ENCODER.encode(obj) + "\n").encode("utf-8")
        except (TypeError, ValueError) as err:  # non-JSON value, lone surrogate
            raise CodecError(NAK_INVALID_FORMAT, "CANNOT ENCODE") from err
        if len(line) > self.max_frame:
            raise CodecError(NAK_TOO_LARGE)
        return line

    def _to_json(self, m: WireMessage) -> dict[str, Any]:
        if isinstance(m, Inquiry):
            obj: dict[str, Any] = {
                "t": "query",
                "id": m.id,
                "ori": m.origin.ori,
                "subject": m.subject,
                "fields": dict(m.fields),
            }
            for key in ("purpose", "requester", "recipient"):
                if getattr(m, key) is not None:
                    obj[key] = getattr(m, key)
            return obj
        if isinstance(m, Reply):
            if m.status not in ("hit", "no_record"):
                raise CodecError(NAK_INVALID_FORMAT, f"NO WIRE FORM FOR REPLY STATUS {m.status}")
            if m.in_reply_to is None:
                raise CodecError(NAK_INVALID_FORMAT, "REPLY WITHOUT INQUIRY ID")
            return {
                "t": "reply",
                "id": m.id,
                "re": m.in_reply_to,
                "hit": m.status == "hit",
                "records": [_record_json(r) for r in m.records],
                "text": m.text,
            }
        if isinstance(m, AdminMessage):
            obj = {
                "t": "msg",
                "id": m.id,
                "key": m.key,
                "from": m.from_ori,
                "to": list(m.to),
                "priority": m.priority,
                "text": m.text,
            }
            if m.fields:
                obj["fields"] = dict(m.fields)
            if m.in_reply_to is not None:
                obj["re"] = m.in_reply_to
            return obj
        if isinstance(m, Notice):
            obj = {
                "t": "msg",
                "id": m.id,
                "key": m.key,
                "from": m.from_ori,
                "to": [],
                "priority": "routine",
                "text": m.text,
                "code": m.code,
            }
            if m.in_reply_to is not None:
                obj["re"] = m.in_reply_to
            return obj
        if isinstance(m, Ack):
            return {"t": "ack", "id": m.id}
        if isinstance(m, Nak):
            return {"t": "nak", "id": m.id, "code": m.code, "text": m.text}
        if isinstance(m, Logon):
            return {"t": "logon", "station": m.station, "secret": m.secret}
        if isinstance(m, LogonResult):
            return {"t": "logon_ok"} if m.ok else {"t": "logon_fail", "reason": m.reason}
        if isinstance(m, Heartbeat):
            return {"t": "hb"}
        if isinstance(m, Logoff):
            return {"t": "logoff"}
        raise CodecError(NAK_UNKNOWN_TYPE, "NO WIRE FORM FOR MESSAGE")

    # ----------------------------------------------------------------- decode

    def decode(self, frame: bytes) -> WireMessage:
        """One line (newline optional) -> one message; only CodecError escapes."""
        if len(frame) > self.max_frame:
            raise CodecError(NAK_TOO_LARGE)
        try:
            obj = loads(frame)
        except ValueError as err:  # bad UTF-8 or JSON, nesting beyond 1024
            raise CodecError(NAK_MALFORMED) from err
        if not isinstance(obj, dict):
            raise CodecError(NAK_MALFORMED, "NOT A JSON OBJECT")
        kind = obj.get("t")
        raw_id = obj.get("id")
        msg_id = ""
        if (not isinstance(kind, str) or kind not in _CONTROL_TYPES) and isinstance(raw_id, str):
            try:
                msg_id = validate_id(raw_id)
            except ValidationError:
                msg_id = ""
        if not isinstance(kind, str):
            raise _fail("MISSING MESSAGE TYPE", msg_id)
        try:
            return self._from_json(kind, obj)
        except ValidationError as err:
            raise _fail(_field_text(err.field), msg_id) from err
        except CodecError as err:
            if not err.msg_id and msg_id:
                err.msg_id = msg_id
            raise

    def _from_json(self, kind: str, obj: dict[str, Any]) -> WireMessage:
        if kind == "query":
            subject = validate_subject(obj.get("subject"))
            purpose = obj.get("purpose")
            return Inquiry(
                id=validate_id(obj.get("id")),
                subject=subject,
                fields=validate_fields(subject, _str_map(obj.get("fields"), "fields")),
                origin=Origin(ori=validate_ori(obj.get("ori"))),
                purpose=None if purpose is None else validate_purpose(purpose),
                requester=_str(obj, "requester", optional=True),
                recipient=_str(obj, "recipient", optional=True),
            )
        if kind == "reply":
            hit = obj.get("hit")
            if not isinstance(hit, bool):
                raise ValidationError("hit", "hit: expected a JSON boolean")
            records = obj.get("records", [])
            if not isinstance(records, list):
                raise ValidationError("records", "records: expected a list")
            return Reply(
                id=validate_id(obj.get("id")),
                network=self.name,
                status="hit" if hit else "no_record",
                text=_str(obj, "text"),
                records=tuple(_record(r) for r in records),
                in_reply_to=validate_id(obj.get("re"), "re"),
            )
        if kind == "msg":
            return self._msg(obj)
        if kind == "ack":
            return Ack(id=validate_id(obj.get("id")))
        if kind == "nak":
            nak_id = _str(obj, "id")
            return Nak(
                id=validate_id(nak_id) if nak_id else "",
                code=_int(obj, "code"),
                text=_str(obj, "text"),
            )
        if kind == "logon":
            station = _str(obj, "station")
            if not station:
                raise ValidationError("station", "station: empty")
            return Logon(station=station, secret=_str(obj, "secret"))
        if kind == "logon_ok":
            return LogonResult(ok=True)
        if kind == "logon_fail":
            return LogonResult(ok=False, reason=_str(obj, "reason", optional=True) or "")
        if kind == "hb":
            return Heartbeat()
        if kind == "logoff":
            return Logoff()
        raise CodecError(NAK_UNKNOWN_TYPE)

    def _msg(self, obj: dict[str, Any]) -> WireMessage:
        msg_id = validate_id(obj.get("id"))
        key = _str(obj, "key")
        from_ori = validate_ori(obj.get("from"), "from")
        text = _str(obj, "text")
        re_raw = obj.get("re")
        in_reply_to = None if re_raw is None else validate_id(re_raw, "re")
        if key in NOTICE_KEYS:
            return Notice(
                id=msg_id,
                key=key,
                from_ori=from_ori,
                code=_int(obj, "code"),
                text=text,
                in_reply_to=in_reply_to,
            )
        if key not in ADMIN_KEYS:
            raise ValidationError("key", "key: unknown message key")
        fields = _canonical_fields(obj.get("fields", {}), "fields") if key != "AM" else {}
        if key == "AM" and obj.get("fields"):
            raise ValidationError("fields", "fields: AM carries none")
        return AdminMessage(
            id=msg_id,
            key=key,
            from_ori=from_ori,
            to=tuple(_destination(d) for d in _str_list(obj.get("to"), "to")),
            text=text,
            priority=validate_priority(obj.get("priority")),
            fields=fields,
            in_reply_to=in_reply_to,
        )
