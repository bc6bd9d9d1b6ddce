"""switchctl's operator commands against a fake API server on a UNIX socket.

The fake (stdlib ``socketserver`` in a thread) serves the JSON shapes of DESIGN §9 and a
chunked ``text/event-stream`` for ``/v1/events``; each test scripts its routes and checks
the request made, what was printed and the exit status.
"""

from __future__ import annotations

import io
import json
import queue
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from switch.cli import cmd_teletype
from switch.cli.switchctl import main

TOKEN = "T0K-test"
CONF = Path(__file__).resolve().parents[2] / "conf" / "switch.toml"


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Stream:
    """An SSE answer: items are bytes to send, a float to sleep, None to end the stream.

    ``live=True``: after the items, keep taking items from ``FakeApi.live`` until None.
    """

    items: list[bytes | float | None] = field(default_factory=list)
    live: bool = False


Handler = Callable[[Req], "tuple[int, Any] | Stream"]


def sse(seq: int, event: str, data: Any) -> bytes:
    return f"id: {seq}\nevent: {event}\ndata: {json.dumps(data)}\n\n".encode()


class FakeApi:
    """Routes: ``(METHOD, path without query) -> handler(req) -> (status, json) | Stream``."""

    def __init__(self, path: str) -> None:
        self.requests: list[Req] = []
        self.routes: dict[tuple[str, str], Handler] = {}
        self.streams: list[Stream] = []  # one per /v1/events connection, in order
        self.live: queue.Queue[bytes | float | None] = queue.Queue()
        self.stopping = threading.Event()
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                req = Req(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
                fake.requests.append(req)
                if req.headers.get("authorization") != f"Bearer {TOKEN}":
                    answer: tuple[int, Any] | Stream = (
                        401,
                        {"error": {"code": "unauthorized", "message": "log on first"}},
                    )
                else:
                    handler = fake.routes.get((self.command, self.path.split("?")[0]))
                    if handler is None and self.path == "/v1/events" and fake.streams:
                        answer = fake.streams.pop(0)
                    elif handler is None:
                        answer = (404, {"error": {"code": "not_found", "message": "no such"}})
                    else:
                        answer = handler(req)
                if isinstance(answer, Stream):
                    self._stream(answer)
                    return
                status, data = answer
                body = json.dumps(data).encode() if data is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, stream: Stream) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()

                def items() -> Iterator[bytes | float | None]:
                    yield from stream.items
                    while stream.live and not fake.stopping.is_set():
                        try:
                            yield fake.live.get(timeout=0.05)
                        except queue.Empty:
                            continue
                    yield None

                try:
                    for item in items():
                        if item is None:
                            break
                        if isinstance(item, float):
                            time.sleep(item)
                            continue
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(item), item))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

            do_GET = do_POST = do_PATCH = do_DELETE = _any

        class Server(socketserver.ThreadingUnixStreamServer):
            daemon_threads = True
            block_on_close = False

        self.server = Server(path, H)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    monkeypatch.chdir(tmp_path)  # a short relative socket path: AF_UNIX paths are limited
    (tmp_path / "tok").write_text(TOKEN + "\n")
    fake = FakeApi("api.sock")
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.stopping.set()
        fake.server.shutdown()
        fake.server.server_close()
        fake.thread.join(5)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--socket", "api.sock", "--token-file", "tok"])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- data


def record(caveats: list[str]) -> dict[str, Any]:
    return {
        "file": "wanted_person",
        "fields": {"name": "DOE, JOHN A", "dob": "1980-01-01"},
        "caveats": caveats,
        "warrant": {
            "number": "S26-0099",
            "offense": "ROBBERY",
            "issued": "2026-01-15",
            "court": "",
            "extradition": "1 - FULL EXTRADITION",
            "entering_ori": "MO0950000",
            "oca": "26-000321",
            "nic": "W000000001",
        },
    }


def reply(network: str, status: str, caveats: list[str] | None = None) -> dict[str, Any]:
    records = [record(caveats or [])] if status == "hit" else []
    return {
        "network": network,
        "status": status,
        "records": records,
        "text": f"{status.upper()} FROM {network.upper()}\r\nLINE TWO",
        "urgent": bool(caveats) and status == "hit",
    }


def complete(replies: list[dict[str, Any]], networks: list[str], done: bool = True) -> Any:
    hits = [
        {"network": r["network"], "file": "wanted_person", "count": 1}
        for r in replies
        if r["status"] == "hit"
    ]
    caveats = sorted({c for r in replies for rec in r["records"] for c in rec["caveats"]})
    return {
        "id": "INQ1",
        "status": "complete" if done else "pending",
        "networks": networks,
        "replies": replies,
        "summary": {"hits": hits, "caveats": caveats, "urgent": bool(caveats)},
    }


def accept_inquiry(api: FakeApi, events: list[bytes | float | None]) -> None:
    """POST /v1/inquiries answers 202 and then releases ``events`` on the live stream."""

    def post(req: Req) -> tuple[int, Any]:
        for item in events:
            api.live.put(item)
        return 202, {"id": "INQ1", "networks": ["local", "state"]}

    api.routes[("POST", "/v1/inquiries")] = post


# --------------------------------------------------------------------------- query


def test_query_streams_answers_as_they_arrive_and_exits_1_on_hit(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stream is opened before the POST; answers for this inquiry print in arrival order
    with the caution block; other inquiries' events are ignored; summary last; exit 1."""
    state = reply("state", "hit", ["armed_and_dangerous"])
    local = reply("local", "no_record")
    api.streams.append(Stream([b": hello\n\n"], live=True))
    accept_inquiry(
        api,
        [
            sse(1, "reply", {"inquiry": "OTHER", "late": False, **reply("local", "hit")}),
            sse(2, "reply", {"inquiry": "INQ1", "late": False, **local}),
            sse(3, "teletype", {"key": "AM", "from": "MO0480000", "text": "HI"}),
            sse(4, "reply", {"inquiry": "INQ1", "late": False, **state})[:30],  # split write
            sse(4, "reply", {"inquiry": "INQ1", "late": False, **state})[30:],
            sse(5, "inquiry_complete", complete([state, local], ["local", "state"])),
        ],
    )
    code, out, err = run(
        capsys, "query", "person", "--name", "doe,john a", "--dob", "1980-01-01", "--purpose", "c"
    )
    assert code == 1, err
    assert err == ""
    assert api.paths()[:2] == ["GET /v1/events", "POST /v1/inquiries"]
    post = api.requests[1]
    assert post.body == {
        "subject": "person",
        "fields": {"name": "DOE, JOHN A", "dob": "1980-01-01"},
        "purpose": "C",
    }
    assert api.requests[0].headers["accept"] == "text/event-stream"
    lines = out.splitlines()
    assert lines[0] == "--- local: no record"  # arrived first, printed first
    assert lines[1:3] == ["    | NO_RECORD FROM LOCAL", "    | LINE TWO"]
    assert lines[3] == "*** CAUTION: ARMED AND DANGEROUS ***"
    assert lines[4] == "=== state: HIT, 1 record ==="
    assert "WNO/S26-0099 OFF/ROBBERY" in lines[6] and "NIC/W000000001" in lines[6]
    assert "OTHER" not in out and "HIT FROM LOCAL" not in out and "HI" not in lines
    assert lines[-2:] == [
        "*** CAUTION: ARMED AND DANGEROUS ***",
        "DOE, JOHN A: HIT at state (1 wanted_person); caveats: armed_and_dangerous; "
        "no record at local",
    ]
    assert out.count("=== state: HIT") == 1  # not printed again at completion


def test_query_no_record_everywhere_exits_0(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """All networks answering no record: the summary says so and the exit status is 0."""
    replies = [reply("local", "no_record"), reply("state", "no_record")]
    api.streams.append(Stream(live=True))
    accept_inquiry(api, [sse(9, "inquiry_complete", complete(replies, ["local", "state"]))])
    code, out, _ = run(capsys, "query", "vehicle", "--plate", "abc-123", "--plate-state", "mo")
    assert code == 0
    assert api.requests[1].body["fields"] == {"plate": "ABC123", "plate_state": "MO"}
    assert out.splitlines()[-1] == "LIC/ABC123 LIS/MO: NO RECORD at local, state"
    assert "--- local: no record" in out and "--- state: no record" in out


def test_query_failed_network_without_hit_exits_2(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """A timeout at one network and no record elsewhere is not a clear check: exit 2."""
    replies = [reply("local", "no_record"), reply("state", "timeout")]
    api.streams.append(Stream(live=True))
    accept_inquiry(api, [sse(1, "inquiry_complete", complete(replies, ["local", "state"]))])
    code, out, _ = run(capsys, "query", "gun", "--serial", "G123")
    assert code == 2
    assert "!!! state: TIMEOUT" in out
    assert out.splitlines()[-1] == (
        "SER/G123: NO RECORD at local; NO ANSWER from state (timeout); not a clear check"
    )


def test_query_falls_back_to_polling_without_event_stream(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """/v1/events refused (404): the inquiry is polled with GET ?wait= until complete."""
    replies = [reply("local", "hit"), reply("state", "no_record")]
    answers = [
        complete(replies[:1], ["local", "state"], done=False),
        complete(replies, ["local", "state"]),
    ]
    api.routes[("POST", "/v1/inquiries")] = lambda req: (202, {"id": "INQ1", "networks": []})
    api.routes[("GET", "/v1/inquiries/INQ1")] = lambda req: (200, answers.pop(0))
    code, out, _ = run(capsys, "query", "person", "--name", "DOE, JOHN A", "--oln", "X1")
    assert code == 1
    gets = [r.path for r in api.requests if r.path.startswith("/v1/inquiries/")]
    assert len(gets) == 2 and all("?wait=" in p for p in gets)
    assert out.count("=== local: HIT") == 1
    assert out.splitlines()[-1] == "DOE, JOHN A: HIT at local (1 wanted_person); no record at state"


def test_query_stream_breaking_midway_falls_back_to_polling(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stream ends after one answer: the rest comes from GET, nothing printed twice."""
    local = reply("local", "no_record")
    state = reply("state", "no_record")
    api.streams.append(Stream(live=True))
    accept_inquiry(api, [sse(1, "reply", {"inquiry": "INQ1", **local}), None])
    api.routes[("GET", "/v1/inquiries/INQ1")] = lambda req: (
        200,
        complete([local, state], ["local", "state"]),
    )
    code, out, _ = run(capsys, "query", "article", "--serial", "A1", "--article-type", "tv")
    assert code == 0
    assert out.count("--- local: no record") == 1
    assert out.count("--- state: no record") == 1


def test_query_json_prints_only_the_final_inquiry(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json: exactly one JSON object (the complete inquiry) on stdout, same exit codes."""
    replies = [reply("local", "hit", ["violent"]), reply("state", "no_record")]
    final = complete(replies, ["local", "state"])
    api.streams.append(Stream(live=True))
    accept_inquiry(
        api,
        [sse(1, "reply", {"inquiry": "INQ1", **replies[0]}), sse(2, "inquiry_complete", final)],
    )
    code, out, _ = run(
        capsys, "query", "person", "--name", "DOE, J", "--dob", "1980-01-01", "--json"
    )
    assert code == 1
    assert json.loads(out) == final
    assert len(out.strip().splitlines()) == 1


def test_query_gives_up_after_wait_and_exits_2(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """No completion within --wait: the current state is shown, stderr says so, exit 2."""
    api.streams.append(Stream(live=True))
    accept_inquiry(api, [])
    pending = complete([reply("local", "no_record")], ["local", "state"], done=False)
    api.routes[("GET", "/v1/inquiries/INQ1")] = lambda req: (200, pending)
    started = time.monotonic()
    code, out, err = run(capsys, "query", "gun", "--serial", "G1", "--wait", "0.5")
    assert time.monotonic() - started < 5
    assert code == 2
    assert err.strip() == "switchctl: no complete result within 0.5 s"
    assert out.splitlines()[-1] == (
        "SER/G1: NO RECORD at local; STILL WAITING for state; not a clear check"
    )
    assert api.requests[-1].path == "/v1/inquiries/INQ1"  # a last look, without waiting


def test_query_invalid_field_is_refused_before_sending(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad name is one line on stderr naming the field, exit 2, nothing sent."""
    code, out, err = run(capsys, "query", "person", "--name", "DOE JOHN", "--dob", "1980-01-01")
    assert code == 2
    assert out == ""
    assert err == ("switchctl: name: expected 'LAST, FIRST MIDDLE' with one comma (field: name)\n")
    assert api.requests == []
    code, _, err = run(capsys, "query", "person", "--name", "DOE, JOHN")
    assert code == 2 and err == "switchctl: dob: required for a person inquiry (field: dob)\n"


def test_query_foreign_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Each subject takes only its own fields: --plate on a person is refused by argparse."""
    assert main(["query", "person", "--name", "DOE, J", "--plate", "X"]) == 2
    assert "--plate" in capsys.readouterr().err


def test_query_server_error_is_one_line_exit_2(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 400 from the daemon: its message and field on one stderr line, exit 2."""
    api.streams.append(Stream(live=True))
    api.routes[("POST", "/v1/inquiries")] = lambda req: (
        403,
        {"error": {"code": "forbidden", "message": "network not allowed", "field": "networks"}},
    )
    code, out, err = run(capsys, "query", "gun", "--serial", "G1", "--networks", "local,national")
    assert code == 2
    assert api.requests[-1].body["networks"] == ["local", "national"]
    assert err == "switchctl: network not allowed (field: networks)\n"
    assert out == ""


def test_not_logged_on_and_no_daemon(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without a token: 401 with a hint; without a daemon: one line; both exit 2."""
    (tmp_path / "tok").write_text("stale\n")
    code, _, err = run(capsys, "inbox")
    assert code == 2
    assert err == "switchctl: log on first; log on with `switchctl login`\n"
    code = main(["query", "gun", "--serial", "G1", "--socket", "nowhere.sock", "--wait", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("switchctl: cannot talk to switchd at nowhere.sock")
    assert len(err.splitlines()) == 1 and "Traceback" not in err


# --------------------------------------------------------------------------- teletype


def test_send_posts_the_message_and_prints_routes(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """send: text from stdin, destinations normalised, routes printed, unroutable noted."""
    monkeypatch.setattr("sys.stdin", io.StringIO("ATTN RECORDS\nCALL BACK\n"))
    api.routes[("POST", "/v1/messages")] = lambda req: (
        202,
        {
            "id": "M1",
            "routes": [
                {"dest": "MO0380200", "network": "local", "state": "queued"},
                {"dest": "KS", "network": None, "state": "intercepted"},
            ],
        },
    )
    code, out, err = run(capsys, "send", "--to", "mo0380200", "--to", "KS", "--priority", "urgent")
    assert code == 0
    assert api.requests[0].body == {
        "key": "AM",
        "to": ["MO0380200", "KS"],
        "text": "ATTN RECORDS\nCALL BACK",
        "priority": "urgent",
    }
    assert out.splitlines() == [
        "message M1 accepted",
        "  MO0380200 -> local (queued)",
        "  KS -> UNROUTABLE (intercepted)",
    ]
    assert "intercept queue" in err


def test_send_bad_destination_or_empty_text_is_refused(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invalid destination or empty text: one line, exit 2, nothing sent."""
    code, _, err = run(capsys, "send", "--to", "NOWHERE", "--text", "HI")
    assert code == 2 and err.startswith("switchctl: to: 'NOWHERE' is not an ORI")
    monkeypatch.setattr("sys.stdin", io.StringIO("  \n"))
    code, _, err = run(capsys, "send", "--to", "KS")
    assert code == 2 and "(field: text)" in err
    assert api.requests == []


def test_message_shows_routes(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    """message ID: header, destinations, text and each route's state."""
    api.routes[("GET", "/v1/messages/M1")] = lambda req: (
        200,
        {
            "id": "M1",
            "key": "AM",
            "to": ["KS"],
            "text": "HELLO",
            "priority": "routine",
            "created": "2026-11-29T16:00:00Z",
            "routes": [{"dest": "KS", "network": "national", "state": "accepted", "updated": "T2"}],
        },
    )
    code, out, _ = run(capsys, "message", "M1")
    assert code == 0
    assert out.splitlines() == [
        "message M1 AM routine created 2026-11-29T16:00:00Z",
        "  to: KS",
        "    | HELLO",
        "  KS -> national (accepted) T2",
    ]


def test_inbox_lists_and_acks(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    """inbox lists items with their seq; --ack SEQ posts the ack."""
    api.routes[("GET", "/v1/mailbox")] = lambda req: (
        200,
        {
            "items": [
                {"seq": 5, "kind": "teletype", "key": "AM", "from": "KS0000000", "text": "X"},
                {"seq": 6, "kind": "reply", "inquiry": "I9", **reply("local", "no_record")},
            ]
        },
    )
    api.routes[("POST", "/v1/mailbox/5/ack")] = lambda req: (200, {"acked": True})
    code, out, _ = run(capsys, "inbox")
    assert code == 0
    assert api.requests[-1].path == "/v1/mailbox?after=0&limit=500&unacked=1"  # still to read
    assert out.splitlines()[:3] == ["#5 AM from KS0000000", "    | X", "#6 reply to inquiry I9"]
    code, out, _ = run(capsys, "inbox", "--ack", "5")
    assert code == 0 and out == "acknowledged #5\n"
    assert api.requests[-1].method == "POST" and api.requests[-1].path == "/v1/mailbox/5/ack"


def test_watch_pretty_and_json(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    """watch prints each event; --json prints one raw object per line; ends with the stream."""
    events: list[bytes | float | None] = [
        sse(1, "teletype", {"key": "AM", "from": "MO0480000", "text": "ONE"}),
        b": keep-alive\n\n",
        sse(2, "delivery", {"message": "M1", "dest": "KS", "state": "accepted"}),
    ]
    api.streams += [Stream(list(events)), Stream(list(events))]
    code, out, _ = run(capsys, "watch", "--no-reconnect")
    assert code == 0
    assert out.splitlines() == [
        "#1 AM from MO0480000",
        "    | ONE",
        "#2 delivery message=M1 dest=KS state=accepted",
    ]
    code, out, _ = run(capsys, "watch", "--no-reconnect", "--json", "--last-event-id", "0")
    assert code == 0
    assert api.requests[-1].headers["last-event-id"] == "0"
    first, second = (json.loads(line) for line in out.splitlines())
    assert first == {
        "id": "1",
        "event": "teletype",
        "data": {"key": "AM", "from": "MO0480000", "text": "ONE"},
    }
    assert second["event"] == "delivery"


def test_watch_reconnects_with_last_event_id(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the stream drops, watch resumes with Last-Event-ID of the last event seen."""
    monkeypatch.setattr(cmd_teletype, "RECONNECT_INITIAL", 0.01)
    api.streams += [
        Stream([sse(7, "teletype", {"key": "AM", "from": "KS0000000", "text": "A"})]),
        Stream([sse(8, "teletype", {"key": "AM", "from": "KS0000000", "text": "B"})]),
    ]
    code, out, err = run(capsys, "watch", "--count", "2")
    assert code == 0
    assert [r.headers.get("last-event-id") for r in api.requests] == [None, "7"]
    assert "reconnecting" in err
    assert "    | A" in out and "    | B" in out


# --------------------------------------------------------------------------- confirm


def test_confirm_request_reply_list(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    """confirm request posts the record fields; reply posts Y/N/P; list shows a table."""
    api.routes[("POST", "/v1/hit-confirmations")] = lambda req: (
        202,
        {"id": "H1", "deadline": "2026-11-29T16:32:10Z"},
    )
    api.routes[("POST", "/v1/hit-confirmations/H1/reply")] = lambda req: (202, {"id": "H1"})
    api.routes[("GET", "/v1/hit-confirmations")] = lambda req: (
        200,
        {
            "items": [
                {
                    "id": "H1",
                    "direction": "out",
                    "urgency": "U",
                    "entering_ori": "MO0950000",
                    "nic": "W000000001",
                    "state": "waiting",
                    "deadline": "16:32",
                }
            ]
        },
    )
    code, out, _ = run(
        capsys,
        "confirm", "request", "--nic", "W000000001", "--oca", "26-000321",
        "--name", "doe, john a", "--to", "MO0950000", "--urgency", "u",
        "--requester-name", "SMITH", "--phone", "555 010-0000",
    )  # fmt: skip
    assert code == 0
    assert api.requests[0].body == {
        "entering_ori": "MO0950000",
        "urgency": "U",
        "name": "DOE, JOHN A",
        "nic": "W000000001",
        "oca": "26-000321",
        "requester_name": "SMITH",
        "phone": "555 010-0000",
    }
    assert out == (
        "hit confirmation H1 requested from MO0950000 "
        "(urgent: answer due within 10 minutes); due 2026-11-29T16:32:10Z\n"
    )
    code, out, _ = run(capsys, "confirm", "reply", "H1", "--confirmed", "y", "--remarks", "OK")
    assert code == 0 and api.requests[-1].body == {"confirmed": "Y", "remarks": "OK"}
    assert out == "hit confirmation H1: answered confirmed\n"
    code, out, _ = run(capsys, "confirm", "list")
    assert code == 0
    assert out.splitlines() == [
        "ID  DIR  PRI  ORI        NIC         OCA  STATE    DUE",
        "H1  out  U    MO0950000  W000000001  -    waiting  16:32",
    ]


def test_confirm_request_needs_a_valid_ori_and_a_record_number(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad ORI or neither NIC nor OCA: one line naming the field, exit 2, nothing sent."""
    code, _, err = run(capsys, "confirm", "request", "--nic", "W1", "--to", "XX123")
    assert code == 2 and "(field: entering_ori)" in err
    code, _, err = run(capsys, "confirm", "request", "--to", "MO0950000")
    assert code == 2 and "(field: nic)" in err
    assert api.requests == []


# --------------------------------------------------------------------------- admin


def test_intercept_commands(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """list/show/lock/edit/reroute/resend/delete make the documented calls."""
    item = {
        "id": "X1",
        "reason": "unroutable",
        "message": {"key": "AM", "from": "MO0380100", "to": ["ZZ"], "text": "LOST MESSAGE"},
        "locked_by": None,
    }
    api.routes[("GET", "/v1/intercept")] = lambda req: (200, {"items": [item]})
    api.routes[("GET", "/v1/intercept/X1")] = lambda req: (200, item)
    api.routes[("POST", "/v1/intercept/X1/lock")] = lambda req: (200, {"expires": "T15"})
    api.routes[("PATCH", "/v1/intercept/X1")] = lambda req: (200, item)
    api.routes[("POST", "/v1/intercept/X1/resend")] = lambda req: (
        202,
        {"id": "M2", "routes": [{"dest": "KS", "network": "national", "state": "queued"}]},
    )
    api.routes[("DELETE", "/v1/intercept/X1")] = lambda req: (200, {})
    code, out, _ = run(capsys, "intercept", "list")
    assert code == 0
    assert out.splitlines() == [
        "ID  REASON      KEY  TO  LOCKED BY  TEXT",
        "X1  unroutable  AM   ZZ  -          LOST MESSAGE",
    ]
    code, out, _ = run(capsys, "intercept", "show", "X1")
    assert out.splitlines() == [
        "intercept X1: unroutable",
        "  locked by: -",
        "  AM from MO0380100 to ZZ",
        "    | LOST MESSAGE",
    ]
    assert run(capsys, "intercept", "lock", "X1")[1] == "intercept X1 locked until T15\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("NEW TEXT\n"))
    code, out, _ = run(capsys, "intercept", "edit", "X1", "--text-stdin", "--to", "ks")
    assert code == 0 and api.requests[-1].body == {"text": "NEW TEXT", "to": ["KS"]}
    assert out == "intercept X1: text and destinations changed\n"
    code, out, _ = run(capsys, "intercept", "reroute", "X1", "--to", "KS,MO")
    assert api.requests[-1].method == "PATCH" and api.requests[-1].body == {"to": ["KS", "MO"]}
    code, out, _ = run(capsys, "intercept", "resend", "X1")
    assert out.splitlines() == ["intercept X1 resent", "  KS -> national (queued)"]
    code, out, _ = run(capsys, "intercept", "delete", "X1")
    assert code == 0 and api.requests[-1].method == "DELETE"


def test_intercept_without_lock_is_409_one_line(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """409 (not locked by you): the daemon's message on one line, exit 2."""
    api.routes[("POST", "/v1/intercept/X1/resend")] = lambda req: (
        409,
        {"error": {"code": "conflict", "message": "lock the item first"}},
    )
    code, out, err = run(capsys, "intercept", "resend", "X1")
    assert (code, out, err) == (2, "", "switchctl: lock the item first\n")


def test_link_retry_and_reload(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    """link retry and reload post to their paths; a refused reload is an error."""
    api.routes[("POST", "/v1/links/state/retry")] = lambda req: (202, {"state": "connecting"})
    assert run(capsys, "link", "retry", "state") == (
        0,
        "link state: redial requested (state connecting)\n",
        "",
    )
    api.routes[("POST", "/v1/reload")] = lambda req: (200, {"changed": ["state"]})
    assert run(capsys, "reload") == (0, "configuration reloaded\n  changed: state\n", "")
    api.routes[("POST", "/v1/reload")] = lambda req: (
        400,
        {"error": {"code": "invalid_config", "message": "routes.toml: destinations: bad"}},
    )
    assert run(capsys, "reload") == (2, "", "switchctl: routes.toml: destinations: bad\n")


def test_route_explain_online_and_unroutable(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """route explain asks the daemon; an unroutable destination exits 1."""
    answers = {
        "KS": {"dest": "KS", "rule": "*", "network": "national"},
        "MO0380200": {"dest": "MO0380200", "rule": None, "network": None},
    }
    api.routes[("GET", "/v1/routes/explain")] = lambda req: (200, answers[req.path.split("=")[1]])
    assert run(capsys, "route", "explain", "ks") == (0, "KS: rule * -> national  (switchd)\n", "")
    code, out, _ = run(capsys, "route", "explain", "MO0380200")
    assert code == 1 and "unroutable" in out


def test_route_explain_offline_from_config(capsys: pytest.CaptureFixture[str]) -> None:
    """With no daemon, route explain answers from the config files (first match wins)."""
    code = main(["route", "explain", "MO0480001", "--socket", "/nonexistent/s.sock",
                 "--config", str(CONF)])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0
    assert out == f"MO0480001: rule MO048* -> regional  ({CONF})\n"
    assert "answering from the config files" in err
    code = main(["route", "explain", "REG", "--offline", "--config", str(CONF), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out) == {"dest": "REG", "rule": "REG", "network": "regional"}
    code = main(["route", "explain", "NOT A DEST", "--offline", "--config", str(CONF)])
    assert code == 2
    assert capsys.readouterr().err.startswith("switchctl: dest: 'NOT A DEST' is not an ORI")


def test_query_garbled_event_stream_falls_back_to_polling(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event whose data is not JSON does not crash the query: it polls instead."""
    done = complete([reply("local", "no_record")], ["local"])
    api.streams.append(Stream(live=True))
    accept_inquiry(api, [b"event: reply\ndata: {not json\n\n"])
    api.routes[("GET", "/v1/inquiries/INQ1")] = lambda req: (200, done)
    code, out, err = run(capsys, "query", "gun", "--serial", "G1")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "SER/G1: NO RECORD at local"
    assert "Traceback" not in out + err


def test_inbox_pages_through_a_long_mailbox(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """More items than one page: inbox asks again after the last seq and shows them all."""

    def page(req: Req) -> tuple[int, Any]:
        after = int(req.path.split("after=")[1].split("&")[0])
        count = 500 if after == 0 else 2
        items = [{"seq": after + i + 1, "kind": "teletype", "key": "AM"} for i in range(count)]
        return 200, {"items": items}

    api.routes[("GET", "/v1/mailbox")] = page
    code, out, _ = run(capsys, "inbox", "--all", "--json")
    assert code == 0
    assert [r.path for r in api.requests] == [
        "/v1/mailbox?after=0&limit=500",
        "/v1/mailbox?after=500&limit=500",
    ]
    assert [i["seq"] for i in json.loads(out)["items"]] == list(range(1, 503))
