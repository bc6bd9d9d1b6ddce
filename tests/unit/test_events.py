"""The terminal event stream (``GET /v1/events``) and the mailbox behind it (DESIGN §5).

Each stream is a real ``twisted.web`` request on an ``HTTPChannel`` over a
``StringTransport``, with ``task.Clock`` for keepalive and stall; the response bytes are
decoded (chunked transfer) and parsed with switchctl's own SSE parser. The mailbox runs
on an in-memory store whose reads can be held, to race replay against live puts; one
test uses the real SQLite store with its writer and reader threads, and one a real
UNIX socket whose reader never reads.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from switch.cli.sse import SSEEvent, SSEParser
from switch.mailbox import Mailbox, item_json, sse_frame
from switch.protocols.api_inquiries import KEEPALIVE, PAGE, STALL_LIMIT, EventStream
from switch.store.interface import MailboxItem

T1 = "DISPATCH1"
T2 = "RECORDS1"


# --------------------------------------------------------------------------- doubles


class FakeStore:
    """The mailbox part of the Store in memory. Puts commit at once; with ``hold`` set,
    reads take their snapshot when issued but answer only on :meth:`release`, as a
    reader thread would, so puts can land while a replay is in flight."""

    def __init__(self) -> None:
        self.items: list[MailboxItem] = []
        self.hold = False
        self.pending: list[tuple[Deferred[list[MailboxItem]], list[MailboxItem]]] = []
        self.reads = 0
        self.fail_reads = False

    def mailbox_put(
        self, terminal: str, kind: str, item: dict[str, Any], now: float
    ) -> Deferred[int]:
        seq = len(self.items) + 1
        self.items.append(MailboxItem(seq, terminal, kind, json.loads(json.dumps(item)), now))
        return succeed(seq)

    def mailbox_since(
        self, terminal: str, after_seq: int, limit: int, *, unacked_only: bool = False
    ) -> Deferred[list[MailboxItem]]:
        self.reads += 1
        if self.fail_reads:
            d: Deferred[list[MailboxItem]] = Deferred()
            d.errback(RuntimeError("disk on fire"))
            return d
        rows = [
            i
            for i in self.items
            if i.terminal == terminal
            and i.seq > after_seq
            and not (unacked_only and i.acked is not None)
        ][:limit]
        if self.hold:
            d = Deferred()
            self.pending.append((d, rows))
            return d
        return succeed(rows)

    def mailbox_ack(self, terminal: str, seq: int, now: float) -> Deferred[bool]:
        for n, i in enumerate(self.items):
            if i.seq == seq and i.terminal == terminal:
                self.items[n] = MailboxItem(i.seq, i.terminal, i.kind, i.item, i.created, now)
                return succeed(True)
        return succeed(False)

    def release(self) -> None:
        """Answer every held read, oldest first (new reads issued meanwhile stay held)."""
        pending, self.pending = self.pending, []
        for d, rows in pending:
            d.callback(rows)


class _Events(Resource):
    isLeaf = True

    def __init__(self, stream: EventStream) -> None:
        super().__init__()
        self.stream = stream

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"Content-Type", b"text/event-stream")
        self.stream.start(request)
        return NOT_DONE_YET


class Conn:
    """One client of the event stream: real HTTPChannel + Request over StringTransport."""

    def __init__(
        self,
        mailbox: Mailbox,
        clock: task.Clock,
        *,
        terminal: str = T1,
        last: int = 0,
        stall_limit: float = STALL_LIMIT,
        alive: Any = None,
    ) -> None:
        self.stream = EventStream(
            mailbox, terminal, last, clock, stall_limit=stall_limit, alive=alive
        )
        site = Site(_Events(self.stream), reactor=clock)
        self.channel = cast(HTTPChannel, site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1)))
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)
        self.channel.dataReceived(b"GET /v1/events HTTP/1.1\r\nHost: switch\r\n\r\n")
        self.head = b""
        self._raw = b""
        self.body = b""  # de-chunked, as received so far
        self.parser = SSEParser()

    def pump(self) -> list[SSEEvent]:
        """Decode whatever the server wrote since the last call; the events it completes."""
        data = self.transport.value()
        self.transport.clear()
        self._raw += data
        if not self.head:
            if b"\r\n\r\n" not in self._raw:
                return []
            self.head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        new = b""
        while b"\r\n" in self._raw:
            size_line, rest = self._raw.split(b"\r\n", 1)
            size = int(size_line, 16)
            if len(rest) < size + 2:
                break
            new += rest[:size]
            assert rest[size : size + 2] == b"\r\n"
            self._raw = rest[size + 2 :]
        self.body += new
        return self.parser.feed(new)

    def pause(self) -> None:
        self.transport.producer.pauseProducing()  # the transport's buffer is full

    def resume(self) -> None:
        self.transport.producer.resumeProducing()

    def disconnect(self) -> None:
        self.channel.connectionLost(Failure(ConnectionDone()))


def _ids(events: list[SSEEvent]) -> list[int]:
    return [int(e.id or 0) for e in events]


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def mailbox(store: FakeStore, clock: task.Clock) -> Mailbox:
    return Mailbox(cast(Any, store), clock)


def _put(mailbox: Mailbox, n: int, terminal: str = T1, kind: str = "reply") -> list[int]:
    seqs: list[int] = []
    for i in range(n):
        d = mailbox.put(terminal, kind, {"inquiry": f"Q{i}", "n": i})
        d.addCallback(seqs.append)
    return seqs


# --------------------------------------------------------------------------- framing


def test_sse_frame_is_id_event_and_one_line_of_json() -> None:
    """A frame is ``id:`` the seq, ``event:`` the kind, one ``data:`` line of JSON (even
    when the item's text has newlines, CR and non-ASCII), then a blank line."""
    item = MailboxItem(7, T1, "teletype", {"text": "LINE 1\nLINE 2\r\nÉTÉ\u2028"}, 12.5)
    frame = sse_frame(item)
    assert frame.endswith(b"\n\n")
    lines = frame[:-2].split(b"\n")
    assert lines[0] == b"id: 7" and lines[1] == b"event: teletype"
    assert len(lines) == 3 and lines[2].startswith(b"data: ")
    assert b"\r" not in frame
    data = json.loads(lines[2][len(b"data: ") :])
    assert data == item_json(item)
    assert data["seq"] == 7 and data["kind"] == "teletype" and data["acked"] is False
    assert data["text"] == item.item["text"]
    [event] = SSEParser().feed(frame)
    assert event.id == "7" and event.event == "teletype" and event.json() == data


def test_stream_headers_and_greeting(mailbox: Mailbox, clock: task.Clock) -> None:
    """The answer is a chunked HTTP/1.1 200 text/event-stream that opens with a comment."""
    conn = Conn(mailbox, clock)
    conn.pump()
    assert conn.head.startswith(b"HTTP/1.1 200")
    assert b"text/event-stream" in conn.head.lower()
    assert b"transfer-encoding: chunked" in conn.head.lower()
    assert conn.body.startswith(b": switch event stream\n\n")
    conn.disconnect()


# --------------------------------------------------------------------------- replay and live


def test_replay_after_last_event_id_then_live(mailbox: Mailbox, clock: task.Clock) -> None:
    """Items after Last-Event-ID are replayed from the store in order, then live items
    follow; nothing before it, and no other terminal's items, are sent."""
    _put(mailbox, 5)
    _put(mailbox, 3, terminal=T2)
    _put(mailbox, 5)  # T1 holds seqs 1-5 and 9-13
    conn = Conn(mailbox, clock, last=3)
    events = conn.pump()
    assert _ids(events) == [4, 5, 9, 10, 11, 12, 13]
    assert all(e.event == "reply" for e in events)
    assert events[0].json()["n"] == 3 and events[0].json()["seq"] == 4
    _put(mailbox, 2)
    _put(mailbox, 1, terminal=T2)
    assert _ids(conn.pump()) == [14, 15]
    conn.disconnect()


def test_replay_longer_than_a_page(mailbox: Mailbox, clock: task.Clock) -> None:
    """A backlog of several pages arrives whole and in order."""
    _put(mailbox, PAGE * 3 + 7)
    conn = Conn(mailbox, clock)
    assert _ids(conn.pump()) == list(range(1, PAGE * 3 + 8))
    conn.disconnect()


def test_puts_during_replay_no_gap_no_duplicate(
    mailbox: Mailbox, store: FakeStore, clock: task.Clock
) -> None:
    """Items committed while a replay page is being read arrive exactly once, in order:
    the live copies are dropped and re-read from the store after the page."""
    _put(mailbox, 150)
    store.hold = True
    conn = Conn(mailbox, clock)
    assert store.pending, "the replay read is in flight"
    _put(mailbox, 30)  # committed after the first read's snapshot
    for _ in range(10):
        store.release()
        _put(mailbox, 2)  # and more while every later page is in flight
    store.hold = False
    store.release()
    _put(mailbox, 3)  # caught up: live
    events = conn.pump()
    assert _ids(events) == list(range(1, 150 + 30 + 20 + 3 + 1))
    conn.disconnect()


def test_live_item_while_replay_pending_is_not_sent_early(
    mailbox: Mailbox, store: FakeStore, clock: task.Clock
) -> None:
    """A live item pushed before the replay answered is not written ahead of the older
    items still being read (ordering), nor twice."""
    _put(mailbox, 3)
    store.hold = True
    conn = Conn(mailbox, clock)
    _put(mailbox, 1)  # seq 4 pushed live while the replay of 1-3 is pending
    assert _ids(conn.pump()) == []
    store.hold = False
    store.release()
    assert _ids(conn.pump()) == [1, 2, 3, 4]
    conn.disconnect()


def test_reconnect_resumes_exactly_after_last_id(mailbox: Mailbox, clock: task.Clock) -> None:
    """A client that reconnects with the last id it saw gets exactly the later items."""
    _put(mailbox, 4)
    first = Conn(mailbox, clock)
    seen = first.pump()
    first.disconnect()
    _put(mailbox, 3)  # while offline
    second = Conn(mailbox, clock, last=int(seen[1].id or 0))
    assert _ids(second.pump()) == [3, 4, 5, 6, 7]
    second.disconnect()


# --------------------------------------------------------------------------- slow readers


def test_paused_stream_buffers_nothing_then_catches_up(
    mailbox: Mailbox, store: FakeStore, clock: task.Clock
) -> None:
    """While the transport has paused the stream, 10,000 puts write no byte (nothing is
    buffered in the stream or the transport); on resume every missed item is read back
    from the store, in order, without duplicates."""
    _put(mailbox, 2)
    conn = Conn(mailbox, clock)
    assert _ids(conn.pump()) == [1, 2]
    conn.pause()
    reads = store.reads
    _put(mailbox, 10_000)
    clock.advance(KEEPALIVE * 2)  # no keepalive either while paused
    assert conn.transport.value() == b""
    assert store.reads == reads, "no store read while paused"
    conn.resume()
    events = conn.pump()
    assert _ids(events) == list(range(3, 10_003))
    assert store.reads - reads == 10_000 // PAGE + 1
    _put(mailbox, 1)
    assert _ids(conn.pump()) == [10_003]
    conn.disconnect()


def test_pause_during_replay_stops_after_the_page(
    mailbox: Mailbox, store: FakeStore, clock: task.Clock
) -> None:
    """A pause in the middle of a replay stops it after the current page (memory bound:
    one page); resume continues from where it stopped."""
    _put(mailbox, PAGE * 5)
    store.hold = True
    conn = Conn(mailbox, clock)
    conn.pause()
    store.release()
    assert _ids(conn.pump()) == list(range(1, PAGE + 1))
    assert not store.pending, "no further page read while paused"
    store.hold = False
    conn.resume()
    assert _ids(conn.pump()) == list(range(PAGE + 1, PAGE * 5 + 1))
    conn.disconnect()


def test_stalled_reader_is_disconnected_at_the_limit(mailbox: Mailbox, clock: task.Clock) -> None:
    """A stream paused for the stall limit is aborted and unsubscribed, no sooner; its
    items stay in the mailbox for the next connection."""
    conn = Conn(mailbox, clock)
    clock.advance(1)
    conn.pause()
    _put(mailbox, 5)
    clock.advance(STALL_LIMIT - 0.5)
    assert not conn.transport.disconnected
    assert mailbox.subscribers(T1) == 1
    clock.advance(0.5)
    assert conn.transport.disconnected, "aborted at the stall limit"
    assert mailbox.subscribers(T1) == 0
    conn.disconnect()  # the reactor's connectionLost follows the abort
    assert clock.getDelayedCalls() == []
    again = Conn(mailbox, clock)
    assert _ids(again.pump()) == [1, 2, 3, 4, 5]
    again.disconnect()


def test_resume_before_the_limit_keeps_the_stream(mailbox: Mailbox, clock: task.Clock) -> None:
    """Pauses shorter than the limit, however many, never close the stream: the stall
    clock restarts with each pause."""
    conn = Conn(mailbox, clock, stall_limit=10)
    for _ in range(5):
        conn.pause()
        clock.advance(9)
        conn.resume()
        clock.advance(1)
    assert not conn.transport.disconnected
    _put(mailbox, 1)
    assert _ids(conn.pump()) == [1]
    conn.disconnect()


def test_client_disconnect_unsubscribes_and_cancels_timers(
    mailbox: Mailbox, clock: task.Clock
) -> None:
    """A client that goes away leaves no subscriber and no timer behind (no leak), and
    later puts still succeed."""
    conns = [Conn(mailbox, clock) for _ in range(20)]
    assert mailbox.subscribers(T1) == 20
    conns[0].pause()  # one of them mid-stall
    for conn in conns:
        conn.disconnect()
    assert mailbox.subscribers(T1) == 0
    assert clock.getDelayedCalls() == []
    assert _put(mailbox, 1) == [1]


def test_stop_producing_closes(mailbox: Mailbox, clock: task.Clock) -> None:
    """``stopProducing`` (the transport going away first) unsubscribes at once."""
    conn = Conn(mailbox, clock)
    conn.transport.producer.stopProducing()
    assert mailbox.subscribers(T1) == 0
    conn.disconnect()
    assert clock.getDelayedCalls() == []


def test_keepalive_comment_every_interval(mailbox: Mailbox, clock: task.Clock) -> None:
    """A ``: keepalive`` comment is written every KEEPALIVE seconds while the stream is
    open, and none after it is closed."""
    conn = Conn(mailbox, clock)
    conn.pump()
    assert conn.body.count(b": keepalive\n\n") == 0
    clock.advance(KEEPALIVE - 0.1)
    conn.pump()
    assert conn.body.count(b": keepalive\n\n") == 0
    clock.advance(0.1)
    conn.pump()
    assert conn.body.count(b": keepalive\n\n") == 1
    clock.pump([KEEPALIVE] * 4)
    conn.pump()
    assert conn.body.count(b": keepalive\n\n") == 5
    assert conn.parser.feed(b"") == []  # comments are not events
    conn.disconnect()
    clock.advance(KEEPALIVE * 3)
    assert conn.transport.value() == b""


def test_stream_ends_with_its_session(mailbox: Mailbox, clock: task.Clock) -> None:
    """Once the session that opened the stream has ended (logoff, expiry), the next
    keepalive closes the stream instead of writing: no more events for that token."""
    session = {"alive": True}
    conn = Conn(mailbox, clock, alive=lambda: session["alive"])
    clock.advance(KEEPALIVE)
    assert not conn.transport.disconnected
    session["alive"] = False
    clock.advance(KEEPALIVE)
    assert conn.transport.disconnected
    assert mailbox.subscribers(T1) == 0
    conn.pump()
    assert conn.body.count(b": keepalive") == 1
    conn.disconnect()
    assert clock.getDelayedCalls() == []


def test_replay_failure_closes_the_stream(
    mailbox: Mailbox, store: FakeStore, clock: task.Clock
) -> None:
    """A store read failing closes the stream (the client reconnects and resumes) with
    no error lost in a Deferred and no subscriber left."""
    store.fail_reads = True
    conn = Conn(mailbox, clock)
    assert conn.transport.disconnected
    assert mailbox.subscribers(T1) == 0
    conn.disconnect()


def test_start_after_client_left_subscribes_nothing(mailbox: Mailbox, clock: task.Clock) -> None:
    """A stream started for a request whose client already left does not subscribe
    (nothing would ever unsubscribe it)."""

    class Gone:
        channel = None
        _disconnected = True

    stream = EventStream(mailbox, T1, 0, clock)
    stream.start(cast(Any, Gone()))
    assert stream.closed and mailbox.subscribers(T1) == 0
    assert clock.getDelayedCalls() == []


# --------------------------------------------------------------------------- mailbox


def test_failing_subscriber_does_not_fail_the_put(mailbox: Mailbox, clock: task.Clock) -> None:
    """A subscriber that raises neither fails the committed put nor starves the others."""
    got: list[int] = []

    def broken(item: MailboxItem) -> None:
        raise RuntimeError("write on a dead transport")

    mailbox.subscribe(T1, broken)
    unsubscribe = mailbox.subscribe(T1, lambda item: got.append(item.seq))
    assert _put(mailbox, 2) == [1, 2]
    assert got == [1, 2]
    unsubscribe()
    unsubscribe()  # idempotent
    assert mailbox.subscribers(T1) == 1


def test_mailbox_since_and_ack(mailbox: Mailbox, clock: task.Clock) -> None:
    """Ack marks an item of its own terminal only; ``unacked_only`` hides acked items."""
    _put(mailbox, 3)
    _put(mailbox, 1, terminal=T2)
    acked: list[bool] = []
    mailbox.ack(T1, 2).addCallback(acked.append)
    mailbox.ack(T1, 4).addCallback(acked.append)  # T2's item
    assert acked == [True, False]
    rows: list[list[MailboxItem]] = []
    mailbox.since(T1, 0, 10, unacked_only=True).addCallback(rows.append)
    mailbox.since(T1, 0, 10).addCallback(rows.append)
    assert [i.seq for i in rows[0]] == [1, 3]
    assert [item_json(i)["acked"] for i in rows[1]] == [False, True, False]


# --------------------------------------------------------------------------- real I/O


@pytest_twisted.ensureDeferred
async def test_real_sqlite_store_replay_races_live_puts(reactor: Any, tmp_path: Path) -> None:
    """On the real SQLite store (writer thread, reader pool), puts racing a multi-page
    replay reach the stream exactly once each, in seq order."""
    from switch.store.sqlite import SQLiteStore

    db = SQLiteStore(reactor, tmp_path / "switch.db")
    await db.start()
    try:
        box = Mailbox(db, reactor)
        for i in range(250):
            box.put(T1, "reply", {"n": i})
        await box.put(T1, "reply", {"n": 250})
        conn = Conn(box, cast(Any, reactor))
        puts = [box.put(T1, "reply", {"n": 251 + i}) for i in range(250)]
        for d in puts:
            await d
        events: list[SSEEvent] = []
        for _ in range(200):
            events += conn.pump()
            if len(events) >= 501:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        assert [e.json()["n"] for e in events] == list(range(501))
        assert _ids(events) == sorted(set(_ids(events)))
        conn.disconnect()
        assert box.subscribers(T1) == 0
    finally:
        await db.stop()


@pytest_twisted.ensureDeferred
async def test_unread_unix_socket_is_bounded_then_aborted(reactor: Any, tmp_path: Path) -> None:
    """Over a real UNIX socket whose client never reads, the server's send buffer stays
    bounded (the transport pauses the stream) while items keep coming, and the stream is
    aborted once paused for the stall limit."""
    store = FakeStore()
    box = Mailbox(cast(Any, store), reactor)
    streams: list[EventStream] = []

    class Events(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            request.setHeader(b"Content-Type", b"text/event-stream")
            stream = EventStream(box, T1, 0, reactor, stall_limit=0.5)
            streams.append(stream)
            stream.start(request)
            return NOT_DONE_YET

    port = reactor.listenUNIX(str(tmp_path / "s.sock"), Site(Events(), reactor=reactor))
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        client.connect(str(tmp_path / "s.sock"))
        client.sendall(b"GET /v1/events HTTP/1.1\r\nHost: switch\r\n\r\n")
        for _ in range(200):
            if streams:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        [stream] = streams
        request = stream.request
        assert request is not None and request.channel is not None
        transport: Any = request.channel.transport
        text = "X" * 2000
        peak = 0
        for _ in range(40):  # 40 x 100 items of ~2 KB: 8 MB offered
            for i in range(100):
                box.put(T1, "teletype", {"text": text, "n": i})
            pending = len(transport.dataBuffer) + transport._tempDataLen
            peak = max(peak, pending)
            await task.deferLater(reactor, 0.005, lambda: None)
            if stream.closed:
                break
        assert stream.paused_at is not None or stream.closed, "the transport paused it"
        # the transport's own buffer: its 64 KiB high-water mark plus one page at most
        assert peak < 64 * 1024 + PAGE * 2200, peak
        for _ in range(300):
            if stream.closed:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        assert stream.closed, "stalled stream aborted"
        assert box.subscribers(T1) == 0
    finally:
        client.close()
        await port.stopListening()
        await task.deferLater(reactor, 0.05, lambda: None)
