"""Fault injection: the knobs of DESIGN §9, validated, merged, and reported back as JSON."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

#: Keys kept in the fault set. ``close_now`` is an action (done once, never kept).
KEPT = ("delay_ms", "drop_after", "refuse_logon", "no_ack", "garble", "refuse_connections")
ACTIONS = ("close_now",)


class FaultError(ValueError):
    """A bad fault request (HTTP 400 on the control API)."""


@dataclass
class Faults:
    delay_ms: float | tuple[float, float] | None = None
    drop_after: int | None = None
    refuse_logon: bool = False
    no_ack: bool = False
    garble: bool = False
    refuse_connections: bool = False

    def merge(self, request: dict[str, Any]) -> list[str]:
        """Apply the given keys (``{}`` clears everything); return the actions asked for.

        Validates everything before changing anything, so a bad request changes nothing.
        """
        if not isinstance(request, dict):
            raise FaultError("expected a JSON object")
        unknown = set(request) - set(KEPT) - set(ACTIONS)
        if unknown:
            raise FaultError(f"unknown fault keys: {', '.join(sorted(unknown))}")
        changes: dict[str, Any] = {}
        for key, value in request.items():
            if key in ACTIONS:
                continue
            changes[key] = _check(key, value)
        if not request:
            for spec in dataclasses.fields(self):
                setattr(self, spec.name, spec.default)
            return []
        for key, value in changes.items():
            setattr(self, key, value)
        return [k for k in ACTIONS if request.get(k)]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.delay_ms is not None:
            out["delay_ms"] = (
                list(self.delay_ms) if isinstance(self.delay_ms, tuple) else self.delay_ms
            )
        if self.drop_after is not None:
            out["drop_after"] = self.drop_after
        for key in ("refuse_logon", "no_ack", "garble", "refuse_connections"):
            if getattr(self, key):
                out[key] = True
        return out

    def delay(self, rng: random.Random, default: tuple[float, float]) -> float:
        """Seconds to wait before answering: the fault's delay, else the network default."""
        spec: float | tuple[float, float] = self.delay_ms if self.delay_ms is not None else default
        if isinstance(spec, tuple):
            low, high = spec
            return rng.uniform(low, high) / 1000.0
        return float(spec) / 1000.0


def _check(key: str, value: Any) -> Any:
    if key == "delay_ms":
        if value is None:
            return None
        if isinstance(value, bool):
            raise FaultError("delay_ms: a number or [min, max]")
        if isinstance(value, int | float) and 0 <= value <= 600_000:
            return float(value)
        if (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            and 0 <= value[0] <= value[1] <= 600_000
        ):
            return (float(value[0]), float(value[1]))
        raise FaultError("delay_ms: a number or [min, max] of milliseconds (0..600000)")
    if key == "drop_after":
        if value is None or value is False:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise FaultError("drop_after: a positive number of frames")
    if not isinstance(value, bool):
        raise FaultError(f"{key}: true or false")
    return value
