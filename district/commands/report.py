"""`loa-district report`: the monthly report a district sends up, per station.

    loa-district report --month 2026-12 --format csv --db district.sqlite > 2026-12.csv

Per station: uptime % (from status transitions), programmes played / missed, minutes played vs requested,
alerts received / played. Months are in the district's timezone (default Asia/Ho_Chi_Minh).
"""

from __future__ import annotations

import csv
import io
import re
import sys
import time
from datetime import date, datetime

from district.commands.status import open_db, zone
from district.db import DistrictDb
from firmware.cli_support import UsageError

COLUMNS = [
    "station",
    "uptime_pct",
    "programmes_played",
    "programmes_missed",
    "minutes_played",
    "minutes_requested",
    "alerts_received",
    "alerts_played",
]


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="monthly report per station (CSV or Markdown)")
    p.add_argument("--month", required=True, help="YYYY-MM, e.g. 2026-12")
    p.add_argument("--format", choices=("csv", "md"), default="csv", help="output format (default csv)")
    p.add_argument("--db", required=True, metavar="FILE", help="district SQLite database (from `collect`)")
    p.add_argument("--commune", help="only the stations of this commune")
    p.add_argument("--tz", default="Asia/Ho_Chi_Minh", help="timezone of the month (default Asia/Ho_Chi_Minh)")
    p.set_defaults(func=run)


def parse_month(text: str) -> date:
    m = re.fullmatch(r"(\d{4})-(\d{2})", text or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise UsageError(f"--month {text!r}: expected YYYY-MM with a month 01-12, e.g. 2026-12")
    return date(int(m.group(1)), int(m.group(2)), 1)


def alerts_received(db: DistrictDb, sid: str, first: date, nxt: date, lo: float, hi: float, tz) -> int:
    """Alerts the station received in the month: its own count from each day's report (every verified alert,
    also test alerts and ones cancelled or updated before their turn, which play nothing), and for the days
    whose report has not arrived, the alerts in its play log."""
    reported: dict[str, int] = {
        day: int(n or 0) for day, n in db.query(
            "SELECT day, json_extract(payload, '$.alerts_received') FROM daily WHERE sid = ? AND day >= ? AND day < ?",
            (sid, first.isoformat(), nxt.isoformat()))
    }
    played = {
        ref for ref, start in db.query(
            "SELECT ref, requested_start FROM playlog WHERE sid = ? AND item_kind = 'alert' AND requested_start >= ?"
            " AND requested_start < ?", (sid, lo, hi))
        if datetime.fromtimestamp(start, tz).date().isoformat() not in reported
    }
    return sum(reported.values()) + len(played)


def month_rows(db: DistrictDb, first: date, tz, commune: str | None, now: float) -> list[dict]:
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    lo = datetime(first.year, first.month, 1, tzinfo=tz).timestamp()
    hi = datetime(nxt.year, nxt.month, 1, tzinfo=tz).timestamp()
    out = []
    for s in db.stations(commune):
        up = db.uptime(s.sid, lo, min(hi, now))
        agg = db.query(
            "SELECT"
            " SUM(item_kind = 'programme' AND result IN ('played', 'partial')),"
            " SUM(item_kind = 'programme' AND result NOT IN ('played', 'partial')),"
            " COALESCE(SUM(played_s), 0), COALESCE(SUM(requested_s), 0),"
            " SUM(item_kind = 'alert'), SUM(item_kind = 'alert' AND result IN ('played', 'partial'))"
            " FROM playlog WHERE sid = ? AND requested_start >= ? AND requested_start < ?",
            (s.sid, lo, hi),
        )[0]
        played, missed, played_s, requested_s, _, alerts_played = agg
        alerts = alerts_received(db, s.sid, first, nxt, lo, hi, tz)
        out.append(
            {
                "station": s.sid,
                "uptime_pct": "" if up is None else f"{100 * up:.2f}",
                "programmes_played": played or 0,
                "programmes_missed": missed or 0,
                "minutes_played": f"{played_s / 60:.1f}",
                "minutes_requested": f"{requested_s / 60:.1f}",
                "alerts_received": alerts or 0,
                "alerts_played": alerts_played or 0,
            }
        )
    return out


def render(rows: list[dict], fmt: str, month: str) -> str:
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()
    lines = [f"# Station report {month}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[c]) if r[c] != "" else "-" for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    first = parse_month(args.month)
    tz = zone(args.tz)
    db = open_db(args.db, "report")
    if db is None:
        return 1
    try:
        rows = month_rows(db, first, tz, args.commune, time.time())
    finally:
        db.close()
    sys.stdout.write(render(rows, args.format, args.month))
    return 0
