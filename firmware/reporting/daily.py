"""The daily report: built at local midnight from the day's play-log entries, faults and link history.

What a day needs is kept in a small SQLite file beside the outbox (WAL, synchronous=NORMAL: losing the last
minute of link history on a power cut only shifts online % a little, and play-log entries are safe in the
outbox anyway), so a reboot in the afternoon does not forget the morning. Link history is stored as sessions
(start, end) whose end is advanced on every telemetry tick: after a crash, the session ends at the last tick,
so time spent dead is not counted online.

Days are local (the station's timezone, from the clock's wall time). A day is reported once: its id is
`{station}-daily-{day}`, so a report rebuilt after a reboot replaces nothing and duplicates nothing.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path

from firmware.protocol.reports import DailyReport, PlayLog

log = logging.getLogger(__name__)

KEEP_DAYS = 40

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (day TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (day, id));
CREATE TABLE IF NOT EXISTS faults (day TEXT NOT NULL, ts REAL NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (day TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (day, id));
CREATE TABLE IF NOT EXISTS sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, start REAL NOT NULL, end REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def day_bounds(day: date, tz: tzinfo) -> tuple[float, float]:
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    return start.timestamp(), end.timestamp()


def next_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), time(0), now.tzinfo)


class DayLog:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._session: int | None = None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- recording -------------------------------------------------------------------------------------------

    def add_entry(self, entry: PlayLog, tz: tzinfo) -> None:
        day = entry.requested_start.astimezone(tz).date().isoformat()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO entries (day, id, data) VALUES (?, ?, ?)", (day, entry.id, entry.model_dump_json())
            )

    def add_alert(self, alert_id: str, now: datetime) -> None:
        """A verified alert was received (acked `received`), whether or not it is ever played: test alerts,
        and ones cancelled, updated or expired before their turn, count as received too."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO alerts (day, id) VALUES (?, ?)", (now.date().isoformat(), alert_id))

    def add_fault(self, now: datetime, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO faults (day, ts, reason) VALUES (?, ?, ?)", (now.date().isoformat(), now.timestamp(), reason)
            )

    def link_up(self, now: datetime) -> None:
        with self._lock:
            if self._session is None:
                ts = now.timestamp()
                cur = self._db.execute("INSERT INTO sessions (start, end) VALUES (?, ?)", (ts, ts))
                self._session = cur.lastrowid

    def link_tick(self, now: datetime) -> None:
        with self._lock:
            if self._session is not None:
                self._db.execute("UPDATE sessions SET end = ? WHERE id = ?", (now.timestamp(), self._session))

    def link_down(self, now: datetime) -> None:
        self.link_tick(now)
        with self._lock:
            self._session = None

    # -- reporting -------------------------------------------------------------------------------------------

    def last_reported(self) -> date | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'last_reported'").fetchone()
        return date.fromisoformat(row[0]) if row else None

    def mark_reported(self, day: date) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('last_reported', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (day.isoformat(),),
            )
            cutoff = day - timedelta(days=KEEP_DAYS)
            self._db.execute("DELETE FROM entries WHERE day < ?", (cutoff.isoformat(),))
            self._db.execute("DELETE FROM faults WHERE day < ?", (cutoff.isoformat(),))
            self._db.execute("DELETE FROM alerts WHERE day < ?", (cutoff.isoformat(),))
            lo, _ = day_bounds(cutoff, UTC)
            self._db.execute("DELETE FROM sessions WHERE end < ?", (lo,))

    def days_due(self, today: date) -> list[date]:
        """Days before `today` not reported yet (none before the first `mark_reported`)."""
        last = self.last_reported()
        if last is None:
            return []
        start = max(last + timedelta(days=1), today - timedelta(days=KEEP_DAYS))
        return [start + timedelta(days=i) for i in range((today - start).days)]

    def build(self, day: date, tz: tzinfo, station: str) -> DailyReport:
        with self._lock:
            entries = [
                PlayLog.model_validate_json(r[0])
                for r in self._db.execute("SELECT data FROM entries WHERE day = ?", (day.isoformat(),))
            ]
            faults = self._db.execute("SELECT COUNT(*) FROM faults WHERE day = ?", (day.isoformat(),)).fetchone()[0]
            received = {r[0] for r in self._db.execute("SELECT id FROM alerts WHERE day = ?", (day.isoformat(),))}
            lo, hi = day_bounds(day, tz)
            sessions = self._db.execute(
                "SELECT start, end FROM sessions WHERE end > ? AND start < ?", (lo, hi)
            ).fetchall()
        online = sum(max(0.0, min(end, hi) - max(start, lo)) for start, end in sessions)
        programmes = [e for e in entries if e.item_kind == "programme"]
        alerts = [e for e in entries if e.item_kind == "alert"]
        return DailyReport(
            id=f"{station}-daily-{day.isoformat()}",
            station=station,
            day=day,
            online_pct=round(min(100.0, 100.0 * online / (hi - lo)), 2),
            minutes_played=round(sum(e.played_s for e in entries) / 60, 2),
            minutes_requested=round(sum(e.requested_s for e in entries) / 60, 2),
            programmes_played=sum(e.result in ("played", "partial") for e in programmes),
            programmes_missed=sum(e.result not in ("played", "partial") for e in programmes),
            by_level=dict(Counter(e.level for e in entries)),
            alerts_received=len(received | {e.ref for e in alerts}),
            alerts_played=sum(e.result in ("played", "partial") for e in alerts),
            faults=faults + sum(e.result == "failed" for e in entries),
        )

