"""Teletype destination rules: first match wins (DESIGN §6). Pure, no I/O.

Patterns: an exact ORI, an ORI prefix ending in ``*`` (``MO048*``), a 2-letter state
code, a broadcast code (``REG``, ``STATE``), or ``*`` for any other valid state code or
ORI. A destination no rule matches, or whose rule has no link, is unroutable: its route
goes to the intercept queue with ``network: null``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from switch.config import BROADCAST_CODES, DestinationRule
from switch.model import STATE_CODES, ValidationError, is_ori

MAX_AREA_DESTINATIONS = 5  # state or region codes per message
MAX_YQ_ORIS = 3


@dataclass(frozen=True)
class Route:
    """One destination of one message; ``wire_id`` is the same on every resend."""

    number: int
    dest: str
    link: str | None
    wire_id: str
    rule: str | None


def is_destination(dest: str) -> bool:
    return is_ori(dest) or dest in STATE_CODES or dest in BROADCAST_CODES


def rule_matches(pattern: str, dest: str) -> bool:
    if pattern == "*":
        return is_ori(dest) or dest in STATE_CODES
    if pattern.endswith("*"):
        return is_ori(dest) and dest.startswith(pattern[:-1])
    return pattern == dest


def match(rules: Sequence[DestinationRule], dest: str) -> DestinationRule | None:
    """The first rule matching ``dest``, or None."""
    return next((r for r in rules if rule_matches(r.pattern, dest)), None)


def validate_destinations(key: str, to: object) -> tuple[str, ...]:
    """Normalise and check a message's destination list against the wire limits."""
    if not isinstance(to, list | tuple) or not to:
        raise ValidationError("to", "to: a non-empty list of ORIs or codes")
    out: list[str] = []
    for item in to:
        dest = item.strip().upper() if isinstance(item, str) else ""
        if not is_destination(dest):
            raise ValidationError("to", f"to: {item!r} is not an ORI, state or broadcast code")
        if dest not in out:
            out.append(dest)
    areas = [d for d in out if not is_ori(d)]
    if len(areas) > MAX_AREA_DESTINATIONS:
        raise ValidationError("to", f"to: at most {MAX_AREA_DESTINATIONS} state/region codes")
    if key == "YQ" and (areas or len(out) > MAX_YQ_ORIS):
        raise ValidationError("to", f"to: a YQ goes to at most {MAX_YQ_ORIS} ORIs")
    return tuple(out)


def plan_routes(
    rules: Sequence[DestinationRule], message_id: str, to: Sequence[str]
) -> list[Route]:
    """One route per destination, numbered from 1 in the order given."""
    routes = []
    for number, dest in enumerate(to, start=1):
        rule = match(rules, dest)
        routes.append(
            Route(
                number=number,
                dest=dest,
                link=rule.link if rule else None,
                wire_id=f"{message_id}-{number}",
                rule=rule.pattern if rule else None,
            )
        )
    return routes
