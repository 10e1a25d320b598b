"""Soak: 24 simulated hours of random faults through the station core, then minutes of a real fleet under
network faults.

    python -m benchmarks soak [--hours 24] [--seed S] [--realtime-s 180] [--stations 50] [--skip-realtime]

1. Accelerated (the pure core through `simulator.dayrun.DayRun`, as fast as it computes): a day of a busy
   schedule with random clock steps (+-5 min, +-1 h), reboots (a new Station from the last persisted time),
   link drops, spells of untrusted clock, alerts and cancels. Invariants, checked over every command:
   no exception; no programme started outside an allowed window, none while the clock was untrusted, none
   that would run past its window's end; no occurrence played to the end twice; every play-log entry has a
   unique id and belongs to a play (or is a missed/refused one); every play is logged, including one a reboot
   cut short (the reboot hands the core what was playing, as the runtime does from its `playing.json`).
2. Real time (a few minutes, real mosquitto): a fleet whose links all go through `simulator.proxy.FaultProxy`,
   random cuts, black holes, stalls and flaps, and a district alert every ~30 s. Checked: every station
   acknowledges every alert `done` once; all stations are back online at the end; no station faulted.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from firmware.core import commands as C
from firmware.core import events as E
from firmware.core.alerts import Alert
from firmware.core.policy import Policy
from firmware.core.schedule import ScheduleDoc
from firmware.core.station import Station, StationSettings
from simulator.dayrun import DayRun, spec_duration

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FADE_TOLERANCE_S = 1.0


def soak_policy() -> Policy:
    return Policy.model_validate({
        "windows": [{"start": "05:30", "end": "11:00", "cap_db": -6}, {"start": "13:30", "end": "21:00", "cap_db": -3}],
        "max_sessions_per_day": 12, "max_session_minutes": 120, "max_minutes_per_day": 600,
    })


def soak_schedule() -> ScheduleDoc:
    """Every 40 minutes from 05:30 to 20:50: tones and speech of 1-12 minutes; and one at 22:00 (outside)."""
    progs = []
    for i, minute in enumerate(range(5 * 60 + 30, 21 * 60, 40)):
        if 11 * 60 <= minute < 13 * 60 + 30:
            continue
        src = ({"type": "tone", "kind": "chime", "duration_s": 60 * (1 + i % 10)} if i % 3 else
               {"type": "tts", "text": "Thông báo của xã về lịch tiêm chủng và thu gom rác. " * (4 + i % 9)})
        progs.append({"id": f"p{i:02d}", "title": f"P{i}", "start": f"{minute // 60:02d}:{minute % 60:02d}",
                      "recurrence": {"days": "daily"}, "source": src, "level": "priority" if i % 5 == 0 else "normal"})
    progs.append({"id": "late", "title": "Too late", "start": "22:00", "recurrence": {"days": "daily"},
                  "source": {"type": "tone", "kind": "chime", "duration_s": 60}})
    return ScheduleDoc.model_validate({"version": 1, "programmes": progs})


@dataclass
class Accelerated:
    seed: int
    hours: float
    faults: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    plays: int = 0
    entries: int = 0
    results: Counter = field(default_factory=Counter)
    unlogged_at_reboot: int = 0
    elapsed_s: float = 0.0


def accelerated(hours: float, seed: int) -> Accelerated:
    rng = random.Random(seed)
    res = Accelerated(seed, hours)
    policy, doc = soak_policy(), soak_schedule()
    start = datetime.combine(date(2026, 12, 1), datetime.min.time(), tzinfo=TZ)
    end = start + timedelta(hours=hours)
    boots = 0
    trusted = True
    seen_ids: set[str] = set()
    played_occurrences: Counter = Counter()

    all_plays: Counter = Counter()  # ref -> plays, over every boot
    all_logged: Counter = Counter()  # ref -> play-log entries of something that sounded, over every boot

    def boot(now: datetime, last_alive: datetime | None, interrupted: dict | None = None) -> DayRun:
        nonlocal boots
        boots += 1
        st = Station(policy, doc, TZ, StationSettings(amp_warmup_s=0.0, id_prefix=f"soak.b{boots}"))
        run = DayRun(st, now, keep_commands=True)
        run.trust_marks = [(0, trusted)]  # (index into run.commands, trusted from there on)
        run.send(E.Booted(clock_trusted=trusted, last_alive=last_alive, interrupted=interrupted))
        return run

    def set_trust(run: DayRun, value: bool) -> None:
        nonlocal trusted
        trusted = value
        run.trust_marks.append((len(run.commands), value))
        run.send(E.ClockTrustChanged(value))

    def audit(run: DayRun) -> None:
        """Check one boot's commands; called when the boot ends (reboot or end of soak)."""
        plays: dict[str, C.Play] = {}
        marks = dict(run.trust_marks)
        trusted_here = True
        for i, (when, cmd) in enumerate(run.commands):
            trusted_here = marks.get(i, trusted_here)
            if isinstance(cmd, C.Play):
                plays[cmd.play_id] = cmd
                res.plays += 1
                if cmd.kind == "programme":
                    _check_window(policy, when, cmd, res)
                    if not trusted_here:
                        res.violations.append(f"programme {cmd.ref} started at {when} on an untrusted clock")
            elif isinstance(cmd, C.Report):
                e = cmd.entry
                res.entries += 1
                res.results[e.result] += 1
                if e.entry_id in seen_ids:
                    res.violations.append(f"duplicate play-log id {e.entry_id}")
                seen_ids.add(e.entry_id)
                if e.actual_start is not None:
                    all_logged[e.ref] += 1
                if e.result == "played" and e.kind == "programme":
                    key = (e.ref, e.requested_start.isoformat())
                    played_occurrences[key] += 1
                    if played_occurrences[key] > 1:
                        res.violations.append(f"{e.ref} at {e.requested_start} played to the end twice")
        all_plays.update(p.ref for p in plays.values() if p.kind in ("programme", "alert"))  # notices: no log

    t0 = time.perf_counter()
    run = boot(start, start - timedelta(minutes=1))
    pending: list[tuple[datetime, str, object]] = []
    now = start
    while now < end:
        now = min(end, now + timedelta(minutes=rng.uniform(10, 60)))
        run.run_until(now)
        fault = rng.choice(["step_small", "step_hour", "reboot", "link", "untrusted", "alert", "alert_cancel"])
        res.faults[fault] += 1
        try:
            if fault == "step_small":
                run.step_clock(rng.choice([-1, 1]) * rng.uniform(60, 300))
            elif fault == "step_hour":
                run.step_clock(rng.choice([-3600.0, 3600.0]))
            elif fault == "reboot":
                audit(run)
                down = timedelta(seconds=rng.uniform(5, 900))
                last_alive = run.now - timedelta(seconds=rng.uniform(0, 60))  # persisted every 60 s
                # what the runtime persists on every play/stop/report and hands back at the next boot
                run = boot(run.now + down, last_alive, run.station.playing_record())
            elif fault == "link":
                run.send(E.LinkChanged(False))
                pending.append((run.now + timedelta(seconds=rng.uniform(10, 600)), "link_up", None))
            elif fault == "untrusted":
                set_trust(run, False)
                pending.append((run.now + timedelta(seconds=rng.uniform(30, 1800)), "trusted", None))
            elif fault in ("alert", "alert_cancel"):
                a = Alert(id=f"a{res.faults['alert'] + res.faults['alert_cancel']}-{seed}", issued=run.now,
                          expires=run.now + timedelta(minutes=30), status=rng.choice(["actual", "exercise"]),
                          msg_type="alert", severity=rng.choice(["extreme", "severe", "moderate"]),
                          text="Cảnh báo lũ quét. " * rng.randint(1, 4), repeat=rng.randint(1, 3))
                run.send(E.AlertReceived(a, "loa/v1/hv/alert"))
                if fault == "alert_cancel":
                    cancel = Alert(id=f"{a.id}-cancel", issued=run.now, expires=a.expires, status=a.status,
                                   msg_type="cancel", references=(a.id,))
                    pending.append((run.now + timedelta(seconds=rng.uniform(5, 120)), "alert", cancel))
            # deliver what is due of the delayed halves (link back, NTP back, cancels)
            for item in sorted(pending, key=lambda x: x[0]):
                when, kind, arg = item
                if when > now + timedelta(minutes=60):
                    continue
                pending.remove(item)
                run.run_until(max(run.now, when))
                if kind == "link_up":
                    run.send(E.LinkChanged(True))
                elif kind == "trusted":
                    set_trust(run, True)
                elif kind == "alert":
                    run.send(E.AlertReceived(arg, "loa/v1/hv/alert"))
        except Exception as e:  # a crash of the core is the first thing a soak is for
            res.violations.append(f"exception on {fault}: {type(e).__name__}: {e}")
            break
        now = max(now, run.now)
    run.run_until(max(run.now, end))
    run.send(E.Stopping())  # a clean stop at the end: the core logs what was playing
    audit(run)
    for ref, n in all_plays.items():
        if all_logged.get(ref, 0) < n:  # an interrupted play is logged by the next boot, so count over all boots
            res.unlogged_at_reboot += n - all_logged.get(ref, 0)
            res.violations.append(f"{n} plays of {ref} but {all_logged.get(ref, 0)} play-log entries")
    res.elapsed_s = time.perf_counter() - t0
    return res


def _check_window(policy: Policy, when: datetime, cmd: C.Play, res: Accelerated) -> None:
    win = policy.window_at(when)
    if win is None:
        res.violations.append(f"programme {cmd.ref} started at {when:%H:%M:%S}, outside every window")
        return
    length = spec_duration(cmd.source)
    remaining = None if length is None else max(0.0, length - cmd.offset_s)
    if cmd.max_s is not None:
        remaining = cmd.max_s if remaining is None else min(remaining, cmd.max_s)
    if remaining is None or when + timedelta(seconds=remaining - FADE_TOLERANCE_S) > win[2]:
        res.violations.append(f"programme {cmd.ref} at {when:%H:%M:%S} would run past its window's end {win[2]:%H:%M}")


# -- real time: a fleet behind a fault proxy ------------------------------------------------------------------


@dataclass
class Realtime:
    seconds: float
    stations: int
    faults: Counter = field(default_factory=Counter)
    alerts: list[str] = field(default_factory=list)
    done: dict[str, set[str]] = field(default_factory=dict)  # alert -> stations that acked done
    plays: Counter = field(default_factory=Counter)  # (station, alert) -> first blocks
    online_at_end: int = 0
    faulted: int = 0
    last_done_s: float = 0.0


def realtime(seconds: float, stations: int, seed: int, communes: int = 5) -> Realtime:
    from district.alerts import build_alert, publish_alert
    from district.mqtt import DistrictClient
    from firmware.protocol.topics import Scope
    from simulator.broker import Mosquitto
    from simulator.fleet import Fleet, FleetOptions
    from simulator.proxy import FaultProxy

    rng = random.Random(seed)
    res = Realtime(seconds, stations)
    lock = threading.Lock()
    cond = threading.Condition(lock)
    sent_at: dict[str, float] = {}

    def on_first(fb) -> None:
        if fb.kind == "alert":
            with lock:
                res.plays[(fb.station, fb.ref)] += 1

    def on_ack(msg) -> None:
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        if doc.get("state") == "done":
            with cond:
                res.done.setdefault(doc.get("ref"), set()).add(doc.get("station"))
                if doc.get("ref") in sent_at:
                    res.last_done_s = max(res.last_done_s, time.monotonic() - sent_at[doc["ref"]])
                cond.notify_all()

    pause = threading.Event()  # never set: its wait() is the benchmark's clock between faults
    with tempfile.TemporaryDirectory(prefix="loa-soak-") as tmp, \
            Mosquitto(extra_conf="max_connections -1\n", persistence=False) as broker, \
            FaultProxy(broker.port) as proxy, DistrictClient.from_url(broker.url) as district:
        district.subscribe(["loa/v1/hv/+/+/ack"], on_ack)
        fleet = Fleet(FleetOptions(stations=stations, communes=communes, broker_url=proxy.url, keepalive_s=5),
                      Path(tmp), on_first_block=on_first)
        fleet.start()
        try:
            if not fleet.wait(lambda s: s.subscribed == stations, 60):
                raise SystemExit(f"soak: only {fleet.summary().subscribed}/{stations} stations subscribed")
            t_end = time.monotonic() + seconds
            next_alert = time.monotonic() + rng.uniform(5, 15)
            while time.monotonic() < t_end:
                if time.monotonic() >= next_alert:
                    now = fleet.clock.wall()
                    alert = build_alert(scope=Scope("hv"), status="exercise", now=now,
                                        expires_in=timedelta(minutes=30), text="Diễn tập.", repeat=1, tone=False,
                                        severity=rng.choice(["extreme", "severe"]))
                    publish_alert(district, alert, fleet.key, now)
                    with lock:
                        res.alerts.append(alert.id)
                        sent_at[alert.id] = time.monotonic()
                    next_alert = time.monotonic() + rng.uniform(20, 40)
                fault = rng.choice(["cut", "drop", "stall", "flap", "none"])
                res.faults[fault] += 1
                hold = rng.uniform(2, 9)
                if fault == "flap":
                    proxy.flap()
                elif fault != "none":
                    proxy.set_mode(fault)
                    pause.wait(hold)
                    proxy.restore()
                pause.wait(rng.uniform(3, 12))
            proxy.restore()
            with cond:
                cond.wait_for(lambda: all(len(res.done.get(a, ())) == stations for a in res.alerts), 120)
            fleet.wait(lambda s: s.online == stations, 60)
            summary = fleet.summary()
            res.online_at_end, res.faulted = summary.online, summary.faults
        finally:
            fleet.stop()
    return res


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks soak", description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours per accelerated run")
    p.add_argument("--runs", type=int, default=100, help="accelerated runs (seeds seed..seed+runs-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--realtime-s", type=float, default=180.0, help="length of the real-time fleet soak")
    p.add_argument("--stations", type=int, default=50, help="stations in the real-time soak")
    p.add_argument("--skip-realtime", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    worst = 0

    total = Accelerated(args.seed, args.hours * args.runs)
    t0 = time.perf_counter()
    for seed in range(args.seed, args.seed + args.runs):
        r = accelerated(args.hours, seed)
        total.faults.update(r.faults)
        total.results.update(r.results)
        total.plays += r.plays
        total.entries += r.entries
        total.unlogged_at_reboot += r.unlogged_at_reboot
        total.violations += [f"seed {seed}: {v}" for v in r.violations]
    elapsed = time.perf_counter() - t0
    print(f"accelerated: {args.runs} runs x {args.hours:g} simulated h (seeds {args.seed}..{args.seed + args.runs - 1})"
          f" in {elapsed:.1f} s")
    print(f"  faults injected: {sum(total.faults.values())} ({', '.join(f'{k} {v}' for k, v in sorted(total.faults.items()))})")
    print(f"  plays {total.plays}, play-log entries {total.entries} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(total.results.items()))})")
    print(f"  plays never logged: {total.unlogged_at_reboot}")
    print(f"  invariant violations: {len(total.violations)}")
    for v in total.violations[:20]:
        print(f"    {v}")
    if total.violations:
        worst = 1

    if not args.skip_realtime:
        t0 = time.monotonic()
        rt = realtime(args.realtime_s, args.stations, args.seed)
        took = time.monotonic() - t0
        acked = sum(len(rt.done.get(a, ())) for a in rt.alerts)
        double = sum(1 for n in rt.plays.values() if n > 1)
        missing = len(rt.alerts) * rt.stations - acked
        print(f"real time: {rt.stations} stations behind a fault proxy for {rt.seconds:g} s (run took {took:.0f} s)")
        print(f"  proxy faults: {', '.join(f'{k} {v}' for k, v in sorted(rt.faults.items()))}")
        print(f"  alerts {len(rt.alerts)}: done acks {acked}/{len(rt.alerts) * rt.stations}, "
              f"slowest 'done' after {rt.last_done_s:.1f} s, alerts played twice by a station: {double}")
        print(f"  online at the end {rt.online_at_end}/{rt.stations}, stations in fault {rt.faulted}")
        if missing or double or rt.online_at_end != rt.stations or rt.faulted:
            worst = 1
    print("soak:", "ok" if worst == 0 else "FAILED")
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
