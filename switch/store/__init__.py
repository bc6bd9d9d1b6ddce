"""Durable storage (DESIGN §7): the :class:`Store` seam and its SQLite implementation."""

from .interface import (
    AUDIT_INDEX_COLUMNS,
    AuditAppend,
    AuditHead,
    AuditQuery,
    AuditRow,
    InquiryRecord,
    MailboxItem,
    OperatorLock,
    PurgeCounts,
    Store,
    StoreError,
    TeletypeItem,
)
from .sqlite import SQLiteStore

__all__ = [
    "AUDIT_INDEX_COLUMNS",
    "AuditAppend",
    "AuditHead",
    "AuditQuery",
    "AuditRow",
    "InquiryRecord",
    "MailboxItem",
    "OperatorLock",
    "PurgeCounts",
    "SQLiteStore",
    "Store",
    "StoreError",
    "TeletypeItem",
]
