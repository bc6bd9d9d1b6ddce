"""Small transport settings shared by the links and the simulators."""

from __future__ import annotations

from typing import Any


def set_no_delay(transport: Any) -> bool:
    """Turn Nagle off on the TCP socket under ``transport`` (through a TLS wrapper).

    Every frame here is small and answered at once: with Nagle on, a frame written while
    the previous one is un-ACKed at the TCP level waits for the peer's delayed ACK
    (~40 ms on Linux), which was most of the gateway's added latency at low load.
    """
    seen = 0
    while transport is not None and seen < 4:
        setter = getattr(transport, "setTcpNoDelay", None)
        if setter is not None:
            try:
                setter(True)
            except OSError:
                return False
            return True
        transport = getattr(transport, "transport", None)
        seen += 1
    return False
