"""The station's store-and-forward outbox: everything that must reach the district is written here first.

SQLite in WAL mode with `synchronous=FULL`. Why FULL and not NORMAL: in WAL mode NORMAL syncs the WAL only at
checkpoints, so a commit is safe against a crash of *our process* but the last commits can vanish on a *power
cut* (the database stays consistent, it just rolls back to an older state). Our promise is "a report written
to the outbox reaches the district", and commune stations lose mains power routinely, so each commit must be
on the card before `put()` returns: FULL fsyncs the WAL on every commit. The price is one fsync per report:
a dozen play-log entries and 288 telemetry rows a day, nothing for an SD card. Deletions after PUBACK are
cheap to lose (the district deduplicates by id), so they are batched by the sender.

Rows are sent in `seq` order (AUTOINCREMENT: never reused, so order survives deletes and reboots) and removed
only after the broker acknowledged them. The outbox is bounded (default 50 MB of payload): when a new row
would exceed the bound, the oldest telemetry goes first; play-log entries and daily reports are dropped only
when nothing else is left, and every drop is counted in a persisted counter that telemetry reports.

Thread-safe: one connection guarded by a lock (the runtime thread puts, the sender thread takes and removes).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DROPPABLE_KINDS = frozenset({"telemetry"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    droppable INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_droppable ON outbox (droppable, seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Item:
    seq: int
    id: str
    kind: str
    topic: str
    payload: bytes


class OutboxError(RuntimeError):
    pass


class Outbox:
    """`put()` before sending, `peek()` in order, `remove()` after PUBACK. Survives kill -9 and power cuts."""

    def __init__(self, path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES):
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            (self._bytes,) = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        except sqlite3.DatabaseError as e:
            raise OutboxError(f"outbox {self.path}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing -----------------------------------------------------------------------------------------------

    def put(self, report_id: str, kind: str, topic: str, payload: bytes) -> bool:
        """Store a report durably (fsynced when this returns). False when that id is already stored."""
        payload = bytes(payload)
        size = len(payload)
        if size > self.max_bytes:
            raise OutboxError(f"report {report_id} of {size} bytes exceeds the outbox bound {self.max_bytes}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                dropped = self._make_room(size)
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO outbox (id, kind, topic, payload, droppable) VALUES (?, ?, ?, ?, ?)",
                    (report_id, kind, topic, payload, int(kind in DROPPABLE_KINDS)),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            inserted = cur.rowcount == 1
            self._bytes -= dropped
            if inserted:
                self._bytes += size
            return inserted

    def _rollback(self) -> None:
        """Undo the open transaction; a failing ROLLBACK (disk full) must not hide the original error."""
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("outbox %s: rollback failed", self.path)

    def _make_room(self, size: int) -> int:
        """Delete oldest rows (telemetry first) until `size` more bytes fit. Inside the caller's transaction."""
        freed = 0
        while self._bytes - freed + size > self.max_bytes:
            row = self._db.execute(
                "SELECT seq, id, kind, LENGTH(payload), droppable FROM outbox ORDER BY droppable DESC, seq LIMIT 1"
            ).fetchone()
            if row is None:
                break
            seq, rid, kind, length, droppable = row
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            counter = "dropped_telemetry" if droppable else "dropped_reports"
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1",
                (counter,),
            )
            if droppable:
                log.info("outbox full (%d bytes): dropped telemetry %s", self.max_bytes, rid)
            else:
                log.error("outbox full (%d bytes) with no telemetry left: dropped %s %s", self.max_bytes, kind, rid)
            freed += length
        return freed

    # -- reading and removing ----------------------------------------------------------------------------------

    def peek(self, limit: int, *, skip: frozenset[int] | set[int] = frozenset()) -> list[Item]:
        """The oldest `limit` items in order, leaving out the seqs in `skip` (those already in flight)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, kind, topic, payload FROM outbox ORDER BY seq LIMIT ?", (limit + len(skip),)
            ).fetchall()
        items = [Item(seq, rid, kind, topic, bytes(payload)) for seq, rid, kind, topic, payload in rows]
        return [i for i in items if i.seq not in skip][:limit]

    def remove(self, seqs: list[int] | set[int]) -> None:
        """Forget acknowledged items (one transaction for a batch)."""
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for seq in seqs:
                    row = self._db.execute("DELETE FROM outbox WHERE seq = ? RETURNING LENGTH(payload)", (seq,))
                    got = row.fetchone()
                    if got:
                        self._bytes -= got[0]
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    # -- figures -------------------------------------------------------------------------------------------------

    def depth(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    @property
    def bytes(self) -> int:
        return self._bytes

    def counters(self) -> dict[str, int]:
        """Persisted drop counters: `dropped_telemetry`, `dropped_reports` (0 when never hit)."""
        with self._lock:
            rows = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return {"dropped_telemetry": rows.get("dropped_telemetry", 0), "dropped_reports": rows.get("dropped_reports", 0)}

    def ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM outbox ORDER BY seq")]
