"""The console's own tables in the district database: staff accounts, the audit log, the alerts it sent or heard.

Created if missing, next to the collector's tables (same SQLite file, WAL mode, its own connection and lock;
the collector's schema is never altered). Acks are stored in the collector's `acks` table through
`DistrictDb.add_ack`, so acks seen by the console and by a collector end up in one place, deduplicated.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62})")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY, pw_hash TEXT NOT NULL, created REAL NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
    last_login REAL, role TEXT NOT NULL DEFAULT 'officer', communes TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS console_sessions (
    key TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL, expires REAL NOT NULL, created REAL NOT NULL,
    used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS console_audit (
    n INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, user TEXT NOT NULL, action TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '', scope TEXT NOT NULL DEFAULT '', alert_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '', ip TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS console_alerts (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, scope TEXT NOT NULL, headline TEXT NOT NULL, text TEXT NOT NULL,
    audio_url TEXT NOT NULL DEFAULT '', issued REAL NOT NULL, expires REAL NOT NULL, sent_by TEXT NOT NULL,
    expected TEXT NOT NULL DEFAULT '[]', cancelled_at REAL, cancel_id TEXT, cancelled_by TEXT,
    replaces TEXT, replaced_by TEXT
);
"""


# District roles: officer may send test, exercise and actual alerts; operator test and exercise only. Both may
# cancel any alert (stopping one must never wait for the right person to be on duty) and work for every commune.
# commune (cán bộ văn hóa xã / người vận hành đài): runs the programme of its own communes, sees their stations,
# and sends or cancels no district alert.
DISTRICT_ROLES = ("officer", "operator")
ROLES = (*DISTRICT_ROLES, "commune")
DEFAULT_ROLE = "operator"  # of a new account: sending actual alerts is granted, never assumed


def may_send(role: str | None, status: str) -> bool:
    return role == "officer" or (role == "operator" and status in ("test", "exercise"))


def check_communes(role: str, communes: list[str] | tuple[str, ...]) -> str | None:
    """What is wrong with giving `role` these communes ("district/commune" ids), or None."""
    if role == "commune" and not communes:
        return "a commune account needs at least one --commune DISTRICT/COMMUNE"
    if role != "commune" and communes:
        return f"a {role} account works for every commune: --commune is only for --role commune"
    for c in communes:
        parts = c.split("/")
        if len(parts) != 2 or not all(_ID.fullmatch(p) for p in parts):
            return f'"{c}" is not a commune: write DISTRICT/COMMUNE with ids, e.g. hoa-vang/hoa-bac'
    return None


@dataclass(frozen=True, slots=True)
class Account:
    """What an enabled account may do, read afresh on every request (a change applies at the next click)."""

    name: str
    role: str
    communes: tuple[str, ...] = ()  # "district/commune" ids; empty for district roles (all communes)

    @property
    def district_wide(self) -> bool:
        return self.role in DISTRICT_ROLES

    def may_manage(self, commune: str) -> bool:
        """May run the programme of (and see the stations of) commune "district/commune"."""
        return self.district_wide or commune in self.communes

    def may_see(self, sid: str) -> bool:
        """May see station "district/commune/station" (or any scope inside a managed commune)."""
        if self.district_wide:
            return True
        return any(sid == c or sid.startswith(c + "/") for c in self.communes)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    created: float
    disabled: bool
    last_login: float | None
    role: str
    communes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    n: int
    at: float
    user: str
    action: str
    status: str
    scope: str
    alert_id: str
    detail: str
    ip: str


@dataclass(frozen=True, slots=True)
class SentAlert:
    id: str
    status: str
    scope: str
    headline: str
    text: str
    audio_url: str
    issued: float
    expires: float
    sent_by: str
    expected: tuple[str, ...]
    cancelled_at: float | None  # ended: cancelled, or replaced by an update (then `replaced_by` is set)
    cancel_id: str | None
    cancelled_by: str | None
    replaces: str | None = None  # this alert is an update of that one
    replaced_by: str | None = None  # the update that replaced this one

    def active(self, now: float) -> bool:
        return self.cancelled_at is None and self.expires > now


class ConsoleStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        # Columns added since the first release; a database from before gets them here. Old accounts could all
        # send actual alerts and keep that right (taking it away silently could leave a district with nobody
        # able to warn at night).
        for table, column, ddl in (("console_users", "role", "TEXT NOT NULL DEFAULT 'officer'"),
                                   ("console_users", "communes", "TEXT NOT NULL DEFAULT '[]'"),
                                   ("console_alerts", "replaces", "TEXT"),
                                   ("console_alerts", "replaced_by", "TEXT")):
            if column not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _q(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _x(self, sql: str, params: tuple = ()) -> int:
        with self._lock, self._db:
            return self._db.execute(sql, params).rowcount

    # -- users -----------------------------------------------------------------------------------------------

    @staticmethod
    def _check_role(role: str, communes) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        problem = check_communes(role, communes)
        if problem:
            raise ValueError(problem)

    def add_user(self, name: str, pw_hash: str, role: str = DEFAULT_ROLE, communes: tuple[str, ...] = ()) -> bool:
        """False when the name is taken. ValueError for an unknown role or communes that don't fit it."""
        self._check_role(role, communes)
        try:
            self._x("INSERT INTO console_users (name, pw_hash, created, role, communes) VALUES (?, ?, ?, ?, ?)",
                    (name, pw_hash, time.time(), role, json.dumps(sorted(set(communes)))))
        except sqlite3.IntegrityError:
            return False
        return True

    def set_role(self, name: str, role: str, communes: tuple[str, ...] = ()) -> bool:
        """Role and communes change together (a district role has none). ValueError as for add_user."""
        self._check_role(role, communes)
        return self._x("UPDATE console_users SET role = ?, communes = ? WHERE name = ?",
                       (role, json.dumps(sorted(set(communes))), name)) == 1

    def role(self, name: str) -> str | None:
        """The role of an enabled account, else None."""
        a = self.account(name)
        return a.role if a else None

    def account(self, name: str) -> Account | None:
        """What an enabled account may do, else None (disabled or unknown)."""
        rows = self._q("SELECT role, communes FROM console_users WHERE name = ? AND disabled = 0", (name,))
        if not rows:
            return None
        role, communes = rows[0]
        return Account(name, role, tuple(json.loads(communes or "[]")))

    def set_password(self, name: str, pw_hash: str) -> bool:
        return self._x("UPDATE console_users SET pw_hash = ? WHERE name = ?", (pw_hash, name)) == 1

    def set_disabled(self, name: str, disabled: bool) -> bool:
        return self._x("UPDATE console_users SET disabled = ? WHERE name = ?", (int(disabled), name)) == 1

    def password_hash(self, name: str) -> str | None:
        """The hash of an enabled account, else None."""
        rows = self._q("SELECT pw_hash FROM console_users WHERE name = ? AND disabled = 0", (name,))
        return rows[0][0] if rows else None

    def is_enabled(self, name: str) -> bool:
        return bool(self._q("SELECT 1 FROM console_users WHERE name = ? AND disabled = 0", (name,)))

    def logged_in(self, name: str) -> None:
        self._x("UPDATE console_users SET last_login = ? WHERE name = ?", (time.time(), name))

    def users(self) -> list[User]:
        return [
            User(n, c, bool(d), ll, r, tuple(json.loads(cs or "[]")))
            for n, c, d, ll, r, cs in self._q(
                "SELECT name, created, disabled, last_login, role, communes FROM console_users ORDER BY name")
        ]

    # -- sessions (accounts.Sessions keeps them here by sha256 of the token) ---------------------------------

    def save_session(self, key: str, user: str, csrf: str, expires: float, created: float, used: float) -> None:
        self._x("INSERT OR REPLACE INTO console_sessions (key, user, csrf, expires, created, used)"
                " VALUES (?, ?, ?, ?, ?, ?)", (key, user, csrf, expires, created, used))

    def load_session(self, key: str) -> tuple[str, str, float, float, float] | None:
        rows = self._q("SELECT user, csrf, expires, created, used FROM console_sessions WHERE key = ?", (key,))
        return rows[0] if rows else None

    def touch_session(self, key: str, used: float) -> None:
        self._x("UPDATE console_sessions SET used = ? WHERE key = ?", (used, key))

    def delete_sessions(self, *, key: str | None = None, user: str | None = None, dead_at: float | None = None,
                        idle_s: float = 0.0) -> None:
        if key is not None:
            self._x("DELETE FROM console_sessions WHERE key = ?", (key,))
        if user is not None:
            self._x("DELETE FROM console_sessions WHERE user = ?", (user,))
        if dead_at is not None:
            self._x("DELETE FROM console_sessions WHERE expires <= ? OR used <= ?", (dead_at, dead_at - idle_s))

    # -- audit -----------------------------------------------------------------------------------------------

    def audit(self, user: str, action: str, *, status: str = "", scope: str = "", alert_id: str = "",
              detail: str = "", ip: str = "") -> None:
        self._x(
            "INSERT INTO console_audit (at, user, action, status, scope, alert_id, detail, ip)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), user, action, status, scope, alert_id, detail[:1000], ip),
        )

    def audit_log(self, limit: int = 200) -> list[AuditEntry]:
        return [AuditEntry(*r) for r in self._q(
            "SELECT n, at, user, action, status, scope, alert_id, detail, ip FROM console_audit"
            " ORDER BY n DESC LIMIT ?", (limit,))]

    # -- alerts sent from the console ------------------------------------------------------------------------

    def record_alert(self, *, id: str, status: str, scope: str, headline: str, text: str, audio_url: str,
                     issued: float, expires: float, sent_by: str, expected: list[str],
                     replaces: str | None = None) -> None:
        self._x(
            "INSERT INTO console_alerts (id, status, scope, headline, text, audio_url, issued, expires, sent_by,"
            " expected, replaces) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            # An alert already heard on the broker (sent_by ''): whoever records it as theirs is its sender.
            " ON CONFLICT(id) DO UPDATE SET sent_by = excluded.sent_by, expected = excluded.expected"
            " WHERE console_alerts.sent_by = ''",
            (id, status, scope, headline, text, audio_url, issued, expires, sent_by, json.dumps(expected), replaces),
        )

    def record_cancel(self, alert_id: str, cancel_id: str, user: str) -> None:
        self._x(
            "UPDATE console_alerts SET cancelled_at = ?, cancel_id = ?, cancelled_by = ? WHERE id = ?"
            " AND cancelled_at IS NULL",
            (time.time(), cancel_id, user, alert_id),
        )

    def record_replaced(self, alert_id: str, update_id: str, user: str) -> None:
        """`alert_id` was replaced by the update `update_id`: it has ended (no cancel button any more)."""
        self._x(
            "UPDATE console_alerts SET cancelled_at = ?, cancel_id = ?, cancelled_by = ?, replaced_by = ?"
            " WHERE id = ? AND cancelled_at IS NULL",
            (time.time(), update_id, user, update_id, alert_id),
        )

    _ALERT_COLS = ("id, status, scope, headline, text, audio_url, issued, expires, sent_by, expected, cancelled_at,"
                   " cancel_id, cancelled_by, replaces, replaced_by")

    @staticmethod
    def _alert(row: tuple) -> SentAlert:
        r = list(row)
        r[9] = tuple(json.loads(r[9]))
        return SentAlert(*r)

    def alert(self, alert_id: str) -> SentAlert | None:
        rows = self._q(f"SELECT {self._ALERT_COLS} FROM console_alerts WHERE id = ?", (alert_id,))
        return self._alert(rows[0]) if rows else None

    def alerts(self, limit: int = 50) -> list[SentAlert]:
        return [self._alert(r) for r in self._q(
            f"SELECT {self._ALERT_COLS} FROM console_alerts ORDER BY issued DESC LIMIT ?", (limit,))]
