"""preempt_latency: a station playing a programme through a paced sink, a real mosquitto on loopback, and
N signed alerts from the district: time from the district's publish to the first alert block handed to the
sink. Goal (issue 4): p99 <= 2 blocks + 10 ms (50 ms with 20 ms blocks).

Each alert expires two seconds after it is sent, so the station goes back to its programme (joined at its
offset) before the next one: every alert preempts a programme, as in the field.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timedelta

from benchmarks._common import row
from benchmarks._station import TZ, Bench
from district.alerts import build_alert, publish_alert
from district.mqtt import DistrictClient
from firmware.protocol.topics import Scope
from simulator.broker import Mosquitto


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks preempt_latency", description=__doc__)
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--block-ms", type=int, default=20)
    args = ap.parse_args(argv)
    now = datetime.now(TZ)
    prog = {"id": "chuong-trinh", "title": "Chương trình", "start": (now - timedelta(minutes=1)).strftime("%H:%M"),
            "recurrence": {"days": "daily"}, "source": {"type": "tone", "kind": "chime", "duration_s": 600}}
    latencies = []
    with Mosquitto() as broker:
        bench = Bench(broker_url=broker.url, programmes=[prog], block_ms=args.block_ms).start()
        try:
            link = bench.app.parts.link
            if not bench.wait(lambda: link.connected, 15) and not link.connected:
                print("station never connected to the broker")
                return 1
            with DistrictClient.from_url(broker.url, client_id="bench-district") as district:
                scope = Scope("bd")
                for i in range(args.alerts):
                    # the programme must be sounding (its first block at the sink) before each alert
                    if not bench.wait(lambda: bench.plays and bench.plays[-1][1].kind == "programme", 30):
                        print(f"alert {i}: the programme did not resume")
                        return 1
                    if bench.started_at(bench.plays[-1][1].play_id, 10) is None:
                        print(f"alert {i}: the programme never reached the sink")
                        return 1
                    n_before = len(bench.plays)
                    payload = build_alert(scope=scope, status="exercise", now=datetime.now(TZ),
                                          expires_in=timedelta(seconds=2), text="Thử", repeat=1,
                                          severity="severe")
                    t0 = time.monotonic()
                    publish_alert(district, payload, bench.key, datetime.now(TZ))
                    ok = bench.wait(lambda aid=payload.id, n=n_before: any(
                        p.kind == "alert" and p.ref == aid for _, p in bench.plays[n:]), 10)
                    if not ok:
                        print(f"alert {i} ({payload.id}) never played")
                        return 1
                    play = next(p for _, p in bench.plays[n_before:] if p.ref == payload.id)
                    t1 = bench.first_block_at(play.play_id)
                    latencies.append((t1 - t0) * 1000)
        finally:
            bench.stop()
    lat = sorted(latencies)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    limit = 2 * args.block_ms + 10
    print(f"preempt_latency: {len(lat)} alerts, block {args.block_ms} ms; p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {lat[-1]:.1f} ms")
    row("publish -> first alert block, p50", p50, args.block_ms, unit="ms", peer_name="block")
    row("publish -> first alert block, p99", p99, limit, unit="ms", peer_name="limit", goal=1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
