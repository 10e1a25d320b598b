"""`loa-sim fleet`: N simulated stations (the daemon's own code) on shared network loops, with a live summary.

    loa-sim fleet --stations 1000 --communes 20 --start-broker --duration 120 --alert-after 20

Each station runs the real Station, InboundHandler (signature, target, expiry and replay checks; acks) and
Runtime, with an MQTT link on one of a few shared network loops, a virtual player that keeps time instead of
making sound, GPIO disabled, and light reporting (play log straight to the broker; `--reporting outbox` runs
the real SQLite outbox and reporter threads, for small fleets). See docs/scaling.md for the figures.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from firmware.cli_support import UsageError, load_schedule_or_report

log = logging.getLogger("loa.fleet")


def register(sub) -> None:
    p = sub.add_parser("fleet", help="many simulated stations in one process (shared MQTT loops)")
    p.add_argument("--stations", type=int, default=100, help="how many stations (default 100)")
    p.add_argument("--communes", type=int, default=1, help="spread the stations over K communes")
    p.add_argument("--district", default="hv", help="district id (default hv)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--broker", help="broker URL, e.g. mqtt://127.0.0.1:1883")
    g.add_argument("--start-broker", action="store_true", help="start a private mosquitto on a free port")
    p.add_argument("--seed", type=int, default=0, help="seed for the demo schedule (programme lengths)")
    p.add_argument("--duration", type=float, default=0, help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--loops", type=int, default=0, help="shared network loops (default: one per core)")
    p.add_argument("--procs", type=int, default=1,
                   help="worker processes (default 1; one per core uses every core for alert bursts)")
    p.add_argument("--reporting", choices=["light", "outbox"], default="light",
                   help="light: play log straight to the broker; outbox: the real SQLite outbox per station")
    p.add_argument("--schedule", help="a schedule.json every station starts with (default: a short demo one)")
    p.add_argument("--no-schedule", action="store_true", help="stations start with no schedule")
    p.add_argument("--alert-after", type=float, default=None,
                   help="publish a signed district-wide exercise alert S seconds after every station is online")
    p.add_argument("--state-dir", help="where the per-station state dirs go (default: a new temporary dir)")
    p.add_argument("--interval", type=float, default=1.0, help="summary refresh, seconds")
    p.set_defaults(func=run)


def demo_schedule(seed: int, now, minutes: int = 10):
    """Short tone programmes at the next few minute marks (so a fleet plays something soon), durations by seed."""
    from firmware.core.schedule import parse_schedule

    rng = random.Random(seed)
    start = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    progs = []
    for i in range(minutes):
        t = start + timedelta(minutes=i)
        if t.date() != start.date():
            break
        progs.append({"id": f"demo-{i}", "title": f"Demo {i}", "start": t.strftime("%H:%M"),
                      "recurrence": {"days": "daily"},
                      "source": {"type": "tone", "kind": "chime", "duration_s": rng.choice([5, 10, 20, 30])}})
    return parse_schedule(json.dumps({"version": 1, "programmes": progs}), "fleet demo schedule")


class SummaryPrinter:
    """One line, rewritten in place on a terminal; plain lines (every `plain_every_s`) otherwise."""

    def __init__(self, stream=sys.stdout, *, plain_every_s: float = 5.0):
        self.stream = stream
        self.tty = stream.isatty()
        self.plain_every_s = plain_every_s
        self._last_plain = float("-inf")

    def show(self, text: str, *, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
            self.stream.flush()
        elif final or time.monotonic() - self._last_plain >= self.plain_every_s:
            self._last_plain = time.monotonic()
            print(text, file=self.stream, flush=True)


def run(args) -> int:
    from simulator.broker import Mosquitto
    from simulator.fleet import Fleet, FleetOptions, raise_fd_limit

    if not 1 <= args.stations <= 20000:
        raise UsageError(f"--stations {args.stations}: expected 1..20000")
    if not 1 <= args.communes <= min(100, args.stations):
        raise UsageError(f"--communes {args.communes}: expected 1..min(100, --stations)")
    if not args.verbose:
        # Every station logs like a daemon (one WARNING per accepted alert): 1,000 of them drown the summary.
        logging.getLogger("firmware").setLevel(logging.ERROR)
    soft = raise_fd_limit(2 * args.stations + 256)
    if soft < args.stations + 64:
        raise UsageError(f"open-file limit {soft} is too low for {args.stations} stations: raise `ulimit -n`")
    workdir = Path(args.state_dir or tempfile.mkdtemp(prefix="loa-fleet-"))
    from zoneinfo import ZoneInfo

    from simulator.clock import HostClock

    clock = HostClock(ZoneInfo("Asia/Ho_Chi_Minh"))
    doc = None
    if args.schedule:
        doc = load_schedule_or_report(args.schedule)
        if doc is None:
            return 1
    elif not args.no_schedule:
        doc = demo_schedule(args.seed, clock.wall())
    broker = None
    if args.start_broker:
        broker = Mosquitto(extra_conf="max_connections -1\n", persistence=False).start()
        url = broker.url
        print(f"mosquitto on {url} (log {broker.log_path})", flush=True)
    else:
        url = args.broker
    opts = FleetOptions(stations=args.stations, communes=args.communes, district=args.district, broker_url=url,
                        loops=args.loops, reporting=args.reporting, schedule=doc)
    if args.procs > 1:
        from simulator.fleet import ProcessFleet

        fleet = ProcessFleet(opts, workdir, procs=args.procs, clock=clock)
    else:
        fleet = Fleet(opts, workdir, clock=clock)
    printer = SummaryPrinter()
    stop = threading.Event()
    t0 = time.monotonic()
    print(f"{args.stations} stations in {args.communes} commune(s), state under {workdir}", flush=True)
    try:
        fleet.start()
        alert_at = None
        alert_sent = False
        while not stop.wait(args.interval):
            s = fleet.summary()
            elapsed = time.monotonic() - t0
            printer.show(f"[{elapsed:6.0f} s] {s.line()}")
            if args.alert_after is not None and not alert_sent:
                if alert_at is None and s.online == s.stations:
                    alert_at = time.monotonic() + args.alert_after
                if alert_at is not None and time.monotonic() >= alert_at:
                    _publish_alert(url, fleet, args.district)
                    alert_sent = True
            if args.duration and elapsed >= args.duration:
                break
    except KeyboardInterrupt:
        pass
    finally:
        s = fleet.summary()
        printer.show(f"[{time.monotonic() - t0:6.0f} s] {s.line()}", final=True)
        fleet.stop()
        if broker is not None:
            broker.cleanup()
        if not args.state_dir:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if s.faults == 0 else 1


def _publish_alert(url: str, fleet, district: str) -> None:
    from district.alerts import build_alert, publish_alert
    from district.mqtt import DistrictClient
    from firmware.protocol.topics import Scope

    now = fleet.clock.wall()
    alert = build_alert(scope=Scope(district), status="exercise", now=now, expires_in=timedelta(minutes=10),
                        text="Diễn tập: bão số 9.", severity="severe", headline="fleet exercise", repeat=1)
    with DistrictClient.from_url(url, client_id=f"loa-fleet-district-{os.getpid()}") as client:
        publish_alert(client, alert, fleet.key, now)
    log.warning("published exercise alert %s to the whole district", alert.id)
