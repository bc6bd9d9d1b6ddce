"""Model -> JSON shapes of the client API (DESIGN §9), in one place.

The API, the mailbox, the audit and ``switchctl --json`` all show replies and records
the same way; a change of shape happens here or nowhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from switch.model import AdminMessage, Record, Reply
from switch.routing.inquiries import InquiryProgress, display_order, is_urgent


def record_json(record: Record) -> dict[str, Any]:
    return {
        "file": record.file,
        "fields": dict(record.fields),
        "caveats": list(record.caveats),
        "warrant": dataclasses.asdict(record.warrant) if record.warrant else None,
    }


def reply_json(reply: Reply) -> dict[str, Any]:
    return {
        "network": reply.network,
        "status": reply.status,
        "records": [record_json(r) for r in reply.records],
        "text": reply.text,
        "urgent": is_urgent(reply),
    }


def inquiry_json(progress: InquiryProgress) -> dict[str, Any]:
    """The GET /v1/inquiries/{id} shape: answered networks only while pending."""
    return {
        "id": progress.id,
        "status": "complete" if progress.complete else "pending",
        "networks": list(progress.networks),
        "replies": [reply_json(r) for r in display_order(progress.replies.values())],
        "summary": progress.summary(),
    }


def admin_json(message: AdminMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "key": message.key,
        "from": message.from_ori,
        "to": list(message.to),
        "text": message.text,
        "priority": message.priority,
        "fields": dict(message.fields),
        "in_reply_to": message.in_reply_to,
    }


def record_ids(records: Iterable[Record]) -> list[str]:
    """What the audit keeps of a reply's records: file and its identifying numbers."""
    out = []
    for r in records:
        ident = (r.warrant.nic or r.warrant.number) if r.warrant else r.fields.get("nic", "")
        out.append(f"{r.file}:{ident}" if ident else r.file)
    return out
