"""`loa-district status`: which stations are online, since when, their uptime, what they last played.

    loa-district status --db district.sqlite [--commune hoa-bac]
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from district.db import DistrictDb
from firmware.cli_support import UsageError

DAY = 86400.0


def register(subparsers) -> None:
    p = subparsers.add_parser("status", help="table of stations: online/offline, uptime 24 h / 7 d / 30 d, last item")
    p.add_argument("--db", required=True, metavar="FILE", help="district SQLite database (from `collect`)")
    p.add_argument("--commune", help="only the stations of this commune")
    p.add_argument("--tz", default="Asia/Ho_Chi_Minh", help="timezone for times (default Asia/Ho_Chi_Minh)")
    p.set_defaults(func=run)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {name!r}: unknown timezone") from None


def open_db(path: str, prog: str) -> DistrictDb | None:
    try:
        return DistrictDb(path, create=False)
    except FileNotFoundError as e:
        print(f"loa-district {prog}: {e}", file=sys.stderr)
        return None


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def when(ts: float | None, tz: ZoneInfo) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M")


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def run(args) -> int:
    tz = zone(args.tz)
    db = open_db(args.db, "status")
    if db is None:
        return 1
    try:
        now = time.time()
        stations = db.stations(args.commune)
        if not stations:
            print("no stations" + (f" in commune {args.commune}" if args.commune else "") + " in " + args.db)
            return 0
        rows = [["STATION", "STATE", "SINCE", "UP 24H", "UP 7D", "UP 30D", "LAST PLAYED", "FAULTS"]]
        for s in stations:
            last = db.last_played(s.sid)
            tele = db.last_telemetry(s.sid)
            faults = []
            if tele and tele[1] == "fault":
                faults.append(f"fault: {tele[2]}" if tele[2] else "fault")
            failed = db.failures_since(s.sid, now - 7 * DAY)
            if failed:
                faults.append(f"{failed} failed (7 d)")
            content = db.content_status(s.sid)
            if content and content[0]:
                faults.append(f"content: {content[0]} file(s) missing ({content[1]} failed)")
            rows.append(
                [
                    s.sid,
                    s.state or "unknown",
                    when(s.state_since, tz),
                    pct(db.uptime(s.sid, now - DAY, now)),
                    pct(db.uptime(s.sid, now - 7 * DAY, now)),
                    pct(db.uptime(s.sid, now - 30 * DAY, now)),
                    "-" if last is None else f"{(last[0] or last[1])[:30]} @ {when(last[2], tz)}",
                    "; ".join(faults) or "-",
                ]
            )
        print(table(rows))
        return 0
    finally:
        db.close()
