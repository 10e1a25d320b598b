"""`loa-sim day`: replay the station core over simulated days and print the timeline."""

from __future__ import annotations

import json
import re
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

from firmware.cli_support import UsageError
from firmware.config import ConfigError, load_config
from firmware.core.events import Booted, ClockTrustChanged
from firmware.core.schedule import ScheduleError, check_against_policy, parse_schedule
from firmware.core.station import Station, StationSettings
from simulator.dayrun import DayRun, day_summary


def register(sub) -> None:
    p = sub.add_parser("day", help="replay the core over simulated days; print the timeline")
    p.add_argument("--config", required=True, help="station.toml")
    p.add_argument("--schedule", required=True, help="schedule.json")
    p.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--days", type=int, default=1, help="how many days (1-366)")
    p.add_argument("--boot", metavar="HH:MM",
                   help="power comes on at this time of the first day (default 00:00): what was due before is "
                   "missed (station was off), a programme in progress is joined late")
    p.add_argument("--ntp-at", metavar="HH:MM",
                   help="the clock is untrusted from boot until NTP syncs at this time of the first day: "
                   "programmes in between are held")
    p.add_argument("--json", action="store_true", help="print the segments as JSON")
    p.add_argument("--plot", metavar="PNG", help="write a timeline picture")
    p.set_defaults(func=run)


def _parse_hhmm(s: str | None, flag: str) -> time | None:
    if s is None:
        return None
    m = re.fullmatch(r"(\d\d):(\d\d)", s)
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise UsageError(f'{flag} "{s}" is not a time of day: use HH:MM, e.g. 05:40')
    return time(int(m[1]), int(m[2]))


def _parse_day(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise UsageError(f'--from "{s}" is not a date: use YYYY-MM-DD, e.g. 2026-12-01') from None


def load_inputs(config_path: str, schedule_path: str):
    """Config and schedule, or every problem in both: (cfg, doc, problems)."""
    problems: list[str] = []
    cfg = doc = None
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        problems.append(str(e))
    try:
        raw = Path(schedule_path).read_bytes()
        doc = parse_schedule(raw, schedule_path)
    except OSError as e:
        problems.append(f"{schedule_path}: cannot read: {e.strerror or e}")
    except ScheduleError as e:
        problems.append(str(e))
    if cfg and doc:
        s = cfg.station
        if not doc.applies_to(s.district, s.commune, s.id):
            problems.append(f'{schedule_path}: target "{doc.target}" is not this station ({s.scope})')
        if doc.timezone != s.timezone:
            problems.append(f'{schedule_path}: timezone "{doc.timezone}" differs from the station\'s '
                            f'"{s.timezone}"')
    return cfg, doc, problems


def simulate(cfg, doc, first: date, days: int, *, boot: time | None = None, ntp_at: time | None = None) -> DayRun:
    """The core over `days` days from midnight of `first`; `boot`: power on at that time of the first day
    (the station was off since midnight); `ntp_at`: the clock is untrusted from boot until then."""
    tz = cfg.tz
    start = datetime.combine(first, time(), tzinfo=tz)
    on = datetime.combine(first, boot, tzinfo=tz) if boot else start
    station = Station(cfg.policy, doc, tz, StationSettings(amp_warmup_s=cfg.gpio.amp_warmup_s,
                                                           amp_hang_s=cfg.gpio.amp_hang_s, id_prefix="sim"))
    run = DayRun(station, on)
    run.send(Booted(clock_trusted=ntp_at is None, last_alive=start))
    if ntp_at is not None:
        run.at(datetime.combine(first, ntp_at, tzinfo=tz), ClockTrustChanged(True))
    run.run_until(start + timedelta(days=days))
    return run


def run(args) -> int:
    first = _parse_day(args.start)
    if not 1 <= args.days <= 366:
        raise UsageError(f"--days {args.days} is out of range (1-366)")
    boot, ntp_at = _parse_hhmm(args.boot, "--boot"), _parse_hhmm(args.ntp_at, "--ntp-at")
    if boot and ntp_at and ntp_at < boot:
        raise UsageError(f"--ntp-at {args.ntp_at} is before --boot {args.boot}: NTP syncs after power-on")
    cfg, doc, problems = load_inputs(args.config, args.schedule)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    refusals = check_against_policy(doc, cfg.policy)
    sim = simulate(cfg, doc, first, args.days, boot=boot, ntp_at=ntp_at)
    rows = sorted(sim.rows, key=lambda r: (r.start, r.end or r.start))
    if args.json:
        print(json.dumps([r.as_json() for r in rows], ensure_ascii=False, indent=1))
    else:
        for r in refusals:
            print(f"policy: {r}")
        current = None
        for r in rows:
            d = r.start.date()
            if d != current:
                current = d
                print(f"\n{d.isoformat()} ({d.strftime('%a')})")
            end = r.end.strftime("%H:%M:%S") if r.end else "  ...   "
            gain = f"{r.gain_db:+6.1f} dB" if r.gain_db is not None else "    -    "
            tag = r.result if r.result != "played" else ""
            print(f"  {r.start.strftime('%H:%M:%S')}-{end}  {r.programme:<22} {r.level:<9} {gain}  "
                  f"{tag + ': ' if tag else ''}{r.reason}")
        print("\nday         sessions  minutes  max gain  refused/missed")
        for day, s in day_summary(rows, cfg.policy.session_gap_minutes).items():
            g = f"{s['max_gain_db']:+.1f} dB" if s["max_gain_db"] is not None else "-"
            print(f"{day}  {s['sessions']:8d}  {s['minutes']:7.1f}  {g:>8}  {s['refused']:14d}")
    if args.plot:
        from simulator.plot import plot_timeline

        plot_timeline(rows, cfg.policy, cfg.tz, first, args.days, args.plot,
                      title=f"{cfg.station.name or cfg.station.scope}: schedule v{doc.version}")
        print(f"\nwrote {args.plot}", file=sys.stderr)
    return 0
