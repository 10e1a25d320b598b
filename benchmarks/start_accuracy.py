"""start_accuracy: N short programmes through the real daemon (runtime, player, paced sink); the lateness of
each programme's first sample at the sink against its scheduled instant. Goal (issue 3): p99 <= 50 ms.

Programmes are one minute apart in the schedule (its resolution); between them the station's wall clock is
stepped forward to 1.5 s before the next one, as an NTP step would, so 100 programmes take minutes, not
hours. The station re-plans after each step exactly as it does in the field.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timedelta

from benchmarks._common import row
from benchmarks._station import TZ, Bench
from firmware.core import commands as C
from firmware.runtime import Call

LEAD_S = 1.5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks start_accuracy", description=__doc__)
    ap.add_argument("--programmes", type=int, default=100)
    args = ap.parse_args(argv)
    n = args.programmes
    first = datetime(2026, 12, 1, 5, 0, tzinfo=TZ)
    progs = [{"id": f"p{i:03d}", "title": f"P{i}", "start": (first + timedelta(minutes=i)).strftime("%H:%M"),
              "recurrence": {"days": "daily"}, "source": {"type": "tone", "kind": "test", "duration_s": 0.3}}
             for i in range(n)]
    windows = [("04:00", (first + timedelta(minutes=n + 5)).strftime("%H:%M"), -6.0)]
    bench = Bench(windows=windows, programmes=progs, at=first - timedelta(seconds=LEAD_S)).start()
    late_ms = []
    try:
        for i in range(n):
            start = first + timedelta(minutes=i)
            wall, mono = bench.clock.wall(), time.monotonic()
            sched_mono = mono + (start - wall).total_seconds()
            if not bench.wait(lambda i=i: sum(1 for e in bench.reports if e.ref == f"p{i:03d}") >= 1, 30):
                print(f"programme p{i:03d} was never played")
                return 1
            play = next(p for _, p in bench.plays if p.ref == f"p{i:03d}")
            t = bench.first_block_at(play.play_id)
            entry = next(e for e in bench.reports if e.ref == f"p{i:03d}")
            if entry.result != "played":
                print(f"p{i:03d}: {entry.result} {entry.reason}")
            late_ms.append((t - sched_mono) * 1000)
            if i + 1 < n:
                nxt = first + timedelta(minutes=i + 1)
                bench.clock.step((nxt - timedelta(seconds=LEAD_S) - bench.clock.wall()).total_seconds())
                bench.app.events.put(Call(lambda rt: None))  # wake the runtime: it sees the step at once
    finally:
        bench.stop()
    plays = [p for _, p in bench.plays if isinstance(p, C.Play)]
    lat = sorted(late_ms)
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    print(f"start_accuracy: {len(lat)} programmes ({len(plays)} plays); lateness of the first sample: "
          f"min {lat[0]:.1f} ms, p50 {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms")
    row("first sample lateness, p99", p99, 50.0, unit="ms", peer_name="limit", goal=1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
