"""Pure routing decisions: inquiry fan-out, correlation summary, teletype destinations."""

from __future__ import annotations

import pytest

from switch.config import DestinationRule, RoutesConfig
from switch.model import Record, Reply, ValidationError, Warrant
from switch.routing import destinations, inquiries

ALL = ("local", "regional", "state", "national")
ROUTES = RoutesConfig(
    inquiries={
        "person": ALL,
        "vehicle": ALL,
        "gun": ALL,
        "article": ALL,
        "driver": ("state",),
        "registration": ("state",),
    },
    out_of_state_link="national",
    destinations=(
        DestinationRule("MO0380100", "local"),
        DestinationRule("MO038*", "local"),
        DestinationRule("MO048*", "regional"),
        DestinationRule("REG", "regional"),
        DestinationRule("MO*", "state"),
        DestinationRule("MO", "state"),
        DestinationRule("STATE", "state"),
        DestinationRule("*", "national"),
    ),
)


def test_person_goes_to_every_network_the_terminal_may_use() -> None:
    """A person check fans out to the subject's route, narrowed by the terminal."""
    got = inquiries.networks_for(
        ROUTES, "person", {}, home_state="MO", allowed=("local", "state", "national")
    )
    assert got == ("local", "state", "national")


def test_out_of_state_driver_goes_national() -> None:
    """Driver checks for another state's licence go to the out-of-state network."""
    kw = {"home_state": "MO", "allowed": ALL}
    assert inquiries.networks_for(ROUTES, "driver", {"oln_state": "MO"}, **kw) == ("state",)
    assert inquiries.networks_for(ROUTES, "driver", {"oln_state": "KS"}, **kw) == ("national",)
    assert inquiries.networks_for(ROUTES, "registration", {"vin": "X"}, **kw) == ("state",)


def test_requested_network_must_be_allowed_and_routed() -> None:
    """Asking for a network the terminal may not use is refused, not silently dropped."""
    with pytest.raises(PermissionError):
        inquiries.networks_for(
            ROUTES, "person", {}, home_state="MO", allowed=("local",), requested=["state"]
        )
    with pytest.raises(ValidationError) as err:
        inquiries.networks_for(
            ROUTES,
            "driver",
            {"oln_state": "MO"},
            home_state="MO",
            allowed=ALL,
            requested=["local"],
        )
    assert err.value.field == "networks"
    got = inquiries.networks_for(
        ROUTES, "person", {}, home_state="MO", allowed=ALL, requested=["state", "local", "state"]
    )
    assert got == ("state", "local")


def _reply(network: str, status: str, caveats: tuple[str, ...] = ()) -> Reply:
    records = (Record("wanted_person", {"name": "DOE, JOHN A"}, caveats, Warrant(number="W1")),)
    return Reply(
        id=f"R-{network}",
        network=network,
        status=status,
        text="TEXT",
        records=records if status == "hit" else (),
        in_reply_to="Q1",
    )


def test_progress_completes_and_summarises() -> None:
    """The inquiry completes when every network answered; urgent when a caveat demands it."""
    progress = inquiries.InquiryProgress("Q1", ("local", "national"))
    assert progress.add(_reply("local", "hit"))
    assert not progress.complete and progress.pending == ("national",)
    assert progress.summary()["urgent"] is False
    assert progress.add(_reply("national", "hit", ("armed_and_dangerous",)))
    assert progress.complete
    assert not progress.add(_reply("national", "no_record"))
    assert len(progress.late) == 1
    summary = progress.summary()
    assert summary["urgent"] is True
    assert summary["caveats"] == ["armed_and_dangerous"]
    assert {"network": "national", "file": "wanted_person", "count": 1} in summary["hits"]
    twice = inquiries.InquiryProgress("Q2", ("local", "local", "state"))
    assert twice.add(_reply("local", "no_record")) and not twice.complete
    assert not twice.add(_reply("other", "hit")) and not twice.complete  # never asked
    assert twice.add(_reply("state", "no_record")) and twice.complete


def test_display_order_puts_officer_safety_first() -> None:
    """Urgent hits first, then hits, then the rest."""
    order = inquiries.display_order(
        [
            _reply("local", "no_record"),
            _reply("state", "hit"),
            _reply("national", "hit", ("violent",)),
        ]
    )
    assert [r.network for r in order] == ["national", "state", "local"]


@pytest.mark.parametrize(
    ("dest", "link"),
    [
        ("MO0380100", "local"),
        ("MO0380200", "local"),
        ("MO0480500", "regional"),
        ("REG", "regional"),
        ("MO0950000", "state"),
        ("MO", "state"),
        ("STATE", "state"),
        ("TX2270000", "national"),
        ("KS", "national"),
    ],
)
def test_demo_destination_rules(dest: str, link: str) -> None:
    """The demo routes of DESIGN §9 pick the expected network; first match wins."""
    rule = destinations.match(ROUTES.destinations, dest)
    assert rule is not None and rule.link == link


def test_unroutable_and_route_ids() -> None:
    """Unmatched destinations get no link; wire ids are '<id>-<n>' per destination."""
    rules = ROUTES.destinations[:2]
    routes = destinations.plan_routes(rules, "M1", ["MO0380100", "TX2270000"])
    assert [(r.wire_id, r.link) for r in routes] == [("M1-1", "local"), ("M1-2", None)]


def test_destination_limits() -> None:
    """At most 5 state/region codes; a YQ goes to at most 3 ORIs and no area codes."""
    assert destinations.validate_destinations("AM", ["mo", "KS", "KS"]) == ("MO", "KS")
    with pytest.raises(ValidationError):
        destinations.validate_destinations("AM", ["MO", "KS", "IL", "IA", "NE", "OK"])
    with pytest.raises(ValidationError):
        destinations.validate_destinations(
            "YQ", ["MO0380100", "MO0380200", "MO0380300", "MO0380400"]
        )
    with pytest.raises(ValidationError):
        destinations.validate_destinations("YQ", ["MO"])
    with pytest.raises(ValidationError):
        destinations.validate_destinations("AM", ["NOWHERE"])
    with pytest.raises(ValidationError):
        destinations.validate_destinations("AM", [])
