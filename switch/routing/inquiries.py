"""Inquiry fan-out and correlation: which networks to ask, and what their answers add up to.

Pure decisions (DESIGN §6): no I/O, no clock. The service asks ``networks_for`` once per
inquiry, feeds replies into an :class:`InquiryProgress`, and reads its summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from switch.config import RoutesConfig
from switch.model import OFFICER_SAFETY_CAVEATS, Reply, ValidationError

#: Subjects whose records live with the issuing state: asked in-state or out of state.
STATE_ISSUED = frozenset({"driver", "registration"})


def networks_for(
    routes: RoutesConfig,
    subject: str,
    fields: dict[str, str],
    *,
    home_state: str,
    allowed: Iterable[str],
    requested: Iterable[str] | None = None,
) -> tuple[str, ...]:
    """The networks an inquiry goes to: the subject's route, narrowed by terminal and request.

    Driver and registration checks for another state go to the out-of-state network
    instead (DESIGN §6). Asking for a network the terminal may not use is an error
    (HTTP 403), not a silent narrowing: a dispatcher must know what was not checked.
    """
    route = list(routes.inquiries.get(subject, ()))
    if subject in STATE_ISSUED:
        issuing = fields.get("oln_state") or fields.get("plate_state") or home_state
        if issuing != home_state and routes.out_of_state_link:
            route = [routes.out_of_state_link]
    permitted = set(allowed)
    if requested is not None:
        wanted = list(dict.fromkeys(requested))
        for name in wanted:
            if name not in route:
                raise ValidationError("networks", f"networks: {name} is not asked for a {subject}")
            if name not in permitted:
                raise PermissionError(f"network {name} not allowed for this terminal")
        return tuple(wanted)
    chosen = tuple(n for n in route if n in permitted)
    if not chosen:
        raise PermissionError(f"no network this terminal may use answers a {subject} inquiry")
    return chosen


def is_urgent(reply: Reply) -> bool:
    """A hit carrying an officer-safety caveat is pushed and shown first."""
    return reply.status == "hit" and any(
        c in OFFICER_SAFETY_CAVEATS for r in reply.records for c in r.caveats
    )


def display_order(replies: Iterable[Reply]) -> list[Reply]:
    """Urgent hits, then other hits, then everything else; stable within each group."""
    return sorted(replies, key=lambda r: (not is_urgent(r), r.status != "hit"))


@dataclass
class InquiryProgress:
    """Replies so far for one inquiry; complete when every asked network has answered.

    The first answer per network counts (a late reply after a ``timeout`` is kept in
    ``late`` so it is still delivered and audited, but does not reopen the inquiry).
    """

    id: str
    networks: tuple[str, ...]
    replies: dict[str, Reply] = field(default_factory=dict)
    late: list[Reply] = field(default_factory=list)
    _asked: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._asked = len(set(self.networks))

    @property
    def complete(self) -> bool:
        # add() keeps only asked networks in replies, one each: counting is enough.
        return len(self.replies) >= self._asked

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(n for n in self.networks if n not in self.replies)

    def add(self, reply: Reply) -> bool:
        """Record a reply; True if it answered a network still pending."""
        if reply.network not in self.networks:
            return False
        if reply.network in self.replies:
            self.late.append(reply)
            return False
        self.replies[reply.network] = reply
        return True

    def summary(self) -> dict[str, object]:
        """The summary of DESIGN §9: hits per network and file, caveats, urgent flag."""
        counts: dict[tuple[str, str], int] = {}
        caveats: list[str] = []
        for reply in self.replies.values():
            if reply.status != "hit":
                continue
            for record in reply.records:
                key = (reply.network, record.file)
                counts[key] = counts.get(key, 0) + 1
                caveats.extend(c for c in record.caveats if c not in caveats)
        return {
            "hits": [{"network": n, "file": f, "count": c} for (n, f), c in counts.items()],
            "caveats": caveats,
            "urgent": any(is_urgent(r) for r in self.replies.values()),
        }
