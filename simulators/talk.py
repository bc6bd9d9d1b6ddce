"""Drive a simulated network by hand: log on, send one inquiry or teletype, print answers.

    .venv/bin/python -m simulators.talk state person name="DOE, JOHN A" dob=1980-01-01
    .venv/bin/python -m simulators.talk national AM to=TX2270000 text="ATTN RECORDS"

Speaks the client side of the network's real codec (national over mutual TLS with
``var/pki``), ACKs what the network originates, and prints every decoded frame (the
model's repr) for ``--wait`` seconds. A manual tool for demos and debugging: blocking
sockets, no Twisted.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import time
from pathlib import Path

from switch import paths
from switch.formats.base import CodecError
from switch.formats.registry import codec_for
from switch.model import (
    ADMIN_KEYS,
    SUBJECTS,
    Ack,
    AdminMessage,
    Inquiry,
    Logoff,
    Logon,
    Origin,
    WireMessage,
    new_id,
)

PORTS = {"local": 7101, "regional": 7102, "state": 7103, "national": 7104}


def _message(what: str, pairs: dict[str, str], station: str) -> WireMessage:
    msg_id = new_id()
    if what in SUBJECTS:
        return Inquiry(
            id=msg_id,
            subject=what,
            fields=pairs,
            origin=Origin(station),
            control="S" + msg_id[-9:],
        )
    if what in ADMIN_KEYS:
        to = tuple(t for t in pairs.pop("to", "").split(",") if t)
        text = pairs.pop("text", "TEST MESSAGE")
        return AdminMessage(id=msg_id, key=what, from_ori=station, to=to, text=text, fields=pairs)
    raise SystemExit(f"talk: {what!r} is neither a subject nor a teletype key")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.talk", description=__doc__)
    p.add_argument("network", choices=tuple(PORTS))
    p.add_argument("what", help="a subject (person, vehicle, ...) or AM/YQ/YR")
    p.add_argument("pairs", nargs="*", help="field=value (teletype: to=A,B text=...)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--var", type=Path, default=Path("var"))
    p.add_argument("--station", default="MO0380100")
    p.add_argument("--wait", type=float, default=3.0, help="seconds to print answers")
    args = p.parse_args(argv)
    pairs = dict(pair.partition("=")[::2] for pair in args.pairs)
    message = _message(args.what, pairs, args.station)
    secret = paths.read_secret(paths.secret_file(args.network, args.var))
    codec = codec_for(args.network, args.station, role="client")
    framer = codec.framer()
    sock: socket.socket = socket.create_connection(
        (args.host, args.port or PORTS[args.network]), timeout=5
    )
    if args.network == "national":
        pki = paths.pki_dir(args.var)
        ctx = ssl.create_default_context(cafile=str(pki / paths.CA_CERT))
        ctx.load_cert_chain(str(pki / paths.CLIENT_CERT), str(pki / paths.CLIENT_KEY))
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    sock.sendall(codec.encode(Logon(args.station, secret)) + codec.encode(message))
    deadline = time.monotonic() + args.wait
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (TimeoutError, ssl.SSLError):
            break
        if not data:
            print("(connection closed)")
            return 0
        try:
            frames = framer.feed(data)
        except CodecError as err:
            print(f"framing error: {err}")
            continue
        for frame in frames:
            try:
                decoded = codec.decode(frame)
            except CodecError as err:
                print(f"undecodable frame: {err}")
                continue
            print(decoded)
            if isinstance(decoded, AdminMessage):
                sock.sendall(codec.encode(Ack(decoded.id)))
    sock.sendall(codec.encode(Logoff()))
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
