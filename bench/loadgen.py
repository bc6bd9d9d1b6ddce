"""A small, efficient load generator for the inquiry benchmark (asyncio, one process).

Two targets share one engine so that the gateway and its baseline are driven the same way:

* :class:`HttpTarget`: ``POST /v1/inquiries?wait=S`` to switchd over its UNIX socket, on
  persistent HTTP/1.1 keep-alive connections (hand-rolled client: one pre-encoded request,
  a ``Content-Length`` response parsed from the buffer; no per-request HTTP library cost);
* :class:`LineTarget`: one JSON line per request to ``bench/relay_baseline.py``.

Drivers, each bounded in count and time:

* :func:`open_loop`: a fixed arrival rate for a fixed number of requests, whatever the
  answers do. Latency runs from each request's *scheduled* send time, so a stalled client
  or server cannot hide its queueing (no coordinated omission);
* :func:`closed_loop`: ``concurrency`` clients each sending the next request as soon as the
  previous answer is in, until a deadline or a request cap: the saturation throughput.

A connection is used by one request at a time. Open loop takes an idle connection from the
pool or opens a new one (up to ``max_connections``; beyond that requests wait for one).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A reply outcome that counts as an answered inquiry.
GOOD = frozenset({"hit", "no_record"})


class RequestFailed(Exception):
    """The connection broke or answered something unusable."""


# --------------------------------------------------------------------------- connections


class _Conn(asyncio.Protocol):
    """One persistent client connection; one request in flight at a time."""

    def __init__(self, parse: Callable[[bytearray], tuple[int, Any] | None]) -> None:
        self._parse = parse
        self._buf = bytearray()
        self._fut: asyncio.Future[Any] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._fut is None:  # unsolicited (e.g. a 408 before closing): unusable now
            self.close()
            return
        parsed = self._parse(self._buf)
        if parsed is None:
            return
        consumed, result = parsed
        del self._buf[:consumed]
        fut, self._fut = self._fut, None
        if not fut.done():
            fut.set_result(result)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        fut, self._fut = self._fut, None
        if fut is not None and not fut.done():
            fut.set_exception(RequestFailed("connection lost"))

    def request(self, data: bytes) -> asyncio.Future[Any]:
        if self.closed or self.transport is None:
            raise RequestFailed("connection closed")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._fut = fut
        self.transport.write(data)
        return fut

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _parse_http(buf: bytearray) -> tuple[int, tuple[int, bytes]] | None:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise RequestFailed("bad status line") from None
    length = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise RequestFailed("response without Content-Length")
    total = end + 4 + length
    if len(buf) < total:
        return None
    return total, (status, bytes(buf[end + 4 : total]))


def _parse_line(buf: bytearray) -> tuple[int, bytes] | None:
    end = buf.find(b"\n")
    if end < 0:
        return None
    return end + 1, bytes(buf[: end + 1]).rstrip(b"\r\n")


class Target:
    """Where requests go and how their answers are judged."""

    name = "target"

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def _parser(self) -> Callable[[bytearray], Any]:
        raise NotImplementedError

    async def connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_unix_connection(lambda: _Conn(self._parser()), self.socket)
        return conn

    def encode(self, fields: dict[str, str]) -> bytes:
        raise NotImplementedError

    def judge(self, result: Any) -> tuple[str, bool]:
        """(outcome, hit): outcome ``ok`` or an error kind (closed set, for counting)."""
        raise NotImplementedError


class HttpTarget(Target):
    """switchd's ``POST /v1/inquiries?wait=S`` (a person inquiry) with a bearer token."""

    name = "gateway"

    def __init__(self, socket: str, token: str, wait: float = 10.0) -> None:
        super().__init__(socket)
        self.token = token
        self.wait = wait

    def _parser(self) -> Callable[[bytearray], Any]:
        return _parse_http

    def encode(self, fields: dict[str, str]) -> bytes:
        body = json.dumps({"subject": "person", "fields": fields, "purpose": "C"}).encode()
        head = (
            f"POST /v1/inquiries?wait={self.wait:g} HTTP/1.1\r\n"
            "Host: switch\r\n"
            f"Authorization: Bearer {self.token}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode("ascii") + body

    def judge(self, result: Any) -> tuple[str, bool]:
        status, body = result
        if status != 200:
            return f"http_{status}", False
        data = json.loads(body)
        if data.get("status") != "complete":
            return "pending", False
        statuses = [r["status"] for r in data["replies"]]
        bad = [s for s in statuses if s not in GOOD]
        if bad or len(statuses) != 4:
            return f"reply_{bad[0] if bad else 'count'}", False
        return "ok", "hit" in statuses


class LineTarget(Target):
    """``bench/relay_baseline.py``: a JSON line in, the four statuses out."""

    name = "relay"

    def _parser(self) -> Callable[[bytearray], Any]:
        return _parse_line

    def encode(self, fields: dict[str, str]) -> bytes:
        return json.dumps({"fields": fields}).encode() + b"\n"

    def judge(self, result: Any) -> tuple[str, bool]:
        statuses = result.decode().split(",")
        bad = [s for s in statuses if s not in GOOD]
        if bad or len(statuses) != 4:
            return f"reply_{(bad[0] if bad else 'count').split()[0]}", False
        return "ok", "hit" in statuses


# --------------------------------------------------------------------------- results


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile of ``values`` (nearest rank); NaN when there are none."""
    if not values:
        return math.nan
    data = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(data)))
    return data[rank - 1]


@dataclass
class PhaseResult:
    """What one driver run measured. Latencies in seconds, of successful requests only."""

    label: str
    sent: int = 0
    answered: int = 0  # got a response at all (ok or an error answer): work the server did
    ok: int = 0
    hits: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    connections: int = 0

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def pct(self, p: float) -> float:
        """The p-th percentile latency (nearest rank), seconds; NaN when none."""
        return percentile(self.latencies, p)

    def summary(self) -> str:
        errs = ", ".join(f"{k}={v}" for k, v in sorted(self.errors.items())) or "none"
        return (
            f"{self.label}: sent {self.sent}, ok {self.ok} ({self.hits} with a hit), "
            f"{self.throughput:.0f}/s over {self.elapsed:.2f} s, "
            f"p50 {1e3 * self.pct(50):.2f} ms, p99 {1e3 * self.pct(99):.2f} ms, "
            f"max {1e3 * max(self.latencies, default=math.nan):.2f} ms, "
            f"connections {self.connections}, errors: {errs}"
        )


class _Pool:
    """Idle connections; opens new ones on demand up to ``limit``."""

    def __init__(self, target: Target, limit: int) -> None:
        self.target = target
        self.limit = limit
        self.idle: deque[_Conn] = deque()
        self.opened = 0
        self.all: list[_Conn] = []
        self._waiters: deque[asyncio.Future[_Conn]] = deque()

    async def fill(self, count: int) -> None:
        conns = await asyncio.gather(*(self._open() for _ in range(min(count, self.limit))))
        self.idle.extend(conns)

    async def _open(self) -> _Conn:
        self.opened += 1
        conn = await self.target.connect()
        self.all.append(conn)
        return conn

    async def get(self) -> _Conn:
        while self.idle:
            conn = self.idle.popleft()
            if not conn.closed:
                return conn
        if self.opened < self.limit:
            return await self._open()
        fut: asyncio.Future[_Conn] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return await fut

    def put(self, conn: _Conn | None) -> None:
        if conn is None or conn.closed:
            self.opened -= 1
            if self._waiters and self.opened < self.limit:
                waiter = self._waiters.popleft()
                task = asyncio.ensure_future(self._open())
                task.add_done_callback(lambda t: _hand_over(t, waiter))
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def close(self) -> None:
        for conn in self.all:
            conn.close()


def _hand_over(task: asyncio.Task[_Conn], waiter: asyncio.Future[_Conn]) -> None:
    if waiter.done():
        return
    if task.exception() is not None:
        waiter.set_exception(RequestFailed("connect failed"))
    else:
        waiter.set_result(task.result())


async def _one(pool: _Pool, target: Target, payload: bytes, start: float, res: PhaseResult) -> None:
    loop = asyncio.get_running_loop()
    conn: _Conn | None = None
    try:
        conn = await pool.get()
        result = await conn.request(payload)
        outcome, hit = target.judge(result)
    except (OSError, RequestFailed, ValueError, KeyError) as exc:
        res.errors[type(exc).__name__] += 1
        if conn is not None:
            conn.close()
        pool.put(conn)
        return
    pool.put(conn)
    res.answered += 1
    if outcome == "ok":
        res.ok += 1
        res.hits += hit
        res.latencies.append(loop.time() - start)
    else:
        res.errors[outcome] += 1


async def open_loop(
    target: Target,
    payloads: Sequence[bytes],
    rate: float,
    count: int,
    *,
    label: str = "",
    prefill: int = 0,
    max_connections: int = 1000,
    grace: float = 15.0,
) -> PhaseResult:
    """Send ``count`` requests at ``rate``/s on a fixed schedule; wait at most ``grace``
    seconds after the last send for the answers (the rest are counted ``unanswered``)."""
    loop = asyncio.get_running_loop()
    res = PhaseResult(label or f"{target.name} open loop {rate:g}/s")
    pool = _Pool(target, max_connections)
    await pool.fill(prefill or min(max_connections, max(8, int(rate * 0.05))))
    tasks: list[asyncio.Task[None]] = []
    interval = 1.0 / rate
    t0 = loop.time() + 0.01
    i = 0
    while i < count:
        now = loop.time()
        due = t0 + i * interval
        if due > now:
            await asyncio.sleep(due - now)
            continue
        while i < count and t0 + i * interval <= now:  # everything due by now, on schedule
            start = t0 + i * interval
            body = payloads[i % len(payloads)]
            tasks.append(loop.create_task(_one(pool, target, body, start, res)))
            i += 1
    res.sent = count
    _, pending = await asyncio.wait(tasks, timeout=grace) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    res.errors["unanswered"] += len(pending)
    res.elapsed = count * interval
    res.connections = len(pool.all)
    pool.close()
    await asyncio.sleep(0)
    return res


async def closed_loop(
    target: Target,
    payloads: Sequence[bytes],
    concurrency: int,
    seconds: float,
    *,
    label: str = "",
    max_requests: int = 1_000_000,
    request_timeout: float = 15.0,
) -> PhaseResult:
    """``concurrency`` clients back to back for ``seconds`` (or ``max_requests``)."""
    loop = asyncio.get_running_loop()
    res = PhaseResult(label or f"{target.name} closed loop x{concurrency}")
    pool = _Pool(target, concurrency)
    await pool.fill(concurrency)
    deadline = loop.time() + seconds
    counter = iter(range(max_requests))

    async def client() -> None:
        for n in counter:
            if loop.time() >= deadline:
                return
            res.sent += 1
            await _one(pool, target, payloads[n % len(payloads)], loop.time(), res)

    t0 = loop.time()
    workers = [loop.create_task(client()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(workers, timeout=seconds + request_timeout)
    for task in pending:
        task.cancel()
    res.errors["unanswered"] += len(pending)
    res.elapsed = loop.time() - t0
    res.connections = len(pool.all)
    pool.close()
    await asyncio.sleep(0)
    return res


# --------------------------------------------------------------------------- CPU


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a whole process (all its threads, live and exited), from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return ticks / _CLK_TCK


_CLK_TCK = 100.0
try:  # pragma: no branch
    import os as _os

    _CLK_TCK = float(_os.sysconf("SC_CLK_TCK"))
except (ValueError, OSError, AttributeError):
    pass


class CpuMeter:
    """CPU seconds used by named processes between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: dict[str, int | str]) -> None:
        self.pids = pids
        self._t0: dict[str, float] = {}
        self._wall0 = 0.0
        self.used: dict[str, float] = {}
        self.wall = 0.0

    def start(self) -> None:
        self._wall0 = time.monotonic()
        self._t0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        self.wall = time.monotonic() - self._wall0
        self.used = {name: cpu_seconds(pid) - self._t0[name] for name, pid in self.pids.items()}
        return self.used

    def shares(self) -> str:
        """Each process's CPU as a percentage of one core over the measured wall time."""
        if self.wall <= 0:
            return ""
        return ", ".join(f"{n} {100 * s / self.wall:.0f}%" for n, s in self.used.items())
