"""The event stream and mailbox end to end: switchd and the four real simulators on
loopback, read over the daemon's UNIX socket with switchctl's own SSE client.

A person inquiry yields one ``reply`` event per network and one ``inquiry_complete``
after them; ``Last-Event-ID`` resumes exactly after an event; terminals see only their
own mailbox; acks hide items from the unacked listing; and streams that are never read
do not make switchd's memory grow with the traffic.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from switch.cli.client import Client, ClientError
from switch.cli.sse import EventStream, SSEEvent
from tests.integration.gateway_harness import DEMO, NETWORKS, ApiError, Gateway, start_gateway

pytestmark = pytest.mark.integration

DOE = {"subject": "person", "fields": {"name": "DOE, JOHN A", "dob": "1980-01-01"}}


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    gateway = start_gateway()
    try:
        gateway.links_up()
        yield gateway
    finally:
        gateway.close()


def _mailbox(gw: Gateway, terminal: str, query: str = "") -> list[dict[str, Any]]:
    """Every item of ``terminal``'s mailbox, paging with ``after``."""
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        sep = "&" if query else ""
        page = gw.client(terminal).call("GET", f"/v1/mailbox?{query}{sep}after={after}&limit=1000")[
            "items"
        ]
        items += page
        if len(page) < 1000:
            return items
        after = page[-1]["seq"]


def _last_seq(gw: Gateway, terminal: str) -> int:
    items = _mailbox(gw, terminal)
    return items[-1]["seq"] if items else 0


def _stream(gw: Gateway, terminal: str, last: int | None) -> EventStream:
    gw.client(terminal)  # log on
    return EventStream(str(gw.socket), gw.tokens[terminal], None if last is None else str(last))


def _read(stream: EventStream, seconds: float, until: Any = None) -> list[SSEEvent]:
    """Events for ``seconds``, or until ``until(events)`` is true."""
    events: list[SSEEvent] = []
    try:
        for event in stream.events(deadline=time.monotonic() + seconds):
            events.append(event)
            if until is not None and until(events):
                break
    except TimeoutError:
        pass
    return events


def _complete_for(inquiry: str) -> Any:
    return lambda events: any(
        e.event == "inquiry_complete" and e.json()["id"] == inquiry for e in events
    )


def test_inquiry_events_resume_isolation_and_ack(gw: Gateway) -> None:
    """A DOE inquiry gives DISPATCH1 one reply event per network (inquiry id, network,
    status, records, text, urgent) then exactly one inquiry_complete; reconnecting with
    the 2nd event's id gives exactly the later events; RECORDS1 sees none of them;
    GET /v1/mailbox lists them with the same seq; an ack hides one from the unacked
    listing, and another terminal's ack of it is 404."""
    start = _last_seq(gw, "DISPATCH1")
    with _stream(gw, "DISPATCH1", start) as stream:
        created = gw.client("DISPATCH1").call("POST", "/v1/inquiries", DOE)
        inquiry = created["id"]
        events = _read(stream, 20, _complete_for(inquiry))
        events += _read(stream, 1.0)  # nothing more may follow for it
    mine = [e for e in events if e.json().get("inquiry", e.json().get("id")) == inquiry]
    assert mine == events, "only this inquiry's events on a quiet terminal"
    assert [e.event for e in mine] == ["reply"] * 4 + ["inquiry_complete"]
    replies = [e.json() for e in mine[:4]]
    assert sorted(r["network"] for r in replies) == sorted(NETWORKS)
    for reply in replies:
        assert reply["inquiry"] == inquiry
        assert reply["status"] == "hit" and reply["records"] and reply["text"]
        assert isinstance(reply["urgent"], bool)
    assert any(r["urgent"] for r in replies)
    complete = mine[4].json()
    assert complete["status"] == "complete" and len(complete["replies"]) == 4
    ids = [int(e.id or 0) for e in mine]
    assert ids == sorted(ids) and ids[0] > start
    assert [e.json()["seq"] for e in mine] == ids

    with _stream(gw, "DISPATCH1", ids[1]) as again:
        resumed = _read(again, 1.5)
    assert [int(e.id or 0) for e in resumed] == ids[2:]
    assert [(e.event, e.json()) for e in resumed] == [(e.event, e.json()) for e in mine[2:]]

    with _stream(gw, "RECORDS1", 0) as other:
        theirs = _read(other, 1.0)
    assert all(e.json().get("inquiry", e.json().get("id")) != inquiry for e in theirs), (
        "RECORDS1 sees DISPATCH1's events"
    )
    assert not [i for i in _mailbox(gw, "RECORDS1") if i["seq"] in ids]

    listed = {i["seq"]: i for i in _mailbox(gw, "DISPATCH1") if i["seq"] in ids}
    assert sorted(listed) == ids
    for event in mine:
        item = listed[int(event.id or 0)]
        assert item["kind"] == event.event and item == event.json()

    target = ids[0]
    with pytest.raises(ApiError) as err:
        gw.client("RECORDS1").call("POST", f"/v1/mailbox/{target}/ack")
    assert err.value.status == 404
    assert gw.client("DISPATCH1").call("POST", f"/v1/mailbox/{target}/ack") == {
        "seq": target,
        "acked": True,
    }
    unacked = [i["seq"] for i in _mailbox(gw, "DISPATCH1", "unacked=1")]
    assert target not in unacked and set(ids[1:]) <= set(unacked)
    acked = [i for i in _mailbox(gw, "DISPATCH1") if i["seq"] == target]
    assert acked[0]["acked"] is True


def test_bad_last_event_id_and_ack_of_unknown_seq(gw: Gateway) -> None:
    """A Last-Event-ID that is not a sequence number is 400 naming it; acking a seq
    that does not exist, or is not a number, is 404."""
    client = gw.client("DISPATCH1")
    with pytest.raises(ApiError) as err:
        EventStream(str(gw.socket), client.token, "abc")
    assert err.value.status == 400 and err.value.field == "Last-Event-ID"
    for seq in ("999999999", "x1"):
        with pytest.raises(ApiError) as err:
            client.call("POST", f"/v1/mailbox/{seq}/ack")
        assert err.value.status == 404


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _run_inquiries(gw: Gateway, n: int) -> None:
    client = gw.client("DISPATCH1")

    def one(_: int) -> None:
        result = client.call("POST", "/v1/inquiries?wait=20", DOE)
        assert result["status"] == "complete"

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, range(n)))


def _unread_stream(gw: Gateway, terminal: str, last: int) -> socket.socket:
    """A client that opens /v1/events and never reads a byte."""
    gw.client(terminal)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(str(gw.socket))
    sock.sendall(
        b"GET /v1/events HTTP/1.1\r\nHost: switch\r\n"
        + f"Authorization: Bearer {gw.tokens[terminal]}\r\nLast-Event-ID: {last}\r\n\r\n".encode()
    )
    return sock


def test_unread_streams_do_not_grow_memory(gw: Gateway) -> None:
    """With several event streams open and never read, 300 more DOE inquiries do not
    make switchd's RSS grow with the events they would have had to buffer; a reading
    client afterwards still gets every event from the mailbox."""
    assert gw.switchd is not None
    pid = gw.switchd.pid
    _run_inquiries(gw, 150)  # warm up: caches, pools, allocator arenas
    start = _last_seq(gw, "DISPATCH1")
    streams = [_unread_stream(gw, "DISPATCH1", start) for _ in range(8)]
    try:
        time.sleep(0.3)
        before = _rss_kib(pid)
        _run_inquiries(gw, 300)
        time.sleep(0.3)
        after = _rss_kib(pid)
        items = [i for i in _mailbox(gw, "DISPATCH1") if i["seq"] > start]
        assert len(items) == 300 * 5
        per_stream = sum(len(json.dumps(i)) + 40 for i in items)
        offered = per_stream * len(streams) // 1024
        growth = after - before
        print(f"rss {before} -> {after} KiB (+{growth}); unread streams offered {offered} KiB")
        # Buffering them would cost `offered` (~10 MB) plus Python overhead; bounded
        # streams cost each stream's socket buffer at most.
        assert offered > 8 * 1024
        assert growth < 4 * 1024, (growth, offered)
    finally:
        for sock in streams:
            sock.close()
    with _stream(gw, "DISPATCH1", start) as reader:
        got = _read(reader, 20, lambda events: len(events) >= 1500)
    assert [int(e.id or 0) for e in got] == [i["seq"] for i in items]


def test_logoff_ends_the_stream(gw: Gateway) -> None:
    """After DELETE /v1/sessions/current the session's open event stream is closed by
    switchd within one keepalive interval (15 s): a logged-off token sees no more."""
    # a second session of its own: the harness's cached DISPATCH1 session stays on
    logon = Client(gw.socket).call(
        "POST", "/v1/sessions", {"terminal": "DISPATCH1", "operator": DEMO[0], "password": DEMO[1]}
    )
    token = logon["token"]
    with EventStream(str(gw.socket), token, str(_last_seq(gw, "DISPATCH1"))) as stream:
        Client(gw.socket, token=token).call("DELETE", "/v1/sessions/current")
        started = time.monotonic()
        ended = False
        try:
            for _ in stream.events(deadline=started + 20):
                pass
            ended = True
        except ClientError:
            ended = True  # aborted: a reset rather than a clean end
        except TimeoutError:
            pass
    assert ended and time.monotonic() - started < 17
