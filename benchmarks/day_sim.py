"""day_sim: 30 days of a dense schedule (50 programmes a day) through the station core.

Goal (issue 2): 30 simulated days in <= 1 s on a 2-core machine. Printed: simulated days per second, and the
time for 30 days beside the 1 s limit as a ratio (< 1 is inside the goal).
"""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from benchmarks._common import row
from firmware.core.events import Booted
from firmware.core.policy import Policy
from firmware.core.schedule import ScheduleDoc
from firmware.core.station import Station
from simulator.dayrun import DayRun

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def dense_schedule(per_day: int = 50) -> ScheduleDoc:
    """`per_day` programmes between 05:00 and 21:40, every 20 minutes, mixed levels and sources."""
    progs = []
    for i in range(per_day):
        minute = 5 * 60 + i * 20
        kind = i % 4
        source = (
            {"type": "file", "path": f"/media/p{i}.mp3", "duration_s": 540 + (i % 5) * 60}
            if kind < 2
            else {"type": "tts", "text": "Thông báo của xã. " * (3 + i % 7)}
            if kind == 2
            else {"type": "tone", "kind": "chime", "duration_s": 30}
        )
        progs.append({
            "id": f"p{i:02d}", "title": f"Programme {i}", "level": "priority" if i % 7 == 3 else "normal",
            "source": source, "recurrence": {"days": "daily"},
            "start": f"{minute // 60:02d}:{minute % 60:02d}", "gain_db": -float(i % 6),
        })
    return ScheduleDoc.model_validate({"version": 1, "programmes": progs})


def dense_policy() -> Policy:
    return Policy.model_validate({
        "windows": [{"start": "05:00", "end": "12:00", "cap_db": -6}, {"start": "12:00", "end": "22:00", "cap_db": -3}],
        "max_sessions_per_day": 48, "max_session_minutes": 1440, "max_minutes_per_day": 1440,
    })


def simulate(days: int, per_day: int = 50) -> tuple[float, int]:
    start = datetime.combine(date(2026, 12, 1), datetime.min.time(), tzinfo=TZ)
    station = Station(dense_policy(), dense_schedule(per_day), TZ)
    run = DayRun(station, start)
    t0 = time.perf_counter()
    run.send(Booted(clock_trusted=True, last_alive=start))
    run.run_until(start + timedelta(days=days))
    elapsed = time.perf_counter() - t0
    return elapsed, len(run.log)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks day_sim", description=__doc__)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args(argv)
    simulate(1)  # warm caches and imports, not measured
    elapsed, entries = simulate(args.days)
    per_s = args.days / elapsed
    limit_s = args.days / 30.0  # the goal: 30 days per second
    print(f"day_sim: {args.days} days x 50 programmes/day -> {entries} play-log entries, "
          f"{per_s:.0f} simulated days per second")
    row(f"day_sim: {args.days} simulated days", elapsed, limit_s, unit="s", peer_name="limit", goal=1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
