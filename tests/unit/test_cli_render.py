"""switchctl rendering (switch/cli/render.py) and the SSE parser (switch/cli/sse.py): pure code."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.cli import render
from switch.cli.sse import SSEError, SSEEvent, SSEParser

A_AND_D_TEXT = (
    "1N01S00000124\r\nMO0380100\r\n"
    "WARNING - DO NOT ARREST OR DETAIN ON THIS RECORD ALONE. CONFIRM WITH ORI.\r\n"
    "CAUTION - ARMED AND DANGEROUS\r\nMKE/WANTED PERSON"
)


def hit(network: str, caveats: tuple[str, ...] = (), urgent: bool | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "network": network,
        "status": "hit",
        "records": [
            {
                "file": "wanted_person",
                "fields": {"name": "DOE, JOHN A", "dob": "1980-01-01", "sex": "M"},
                "caveats": list(caveats),
                "warrant": {
                    "number": "S26-0099",
                    "offense": "ROBBERY",
                    "issued": "2026-01-15",
                    "court": "",
                    "extradition": "1 - FULL EXTRADITION",
                    "entering_ori": "MO0950000",
                    "oca": "26-000321",
                    "nic": "W000000001",
                },
            }
        ],
        "text": A_AND_D_TEXT,
    }
    if urgent is not None:
        reply["urgent"] = urgent
    return reply


def plain(network: str, status: str) -> dict[str, Any]:
    return {"network": network, "status": status, "records": [], "text": f"{status} AT {network}"}


def inquiry(replies: list[dict[str, Any]], networks: list[str], complete: bool = True) -> Any:
    hits: dict[tuple[str, str], int] = {}
    caveats: list[str] = []
    for r in replies:
        if r["status"] == "hit":
            for rec in r["records"]:
                hits[(r["network"], rec["file"])] = hits.get((r["network"], rec["file"]), 0) + 1
                caveats += [c for c in rec["caveats"] if c not in caveats]
    return {
        "id": "INQ1",
        "status": "complete" if complete else "pending",
        "networks": networks,
        "replies": replies,
        "summary": {
            "hits": [{"network": n, "file": f, "count": c} for (n, f), c in hits.items()],
            "caveats": caveats,
            "urgent": any(render.is_urgent(r) for r in replies),
        },
    }


ALL = ["local", "regional", "state", "national"]

# --------------------------------------------------------------------------- replies


def test_hit_block_has_cautions_on_top_then_network_file_warrant_and_text() -> None:
    """A hit opens with its caution banner, then the network, the file, WNO/OFF/EXL/ORI/NIC
    and the identification fields, then the network's verbatim text indented."""
    lines = render.render_reply(hit("state", ("medical", "armed_and_dangerous"))).splitlines()
    assert lines[0] == "*** CAUTION: ARMED AND DANGEROUS ***"  # officer safety first
    assert lines[1] == "*** CAUTION: MEDICAL ***"
    assert lines[2] == "=== state: HIT, 1 record ==="
    assert lines[3] == "  WANTED PERSON"
    assert lines[4] == (
        "    WNO/S26-0099 OFF/ROBBERY DOW/2026-01-15 EXL/1 - FULL EXTRADITION ORI/MO0950000 "
        "OCA/26-000321 NIC/W000000001"
    )
    assert lines[5] == "    NAM/DOE, JOHN A DOB/1980-01-01 SEX/M"
    assert lines[6:] == ["    | " + line for line in A_AND_D_TEXT.split("\r\n")]


def test_failed_network_is_flagged_and_no_record_is_plain() -> None:
    """error/timeout/unavailable are marked '!!!' so they cannot pass for a clear answer."""
    assert render.render_reply(plain("national", "timeout")).splitlines() == [
        "!!! national: TIMEOUT - no answer in time",
        "    | timeout AT national",
    ]
    assert render.render_reply(plain("local", "no_record")).splitlines()[0] == (
        "--- local: no record"
    )
    late = {**plain("state", "no_record"), "late": True}
    assert render.render_reply(late).splitlines()[0] == "--- state: no record (late)"


def test_control_characters_from_the_network_are_neutralised() -> None:
    """An escape sequence in a reply's text or fields never reaches the terminal raw."""
    reply = plain("local", "no_record")
    reply["text"] = "NO RECORD\x1b[2J\x07 DONE"
    out = render.render_reply(reply)
    assert "\x1b" not in out and "\x07" not in out
    assert "NO RECORD?[2J? DONE" in out


def test_display_order_urgent_hits_then_hits_then_failures_then_no_record() -> None:
    """Replies sort by urgency, stably within each group."""
    replies = [
        plain("local", "no_record"),
        plain("regional", "timeout"),
        hit("state"),
        hit("national", ("armed_and_dangerous",)),
    ]
    assert [r["network"] for r in render.display_order(replies)] == [
        "national",
        "state",
        "regional",
        "local",
    ]


def test_urgent_flag_from_daemon_or_derived_from_caveats() -> None:
    """The daemon's urgent flag counts; without it officer-safety caveats decide."""
    assert render.is_urgent(hit("x", ("violent",)))
    assert not render.is_urgent(hit("x", ("medical",)))
    assert render.is_urgent(hit("x", (), urgent=True))
    assert not render.is_urgent({**plain("x", "no_record"), "urgent": True})


# --------------------------------------------------------------------------- summary, exit


def test_summary_line_all_hits_matches_the_documented_example() -> None:
    """Four networks with one wanted_person each and a caveat give the documented line."""
    inq = inquiry([hit(n, ("armed_and_dangerous",)) for n in ALL], ALL)
    assert render.summary_line(inq, "DOE, JOHN A") == (
        "DOE, JOHN A: HIT at local, regional, state, national (4 wanted_person); "
        "caveats: armed_and_dangerous"
    )
    assert render.inquiry_exit_code(inq) == 1


def test_summary_line_mixes_hits_clear_failed_and_pending() -> None:
    """Every network is accounted for: hits, no record, failed with its status, pending."""
    inq = inquiry(
        [hit("state"), plain("local", "no_record"), plain("national", "unavailable")],
        ALL,
        complete=False,
    )
    assert render.summary_line(inq, "DOE, JOHN A") == (
        "DOE, JOHN A: HIT at state (1 wanted_person); no record at local; "
        "NO ANSWER from national (unavailable); STILL WAITING for regional"
    )
    assert render.inquiry_exit_code(inq) == 1  # a hit is a hit, whatever else is missing


def test_no_record_everywhere_is_exit_0_and_says_so() -> None:
    """Only a complete inquiry with no_record from every asked network is clear."""
    inq = inquiry([plain(n, "no_record") for n in ALL], ALL)
    assert render.summary_line(inq, "LIC/ABC123 LIS/MO") == (
        "LIC/ABC123 LIS/MO: NO RECORD at local, regional, state, national"
    )
    assert render.inquiry_exit_code(inq) == 0


@pytest.mark.parametrize("failed", ["error", "timeout", "unavailable"])
def test_no_hit_with_a_failed_network_is_exit_2_not_a_clear_check(failed: str) -> None:
    """A network that did not answer makes "no record" unsafe: exit 2 and said plainly."""
    inq = inquiry([plain("local", "no_record"), plain("state", failed)], ["local", "state"])
    assert render.inquiry_exit_code(inq) == 2
    assert render.summary_line(inq, "X") == (
        f"X: NO RECORD at local; NO ANSWER from state ({failed}); not a clear check"
    )


def test_incomplete_without_hit_is_exit_2() -> None:
    """A pending inquiry (no complete result within --wait) without hit exits 2."""
    inq = inquiry([plain("local", "no_record")], ["local", "state"], complete=False)
    assert render.inquiry_exit_code(inq) == 2
    assert render.inquiry_exit_code(inquiry([], [], complete=True)) == 2


def test_final_block_repeats_cautions_above_the_summary() -> None:
    """The closing block puts the caution banners on top of the summary line."""
    inq = inquiry([hit("local", ("medical", "violent")), plain("state", "no_record")], ALL[::2])
    lines = render.final_block(inq, "DOE, JOHN A").splitlines()
    assert lines[:2] == ["*** CAUTION: VIOLENT ***", "*** CAUTION: MEDICAL ***"]
    assert lines[2].startswith("DOE, JOHN A: HIT at local (1 wanted_person); caveats: ")


def test_render_inquiry_shows_hits_before_no_record() -> None:
    """The whole-inquiry view lists urgent hits first and ends with the summary."""
    inq = inquiry([plain("local", "no_record"), hit("state", ("armed_and_dangerous",))], ALL[:3:2])
    text = render.render_inquiry(inq, "DOE, JOHN A")
    assert text.index("=== state: HIT") < text.index("--- local: no record")
    assert text.splitlines()[-1].startswith("DOE, JOHN A: HIT at state")


@pytest.mark.parametrize(
    ("subject", "fields", "label"),
    [
        ("person", {"name": "DOE, JOHN A", "dob": "1980-01-01"}, "DOE, JOHN A"),
        ("vehicle", {"plate": "ABC123", "plate_state": "MO"}, "LIC/ABC123 LIS/MO"),
        ("registration", {"vin": "1HGCM82633A004352"}, "VIN/1HGCM82633A004352"),
        ("driver", {"oln": "D1234", "oln_state": "KS"}, "OLN/D1234 OLS/KS"),
        ("gun", {"serial": "G123"}, "SER/G123"),
        ("article", {"serial": "A1", "article_type": "TV"}, "SER/A1 TYP/TV"),
    ],
)
def test_subject_label(subject: str, fields: dict[str, str], label: str) -> None:
    """The summary names the subject by what identifies it."""
    assert render.subject_label(subject, fields) == label


# --------------------------------------------------------------------------- events


def test_render_teletype_event() -> None:
    """A teletype item shows seq, key, sender, destinations, priority, then the text."""
    item = {
        "id": "M1",
        "kind": "teletype",
        "key": "AM",
        "from": "MO0480000",
        "to": ["MO0380100"],
        "priority": "urgent",
        "text": "ATTN RECORDS\nPLEASE CALL",
        "received": "2026-11-29T16:22:10.25Z",
    }
    assert render.render_event("teletype", item, 7).splitlines() == [
        "#7 AM from MO0480000 to MO0380100 URGENT at 2026-11-29T16:22:10.25Z",
        "    | ATTN RECORDS",
        "    | PLEASE CALL",
    ]


def test_render_reply_and_complete_events() -> None:
    """A reply event names its inquiry; a completion event gives the summary line."""
    reply = {"inquiry": "INQ1", "late": False, **hit("local", ("armed_and_dangerous",))}
    lines = render.render_event("reply", reply, "3").splitlines()
    assert lines[:2] == ["#3 reply to inquiry INQ1", "*** CAUTION: ARMED AND DANGEROUS ***"]
    done = inquiry([plain("local", "no_record")], ["local"])
    assert render.render_event("inquiry_complete", done, 4).splitlines() == [
        "#4 inquiry INQ1 complete",
        "INQ1: NO RECORD at local",
    ]


def test_render_wrapped_and_unknown_events() -> None:
    """Items wrapped in 'item' are unwrapped; unknown kinds show their scalar fields."""
    wrapped = {"seq": 9, "kind": "teletype", "item": {"key": "YQ", "from": "KS0000000"}}
    assert render.render_event("teletype", wrapped, 9) == "#9 YQ from KS0000000"
    assert render.render_event("deadline", {"confirmation": "H1", "due": "soon"}, 2) == (
        "#2 DEADLINE confirmation=H1 due=soon"
    )
    assert render.render_event("odd", {"a": 1, "b": [1]}) == "odd a=1"


def test_table_aligns_columns() -> None:
    """Tables are left-aligned with two spaces between columns, no trailing blanks."""
    assert render.table(("A", "BB"), [("xyz", 1), ("q", "")]).splitlines() == [
        "A    BB",
        "xyz  1",
        "q",
    ]


# --------------------------------------------------------------------------- SSE parser

STREAM = (
    b": keep-alive comment\n"
    b"retry: 2000\n"
    b"id: 1\n"
    b"event: reply\n"
    b'data: {"inquiry": "INQ1",\n'
    b'data:  "network": "local"}\n'
    b"\n"
    b"event: teletype\r\n"
    b"data:no-space\r\n"
    b"\r\n"
    b"id: 3\r"
    b"data: cr only\r"
    b"\r"
    b"id: 4\n"
    b"event: lonely\n"  # no data: nothing dispatched, but the id stays
    b"\n"
    b"data\n"  # a field without colon: empty data
    b"\n"
    b"data: caf\xc3\xa9\n\n"
    b"data: unfinished"  # no blank line yet: not dispatched
)
EXPECTED = [
    SSEEvent("reply", '{"inquiry": "INQ1",\n "network": "local"}', "1"),
    SSEEvent("teletype", "no-space", "1"),
    SSEEvent("message", "cr only", "3"),
    SSEEvent("message", "", "4"),
    SSEEvent("message", "café", "4"),
]


def test_sse_parser_whole_stream() -> None:
    """Comments, retry, id persistence, multi-line data, CRLF/CR/LF ends, UTF-8 all parse."""
    parser = SSEParser()
    assert parser.feed(STREAM) == EXPECTED
    assert parser.last_event_id == "4"
    assert parser.retry == 2000


def test_sse_parser_byte_by_byte() -> None:
    """Feeding one byte at a time (split CR LF, split UTF-8) gives the same events."""
    parser = SSEParser()
    events = []
    for i in range(len(STREAM)):
        events += parser.feed(STREAM[i : i + 1])
    assert events == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_sse_parser_any_chunking(cuts: list[int]) -> None:
    """Wherever the stream is cut into reads, the events are identical."""
    points = sorted(set(cuts))
    parser = SSEParser()
    events = []
    start = 0
    for point in [*points, len(STREAM)]:
        events += parser.feed(STREAM[start:point])
        start = point
    assert events == EXPECTED


def test_sse_parser_bom_and_json() -> None:
    """A leading BOM is ignored; .json() decodes data and refuses non-JSON with SSEError."""
    parser = SSEParser()
    (event,) = parser.feed(b'\xef\xbb\xbfdata: {"a": 1}\n\n')
    assert event.json() == {"a": 1}
    with pytest.raises(SSEError):
        SSEEvent("x", "not json").json()


def test_sse_parser_refuses_unbounded_lines() -> None:
    """A line that never ends, or data that never dispatches, cannot grow without bound."""
    parser = SSEParser(max_line=100)
    with pytest.raises(SSEError):
        parser.feed(b"data: " + b"x" * 200)
    parser = SSEParser(max_line=100)
    with pytest.raises(SSEError):
        parser.feed(b"data: xxxxxxxxxx\n" * 20)
