"""The SQLite schema as an ordered list of forward migrations.

``PRAGMA user_version`` holds the number of migrations applied. At start-up the writer
applies the missing ones, each in its own transaction together with the version bump, so
a crash mid-migration leaves the previous version intact. Migrations are append-only:
never edit one that has shipped, add the next.
"""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the tables of DESIGN §7
    (
        """CREATE TABLE teletype_queue (
            qseq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- FIFO order
            id           TEXT NOT NULL UNIQUE,               -- route wire id
            link         TEXT NOT NULL,
            priority     INTEGER NOT NULL,                   -- 0 urgent, 1 routine
            state        TEXT NOT NULL,
            attempts     INTEGER NOT NULL DEFAULT 0,
            next_attempt REAL NOT NULL,
            expires      REAL NOT NULL,
            created      REAL NOT NULL,
            updated      REAL NOT NULL,
            message      TEXT NOT NULL
        )""",
        "CREATE INDEX teletype_send ON teletype_queue (link, state, priority, qseq)",
        "CREATE INDEX teletype_expires ON teletype_queue (state, expires)",
        """CREATE TABLE mailbox (
            seq      INTEGER PRIMARY KEY AUTOINCREMENT,
            terminal TEXT NOT NULL,
            kind     TEXT NOT NULL,
            item     TEXT NOT NULL,
            created  REAL NOT NULL,
            acked    REAL
        )""",
        "CREATE INDEX mailbox_terminal ON mailbox (terminal, seq)",
        "CREATE INDEX mailbox_acked ON mailbox (acked) WHERE acked IS NOT NULL",
        """CREATE TABLE inquiries (
            id       TEXT PRIMARY KEY,
            terminal TEXT NOT NULL,
            created  REAL NOT NULL,
            updated  REAL NOT NULL,
            state    TEXT NOT NULL
        )""",
        "CREATE INDEX inquiries_created ON inquiries (created)",
        """CREATE TABLE duplicates (
            link       TEXT NOT NULL,
            id         TEXT NOT NULL,
            first_seen REAL NOT NULL,
            PRIMARY KEY (link, id)
        ) WITHOUT ROWID""",
        "CREATE INDEX duplicates_seen ON duplicates (first_seen)",
        """CREATE TABLE operator_locks (
            operator      TEXT PRIMARY KEY,
            failures      INTEGER NOT NULL,
            first_failure REAL,
            locked_until  REAL
        )""",
        """CREATE TABLE audit_log (
            seq      INTEGER PRIMARY KEY,
            ts       TEXT NOT NULL,
            record   TEXT NOT NULL,
            hash     BLOB NOT NULL,
            terminal TEXT,
            operator TEXT,
            ori      TEXT,
            name     TEXT,
            plate    TEXT,
            vin      TEXT,
            msg_id   TEXT,
            ref_id   TEXT
        )""",
        "CREATE INDEX audit_ts ON audit_log (ts)",
        "CREATE INDEX audit_terminal ON audit_log (terminal, ts) WHERE terminal IS NOT NULL",
        "CREATE INDEX audit_operator ON audit_log (operator, ts) WHERE operator IS NOT NULL",
        "CREATE INDEX audit_ori ON audit_log (ori, ts) WHERE ori IS NOT NULL",
        "CREATE INDEX audit_name ON audit_log (name) WHERE name IS NOT NULL",
        "CREATE INDEX audit_plate ON audit_log (plate) WHERE plate IS NOT NULL",
        "CREATE INDEX audit_vin ON audit_log (vin) WHERE vin IS NOT NULL",
        "CREATE INDEX audit_msg_id ON audit_log (msg_id) WHERE msg_id IS NOT NULL",
        "CREATE INDEX audit_ref_id ON audit_log (ref_id) WHERE ref_id IS NOT NULL",
        # The signed anchor retention leaves: one row, the newest purged link.
        """CREATE TABLE audit_anchor (
            id   INTEGER PRIMARY KEY CHECK (id = 1),
            seq  INTEGER NOT NULL,
            line TEXT NOT NULL
        )""",
    ),
    # 2: teletype messages, their routes, the intercept queue and hit confirmations
    # (switch.teletype_store): what the API shows on top of teletype_queue.
    (
        """CREATE TABLE tt_message (
            id          TEXT PRIMARY KEY,
            terminal    TEXT NOT NULL,
            operator    TEXT,
            key         TEXT NOT NULL,
            from_ori    TEXT NOT NULL,
            dests       TEXT NOT NULL,
            text        TEXT NOT NULL,
            priority    TEXT NOT NULL,
            fields      TEXT NOT NULL,
            in_reply_to TEXT,
            created     REAL NOT NULL
        )""",
        "CREATE INDEX tt_message_created ON tt_message (created)",
        """CREATE TABLE tt_route (
            message_id  TEXT NOT NULL REFERENCES tt_message(id) ON DELETE CASCADE,
            number      INTEGER NOT NULL,
            dest        TEXT NOT NULL,
            link        TEXT,
            state       TEXT NOT NULL,
            wire_id     TEXT NOT NULL UNIQUE,
            text        TEXT,
            attempts    INTEGER NOT NULL DEFAULT 0,
            updated     REAL NOT NULL,
            PRIMARY KEY (message_id, number)
        ) WITHOUT ROWID""",
        "CREATE INDEX tt_route_open ON tt_route (state) WHERE state IN ('queued', 'sent')",
        """CREATE TABLE tt_intercept (
            id           TEXT PRIMARY KEY,
            message_id   TEXT NOT NULL,
            number       INTEGER NOT NULL,
            reason       TEXT NOT NULL,
            detail       TEXT NOT NULL,
            created      REAL NOT NULL,
            locked_by    TEXT,
            lock_session TEXT,
            lock_expires REAL
        )""",
        "CREATE INDEX tt_intercept_created ON tt_intercept (created)",
        """CREATE TABLE hit_confirmation (
            id             TEXT PRIMARY KEY,
            direction      TEXT NOT NULL,
            urgency        TEXT NOT NULL,
            request_number INTEGER NOT NULL,
            sent_at        REAL NOT NULL,
            outcome        TEXT NOT NULL,
            terminals      TEXT NOT NULL,
            counterpart    TEXT NOT NULL,
            message_ids    TEXT NOT NULL,
            fields         TEXT NOT NULL,
            warned         INTEGER NOT NULL,
            overdue_noted  INTEGER NOT NULL,
            reply          TEXT,
            created        REAL NOT NULL,
            updated        REAL NOT NULL
        )""",
        "CREATE INDEX hit_confirmation_open ON hit_confirmation (outcome, created)",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)
