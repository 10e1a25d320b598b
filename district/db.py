"""The district's SQLite database: stations, status transitions, telemetry, play log, daily reports, acks.

Everything a station reports carries an id; rows are keyed by (station, id), so a report delivered twice (a
resend after a lost PUBACK, a station that rebooted mid-send, two collectors) is stored once.

Uptime is derived from status transitions, not from telemetry: a station is online from its birth message
until its Will (or a clean offline). Transition times are the collector's receive time, except a birth
message whose own timestamp is plausible (a station's clock may be wrong, and a birth delivered late from a
persistent session should count from when it happened). The share of a window spent online is measured
from the first transition we know of: days before a station was installed do not count against it.

Stations are named `district/commune/station` (the `sid`), as in their topics.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from firmware.protocol.reports import DailyReport, PlayLog, StationIds, Status, Telemetry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stations (
    sid TEXT PRIMARY KEY, district TEXT NOT NULL, commune TEXT NOT NULL, station TEXT NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    state TEXT, state_since REAL, fw TEXT, boot_id TEXT, config_hash TEXT
);
CREATE TABLE IF NOT EXISTS transitions (
    n INTEGER PRIMARY KEY AUTOINCREMENT, sid TEXT NOT NULL, state TEXT NOT NULL, ts REAL NOT NULL,
    boot_id TEXT NOT NULL, received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_sid_ts ON transitions (sid, ts);
CREATE TABLE IF NOT EXISTS telemetry (
    sid TEXT NOT NULL, id TEXT NOT NULL, ts REAL NOT NULL, received REAL NOT NULL, state TEXT NOT NULL,
    detail TEXT NOT NULL, outbox_depth INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (sid, id)
);
CREATE INDEX IF NOT EXISTS telemetry_sid_ts ON telemetry (sid, ts);
CREATE TABLE IF NOT EXISTS playlog (
    sid TEXT NOT NULL, id TEXT NOT NULL, item_kind TEXT NOT NULL, ref TEXT NOT NULL, title TEXT NOT NULL,
    level TEXT NOT NULL, requested_start REAL NOT NULL, requested_end REAL, actual_start REAL, actual_end REAL,
    played_s REAL NOT NULL, requested_s REAL NOT NULL, result TEXT NOT NULL, reason TEXT NOT NULL,
    received REAL NOT NULL, PRIMARY KEY (sid, id)
);
CREATE INDEX IF NOT EXISTS playlog_sid_start ON playlog (sid, requested_start);
CREATE TABLE IF NOT EXISTS daily (
    sid TEXT NOT NULL, id TEXT NOT NULL, day TEXT NOT NULL, payload TEXT NOT NULL, received REAL NOT NULL,
    PRIMARY KEY (sid, id)
);
CREATE TABLE IF NOT EXISTS acks (
    sid TEXT NOT NULL, ref TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL,
    received REAL NOT NULL, PRIMARY KEY (sid, ref, state)
);
"""

PLAUSIBLE_SKEW_S = 300.0  # a birth timestamp newer than now + this is a wrong clock: use receive time


def _ts(dt: datetime | None) -> float | None:
    return None if dt is None else dt.timestamp()


@dataclass(frozen=True, slots=True)
class StationRow:
    sid: str
    district: str
    commune: str
    station: str
    state: str | None
    state_since: float | None
    first_seen: float
    last_seen: float
    fw: str | None


class DistrictDb:
    """Thread-safe (one connection, one lock): the collector writes from paho's thread."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise FileNotFoundError(f"district database {self.path} does not exist (run `loa-district collect`)")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing (collector) ---------------------------------------------------------------------------------

    def _touch(self, ids: StationIds, now: float) -> str:
        sid = f"{ids.district}/{ids.commune}/{ids.station}"
        self._db.execute(
            "INSERT INTO stations (sid, district, commune, station, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(sid) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen)",
            (sid, ids.district, ids.commune, ids.station, now, now),
        )
        return sid

    def add_status(self, ids: StationIds, status: Status, received: float) -> bool:
        """Record a transition if the state (or, for online, the boot) changed. True when recorded."""
        ts = received
        if status.state == "online" and status.ts is not None:
            claimed = status.ts.timestamp()
            if claimed <= received + PLAUSIBLE_SKEW_S:
                ts = claimed
        with self._lock, self._db:
            sid = self._touch(ids, received)
            state, boot = self._db.execute("SELECT state, boot_id FROM stations WHERE sid = ?", (sid,)).fetchone()
            if state == status.state and (status.state == "offline" or boot == status.boot_id):
                return False
            self._db.execute(
                "INSERT INTO transitions (sid, state, ts, boot_id, received) VALUES (?, ?, ?, ?, ?)",
                (sid, status.state, ts, status.boot_id, received),
            )
            self._db.execute(
                "UPDATE stations SET state = ?, state_since = ?, fw = COALESCE(NULLIF(?, ''), fw), boot_id = ?, "
                "config_hash = COALESCE(NULLIF(?, ''), config_hash) WHERE sid = ?",
                (status.state, ts, status.fw, status.boot_id, status.config_hash, sid),
            )
            return True

    def add_telemetry(self, ids: StationIds, t: Telemetry, received: float) -> bool:
        with self._lock, self._db:
            sid = self._touch(ids, received)
            cur = self._db.execute(
                "INSERT OR IGNORE INTO telemetry (sid, id, ts, received, state, detail, outbox_depth, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, t.id, t.ts.timestamp(), received, t.state, t.detail, t.outbox_depth, t.model_dump_json()),
            )
            return cur.rowcount == 1

    def add_playlog(self, ids: StationIds, e: PlayLog, received: float) -> bool:
        with self._lock, self._db:
            sid = self._touch(ids, received)
            cur = self._db.execute(
                "INSERT OR IGNORE INTO playlog (sid, id, item_kind, ref, title, level, requested_start, requested_end,"
                " actual_start, actual_end, played_s, requested_s, result, reason, received)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sid,
                    e.id,
                    e.item_kind,
                    e.ref,
                    e.title,
                    e.level,
                    e.requested_start.timestamp(),
                    _ts(e.requested_end),
                    _ts(e.actual_start),
                    _ts(e.actual_end),
                    e.played_s,
                    e.requested_s,
                    e.result,
                    e.reason,
                    received,
                ),
            )
            return cur.rowcount == 1

    def add_daily(self, ids: StationIds, d: DailyReport, received: float) -> bool:
        with self._lock, self._db:
            sid = self._touch(ids, received)
            cur = self._db.execute(
                "INSERT OR IGNORE INTO daily (sid, id, day, payload, received) VALUES (?, ?, ?, ?, ?)",
                (sid, d.id, d.day.isoformat(), d.model_dump_json(), received),
            )
            return cur.rowcount == 1

    def add_ack(self, ids: StationIds, ref: str, state: str, reason: str, at: float, received: float) -> bool:
        with self._lock, self._db:
            sid = self._touch(ids, received)
            cur = self._db.execute(
                "INSERT OR IGNORE INTO acks (sid, ref, state, reason, at, received) VALUES (?, ?, ?, ?, ?, ?)",
                (sid, ref, state, reason, at, received),
            )
            return cur.rowcount == 1

    # -- reading (status, report) -----------------------------------------------------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def stations(self, commune: str | None = None) -> list[StationRow]:
        sql = (
            "SELECT sid, district, commune, station, state, state_since, first_seen, last_seen, fw FROM stations"
        )
        params: tuple = ()
        if commune:
            sql += " WHERE commune = ?"
            params = (commune,)
        return [StationRow(*r) for r in self.query(sql + " ORDER BY district, commune, station", params)]

    def uptime(self, sid: str, lo: float, hi: float) -> float | None:
        """Share of [lo, hi) spent online (0..1), from the first known transition on; None: nothing known."""
        rows = self.query(
            "SELECT state, ts FROM ("
            " SELECT state, ts, n FROM transitions WHERE sid = ? AND ts < ? ORDER BY ts DESC, n DESC LIMIT 1)"
            " UNION ALL SELECT state, ts FROM transitions WHERE sid = ? AND ts >= ? AND ts < ?"
            " ORDER BY ts",
            (sid, lo, sid, lo, hi),
        )
        if not rows:
            return None
        start = max(lo, rows[0][1])
        if hi <= start:
            return None
        online = 0.0
        for (state, ts), nxt in zip(rows, [*rows[1:], (None, hi)], strict=True):
            a, b = max(ts, start), min(nxt[1], hi)
            if state == "online" and b > a:
                online += b - a
        return online / (hi - start)

    def last_played(self, sid: str) -> tuple | None:
        rows = self.query(
            "SELECT title, ref, COALESCE(actual_start, requested_start), result FROM playlog WHERE sid = ?"
            " AND result IN ('played', 'partial') ORDER BY COALESCE(actual_start, requested_start) DESC LIMIT 1",
            (sid,),
        )
        return rows[0] if rows else None

    def last_telemetry(self, sid: str) -> tuple | None:
        rows = self.query(
            "SELECT ts, state, detail, payload FROM telemetry WHERE sid = ? ORDER BY ts DESC LIMIT 1", (sid,)
        )
        if not rows:
            return None
        ts, state, detail, payload = rows[0]
        return ts, state, detail, json.loads(payload)

    def content_status(self, sid: str) -> tuple[int, int] | None:
        """(missing, failed) content files from the station's latest telemetry that carried them (the ones in
        between carry only changes), None when it never reported them."""
        rows = self.query(
            "SELECT json_extract(payload, '$.content_missing'), COALESCE(json_extract(payload, '$.content_failed'), 0)"
            " FROM telemetry WHERE sid = ? AND json_extract(payload, '$.content_missing') IS NOT NULL"
            " ORDER BY ts DESC LIMIT 1", (sid,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def failures_since(self, sid: str, since: float) -> int:
        return self.query(
            "SELECT COUNT(*) FROM playlog WHERE sid = ? AND result = 'failed' AND requested_start >= ?", (sid, since)
        )[0][0]

    def counts(self) -> dict[str, int]:
        return {
            t: self.query(f"SELECT COUNT(*) FROM {t}")[0][0]
            for t in ("stations", "transitions", "telemetry", "playlog", "daily", "acks")
        }
