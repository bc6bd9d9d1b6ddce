"""Teletype benchmark: committed-and-delivered messages per second through the durable queue.

Usage: ``.venv/bin/python bench/bench_teletype.py [--messages 3000] [--concurrency 16]
[--update-results]``. What it does, every step bounded in count and time:

1. starts ``switch-sim all`` (delay 0) and the real ``switchd`` on free ports in a
   temporary directory (the integration tests' harness), waits for the four links;
2. posts ``--messages`` AMs to ``POST /v1/messages`` from ``--concurrency`` keep-alive
   connections (closed loop), round robin over one destination per network
   (``MO0380200`` local, ``MO0480100`` regional, ``MO0990000`` state, ``TX1234567``
   national). Each 202 means: audited, message + route + queue item committed (fsync);
3. counts a message *delivered* when its network's simulator has taken it (its
   ``/<network>/stats`` ``teletype_received`` counter), and stops the clock when all are;
4. prints a Markdown report (``--update-results`` writes it as the "Teletype" section of
   bench/RESULTS.md): committed/s (202s per second), committed-and-delivered/s (messages
   over the time until the last one reached its network), 202 latency, switchd CPU per
   message from /proc (all threads).

The simulated agencies answer each AM with an AM of their own 2-10 s later (incoming
teletype, committed to the mailboxes); with a short run most of that lands after the
clock has stopped, so the number is for the outbound path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import RequestFailed, _Conn, _parse_http, cpu_seconds
from results import replace_section

from tests.integration.gateway_harness import Gateway, start_gateway

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
TARGETS = (
    ("MO0380200", "local"),
    ("MO0480100", "regional"),
    ("MO0990000", "state"),
    ("TX1234567", "national"),
)


def _request(token: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return (
        b"POST /v1/messages HTTP/1.1\r\nHost: switch\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )


async def _post_all(
    socket: str, token: str, count: int, concurrency: int, tag: str
) -> dict[str, Any]:
    """Closed loop: ``concurrency`` connections post ``count`` messages in all."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_n = 0

    async def worker() -> None:
        nonlocal next_n
        _, conn = await loop.create_unix_connection(lambda: _Conn(_parse_http), socket)
        try:
            while next_n < count:
                n = next_n
                next_n += 1
                dest, _ = TARGETS[n % len(TARGETS)]
                body = {"key": "AM", "to": [dest], "text": f"BENCH {tag} {n}"}
                started = time.monotonic()
                try:
                    status, _data = await conn.request(_request(token, body))
                except RequestFailed as exc:
                    errors[str(exc)] = errors.get(str(exc), 0) + 1
                    return
                if status != 202:
                    errors[f"status {status}"] = errors.get(f"status {status}", 0) + 1
                else:
                    latencies.append(time.monotonic() - started)
        finally:
            conn.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"latencies": latencies, "errors": errors, "seconds": time.monotonic() - t0}


def _received(gw: Gateway) -> dict[str, int]:
    return {
        net: int(gw.control("GET", f"/{net}/stats").get("teletype_received", 0))
        for _, net in TARGETS
    }


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def run(messages: int, concurrency: int) -> str:
    gw = start_gateway(persons=200)
    try:
        gw.links_up()
        gw.client("DISPATCH1")
        token = gw.tokens["DISPATCH1"]
        assert gw.switchd is not None
        pid = gw.switchd.pid
        before = _received(gw)
        expected = {net: before[net] for _, net in TARGETS}
        for n in range(messages):
            expected[TARGETS[n % len(TARGETS)][1]] += 1
        cpu0 = cpu_seconds(pid)
        t0 = time.monotonic()
        posted = asyncio.run(_post_all(str(gw.socket), token, messages, concurrency, "T"))
        committed_at = time.monotonic()
        deadline = committed_at + 120
        while time.monotonic() < deadline:
            got = _received(gw)
            if all(got[n] >= expected[n] for n in got):
                break
            time.sleep(0.02)
        delivered_at = time.monotonic()
        cpu = cpu_seconds(pid) - cpu0
        got = _received(gw)
        delivered = sum(got[n] - before[n] for n in got)
        ok = len(posted["latencies"])
        lines = [
            "## Teletype",
            "",
            f"`bench/bench_teletype.py` on 2 cores, {time.strftime('%Y-%m-%d')}: switchd "
            "(audit on, SQLite WAL + synchronous=FULL), `switch-sim all` (delay 0) and the "
            "load generator share the machine. AMs to one destination per network, round "
            f"robin, posted closed loop from {concurrency} keep-alive connections; a 202 means "
            "audited and committed (message, route, queue item); *delivered* = the network's "
            "simulator took it (its ACK).",
            "",
            "| messages | committed/s | committed-and-delivered/s | 202 p50 ms | 202 p99 ms "
            "| switchd CPU us/msg | errors |",
            "|---:|---:|---:|---:|---:|---:|---|",
            f"| {messages} | {ok / posted['seconds']:.0f} "
            f"| {delivered / (delivered_at - t0):.0f} "
            f"| {_pct(posted['latencies'], 50):.2f} | {_pct(posted['latencies'], 99):.2f} "
            f"| {cpu / max(delivered, 1) * 1e6:.0f} "
            f"| {', '.join(f'{k} {v}' for k, v in posted['errors'].items()) or '0'} |",
            "",
            f"- {ok} accepted (202), {delivered} delivered in {delivered_at - t0:.2f} s; the "
            f"last delivery {delivered_at - committed_at:.2f} s after the last 202.",
        ]
        return "\n".join(lines) + "\n"
    finally:
        gw.close()


def update_results(section: str) -> None:
    replace_section("Teletype", section, RESULTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--update-results", action="store_true", help="write RESULTS.md")
    args = parser.parse_args(argv)
    section = run(args.messages, args.concurrency)
    print(section)
    if args.update_results:
        update_results(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
