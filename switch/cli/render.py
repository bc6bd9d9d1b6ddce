"""Human-readable rendering of the API's JSON for switchctl (pure functions, no I/O).

Officer safety decides the layout: a caution is the first thing an operator reads, hits
come before no-record answers, and a network that did not answer is said plainly,
because a "no record" from three networks out of four is not a clear check.

Everything shown comes from the daemon, which relays what networks sent: control
characters are replaced (:func:`clean`) so that a hostile reply cannot drive the
operator's terminal with escape sequences.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from switch.model import FIELD_CODES, OFFICER_SAFETY_CAVEATS

#: Reply statuses meaning the network gave no answer we can rely on.
FAILED_STATUSES: Final = frozenset({"error", "timeout", "unavailable"})

EXIT_CLEAR: Final = 0
EXIT_HIT: Final = 1
EXIT_ERROR: Final = 2

#: Warrant attributes worth a glance, in the order an operator reads them.
_WARRANT_ORDER: Final = (
    ("number", "WNO"),
    ("offense", "OFF"),
    ("issued", "DOW"),
    ("extradition", "EXL"),
    ("entering_ori", "ORI"),
    ("oca", "OCA"),
    ("nic", "NIC"),
    ("court", "CRT"),
)
#: Identification fields shown for a record, in this order (others follow, sorted).
_FIELD_ORDER: Final = (
    "name",
    "dob",
    "sex",
    "race",
    "oln",
    "oln_state",
    "plate",
    "plate_state",
    "plate_year",
    "vin",
    "serial",
    "make",
    "caliber",
    "article_type",
    "brand",
)
#: Gutter for verbatim text from a network or sender, so it cannot pass for our own lines.
TEXT_INDENT: Final = "    | "


def clean(value: object) -> str:
    """``value`` as one printable line: control characters become ``?``."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def clean_block(value: object) -> list[str]:
    """Verbatim multi-line text (CR LF, LF or CR) as printable lines."""
    text = "" if value is None else str(value)
    return [clean(line) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


def indent(lines: Iterable[str], prefix: str = TEXT_INDENT) -> list[str]:
    return [(prefix + line).rstrip() for line in lines]


def caution_banner(caveat: str) -> str:
    """``armed_and_dangerous`` -> ``*** CAUTION: ARMED AND DANGEROUS ***``."""
    return f"*** CAUTION: {clean(caveat).replace('_', ' ').upper()} ***"


def _dicts(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(item) for item in value if isinstance(item, str | int)]


def reply_caveats(reply: Mapping[str, Any]) -> list[str]:
    """The caveats of a reply's records, officer-safety ones first, no repeats."""
    seen: list[str] = []
    for record in _dicts(reply.get("records")):
        for caveat in _strings(record.get("caveats")):
            if caveat not in seen:
                seen.append(caveat)
    return sorted(seen, key=lambda c: c not in OFFICER_SAFETY_CAVEATS)


def is_urgent(reply: Mapping[str, Any]) -> bool:
    """A hit carrying an officer-safety caveat (the daemon's ``urgent`` flag, or derived)."""
    if reply.get("status") != "hit":
        return False
    if reply.get("urgent") is True:
        return True
    return any(c in OFFICER_SAFETY_CAVEATS for c in reply_caveats(reply))


def display_order(replies: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Urgent hits, then hits, then the rest (failures before no-record); stable."""

    def rank(reply: Mapping[str, Any]) -> int:
        status = reply.get("status")
        if status == "hit":
            return 0 if is_urgent(reply) else 1
        return 2 if status in FAILED_STATUSES else 3

    return sorted(replies, key=rank)


def _field_items(fields: Mapping[str, Any]) -> list[str]:
    names = [n for n in _FIELD_ORDER if n in fields]
    names += sorted(n for n in fields if n not in _FIELD_ORDER)
    out = []
    for name in names:
        value = fields[name]
        if value in (None, ""):
            continue
        code = FIELD_CODES.get(name, clean(name).upper())
        out.append(f"{code}/{clean(value)}")
    return out


def render_record(record: Mapping[str, Any]) -> list[str]:
    """One record: its file, key warrant data, identification fields (without text)."""
    lines = [f"  {clean(record.get('file', 'record')).replace('_', ' ').upper()}"]
    warrant = record.get("warrant")
    if isinstance(warrant, Mapping):
        items = [
            f"{code}/{clean(warrant[key])}"
            for key, code in _WARRANT_ORDER
            if warrant.get(key) not in (None, "")
        ]
        if items:
            lines.append("    " + " ".join(items))
    fields = record.get("fields")
    if isinstance(fields, Mapping):
        items = _field_items(fields)
        if items:
            lines.append("    " + " ".join(items))
    return lines


def _status_words(status: str) -> str:
    return {
        "hit": "HIT",
        "no_record": "no record",
        "error": "ERROR - network answered with an error",
        "timeout": "TIMEOUT - no answer in time",
        "unavailable": "UNAVAILABLE - link down, not asked",
    }.get(status, clean(status).upper() or "?")


def render_reply(reply: Mapping[str, Any], *, prefix: str = "") -> str:
    """One network's answer: cautions on top, network, file, warrant data, verbatim text.

    A hit record opens with its caveats as banners (``*** CAUTION: ... ***``); a
    network that failed to answer is flagged ``!!!`` so it cannot be mistaken for a
    clear answer.
    """
    network = clean(reply.get("network", "?"))
    status = str(reply.get("status", "?"))
    records = _dicts(reply.get("records"))
    late = " (late)" if reply.get("late") else ""
    lines: list[str] = []
    if status == "hit":
        lines += [caution_banner(c) for c in reply_caveats(reply)]
        count = f"{len(records)} record{'s' if len(records) != 1 else ''}"
        lines.append(f"{prefix}=== {network}: HIT, {count}{late} ===")
        for record in records:
            lines += render_record(record)
    elif status in FAILED_STATUSES:
        lines.append(f"{prefix}!!! {network}: {_status_words(status)}{late}")
    else:
        lines.append(f"{prefix}--- {network}: {_status_words(status)}{late}")
    text = reply.get("text")
    if text:
        lines += indent(clean_block(text))
    return "\n".join(lines)


def subject_label(subject: str, fields: Mapping[str, str]) -> str:
    """What the summary line names: the person's name, the plate, the serial..."""
    if subject in ("person", "driver") and fields.get("name"):
        return clean(fields["name"])
    if subject in ("vehicle", "registration"):
        if fields.get("plate"):
            return f"LIC/{clean(fields['plate'])} LIS/{clean(fields.get('plate_state', ''))}"
        if fields.get("vin"):
            return f"VIN/{clean(fields['vin'])}"
    if subject == "driver" and fields.get("oln"):
        return f"OLN/{clean(fields['oln'])} OLS/{clean(fields.get('oln_state', ''))}"
    if subject == "person" and fields.get("oln"):
        return f"OLN/{clean(fields['oln'])}"
    if fields.get("serial"):
        extra = f" TYP/{clean(fields['article_type'])}" if fields.get("article_type") else ""
        return f"SER/{clean(fields['serial'])}{extra}"
    return subject


def _join(items: Sequence[str]) -> str:
    return ", ".join(items)


def summary_line(inquiry: Mapping[str, Any], label: str) -> str:
    """One line: hits by network and file, caveats, then no-record, failed and pending.

    e.g. ``DOE, JOHN A: HIT at local, state (2 wanted_person); caveats:
    armed_and_dangerous; no record at regional; NO ANSWER from national (timeout)``.
    """
    networks = _strings(inquiry.get("networks"))
    replies = {str(r.get("network")): r for r in _dicts(inquiry.get("replies"))}
    order = networks + [n for n in replies if n not in networks]
    hit_nets = [n for n in order if replies.get(n, {}).get("status") == "hit"]
    clear_nets = [n for n in order if replies.get(n, {}).get("status") == "no_record"]
    failed = [
        f"{n} ({clean(replies[n].get('status'))})"
        for n in order
        if replies.get(n, {}).get("status") in FAILED_STATUSES
    ]
    pending = [n for n in order if n not in replies]
    summary = inquiry.get("summary") if isinstance(inquiry.get("summary"), Mapping) else {}
    assert isinstance(summary, Mapping)
    files: dict[str, int] = {}
    for hit in _dicts(summary.get("hits")):
        count = hit.get("count", 1)
        files[str(hit.get("file"))] = files.get(str(hit.get("file")), 0) + (
            count if isinstance(count, int) else 1
        )
    if hit_nets and not files:  # no summary (a pending state): count from the replies
        for n in hit_nets:
            for record in _dicts(replies[n].get("records")):
                files[str(record.get("file"))] = files.get(str(record.get("file")), 0) + 1
    caveats = _strings(summary.get("caveats"))
    if not caveats:
        for n in hit_nets:
            caveats += [c for c in reply_caveats(replies[n]) if c not in caveats]
    parts: list[str] = []
    if hit_nets:
        counted = _join([f"{c} {clean(f)}" for f, c in files.items()])
        parts.append(f"HIT at {_join(hit_nets)} ({counted})")
        if caveats:
            parts.append(f"caveats: {_join([clean(c) for c in caveats])}")
        if clear_nets:
            parts.append(f"no record at {_join(clear_nets)}")
    elif clear_nets:
        parts.append(f"NO RECORD at {_join(clear_nets)}")
    if failed:
        parts.append(f"NO ANSWER from {_join(failed)}")
    if pending:
        parts.append(f"STILL WAITING for {_join(pending)}")
    if not hit_nets and (failed or pending):
        parts.append("not a clear check")
    if not parts:
        parts.append("no network was asked")
    return f"{clean(label)}: " + "; ".join(parts)


def inquiry_exit_code(inquiry: Mapping[str, Any]) -> int:
    """0 every asked network answered no record; 1 any hit; 2 otherwise.

    A hit wins over everything: it is definite and it is what the officer must act on,
    even if another network has not answered. Without a hit, any network that failed
    to answer (error, timeout, unavailable) or is still pending makes the result 2,
    because "no record" would then be unsafe to act on.
    """
    replies = _dicts(inquiry.get("replies"))
    statuses = [r.get("status") for r in replies]
    if "hit" in statuses:
        return EXIT_HIT
    answered = {str(r.get("network")) for r in replies}
    networks = _strings(inquiry.get("networks"))
    if (
        inquiry.get("status") != "complete"
        or not replies
        or any(s != "no_record" for s in statuses)
        or any(n not in answered for n in networks)
    ):
        return EXIT_ERROR
    return EXIT_CLEAR


def render_inquiry(inquiry: Mapping[str, Any], label: str) -> str:
    """A whole inquiry at once: cautions, replies in display order, summary line last."""
    replies = display_order(_dicts(inquiry.get("replies")))
    blocks = [render_reply(r) for r in replies]
    blocks.append(final_block(inquiry, label))
    return "\n".join(blocks)


def final_block(inquiry: Mapping[str, Any], label: str) -> str:
    """The closing lines of a query: the caution banners again, then the summary."""
    summary = inquiry.get("summary") if isinstance(inquiry.get("summary"), Mapping) else {}
    assert isinstance(summary, Mapping)
    caveats = _strings(summary.get("caveats"))
    if not caveats:
        for reply in _dicts(inquiry.get("replies")):
            if reply.get("status") == "hit":
                caveats += [c for c in reply_caveats(reply) if c not in caveats]
    caveats.sort(key=lambda c: c not in OFFICER_SAFETY_CAVEATS)
    lines = [caution_banner(c) for c in caveats]
    lines.append(summary_line(inquiry, label))
    return "\n".join(lines)


# --------------------------------------------------------------------------- mailbox


def item_payload(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """A mailbox item's content, whether flat or wrapped in ``item``/``data``."""
    for key in ("item", "data"):
        inner = item.get(key)
        if isinstance(inner, Mapping):
            return inner
    return item


def _scalars(item: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    skipped = set(skip)
    return " ".join(
        f"{clean(k)}={clean(v)}"
        for k, v in item.items()
        if k not in skipped and isinstance(v, str | int | float | bool) and v not in ("", None)
    )


def _teletype(kind: str, body: Mapping[str, Any], head: str) -> list[str]:
    key = clean(body.get("key") or kind)
    to = _join([clean(t) for t in _strings(body.get("to"))])
    line = f"{head}{key} from {clean(body.get('from', '?'))}"
    if to:
        line += f" to {to}"
    if body.get("priority") == "urgent":
        line += " URGENT"
    if body.get("received"):
        line += f" at {clean(body['received'])}"
    lines = [line]
    fields = body.get("fields")
    if isinstance(fields, Mapping) and fields:
        lines.append("    " + " ".join(_field_items(fields)))
    if body.get("text"):
        lines += indent(clean_block(body["text"]))
    return lines


def render_event(kind: str, item: Mapping[str, Any], seq: object = None) -> str:
    """A mailbox item or SSE event for ``watch`` and ``inbox``: one header line, then body."""
    head = f"#{clean(seq)} " if seq not in (None, "") else ""
    body = item_payload(item)
    if kind == "reply":
        inquiry = clean(body.get("inquiry", "?"))
        return f"{head}reply to inquiry {inquiry}\n" + render_reply(body)
    if kind == "inquiry_complete":
        return f"{head}inquiry {clean(body.get('id', '?'))} complete\n" + final_block(
            body, str(body.get("id", "inquiry"))
        )
    if kind in ("teletype", "hit_confirmation"):
        return "\n".join(_teletype(kind, body, head))
    if kind == "deadline":
        rest = _scalars(body, skip=("kind",))
        return f"{head}DEADLINE {rest}".rstrip()
    if kind == "delivery":
        rest = _scalars(body, skip=("kind",))
        return f"{head}delivery {rest}".rstrip()
    return f"{head}{clean(kind)} {_scalars(body, skip=('kind',))}".rstrip()


# --------------------------------------------------------------------------- tables


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain left-aligned table, two spaces between columns."""
    cells = [list(header)] + [[clean(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def short(text: object, width: int = 40) -> str:
    """The first line of ``text``, cut to ``width`` characters."""
    first = clean_block(text)[0] if text else ""
    return first if len(first) <= width else first[: width - 3] + "..."


def render_routes(routes: Iterable[Mapping[str, Any]]) -> list[str]:
    """A message's routes, one line each; an unroutable one says where it went."""
    lines = []
    for route in routes:
        network = route.get("network")
        where = clean(network) if network else "UNROUTABLE"
        line = f"  {clean(route.get('dest', '?'))} -> {where} ({clean(route.get('state', '?'))})"
        if route.get("updated"):
            line += f" {clean(route['updated'])}"
        lines.append(line)
    return lines


def render_intercept(item: Mapping[str, Any]) -> str:
    """One intercept queue item in full."""
    message = item.get("message") if isinstance(item.get("message"), Mapping) else {}
    assert isinstance(message, Mapping)
    lines = [
        f"intercept {clean(item.get('id', '?'))}: {clean(item.get('reason', '?'))}",
        f"  locked by: {clean(item.get('locked_by')) if item.get('locked_by') else '-'}",
    ]
    if message:
        lines += _teletype("message", message, "  ")
    return "\n".join(lines)
