"""Properties over random policies, schedules, reboots and clock steps (hypothesis)."""

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.core import commands as C
from firmware.core import events as E
from firmware.core.alerts import Alert
from firmware.core.policy import WEEKDAYS, Policy
from firmware.core.schedule import ScheduleDoc
from firmware.core.station import Station
from simulator.dayrun import DayRun
from tests.core.helpers import TZ, at

FIRST = date(2026, 12, 28)  # runs across the year end
DAYS = 3


@st.composite
def policies(draw):
    # non-overlapping windows: cut the day at sorted distinct points, keep some of the pieces
    points = sorted(draw(st.sets(st.integers(0, 1439), min_size=2, max_size=8)))
    windows = []
    for a, b in zip(points[::2], points[1::2], strict=False):
        if b > a:
            windows.append({"start": f"{a // 60:02d}:{a % 60:02d}", "end": f"{b // 60:02d}:{b % 60:02d}",
                            "cap_db": draw(st.sampled_from([-20.0, -12.0, -6.0, -3.0, 0.0])),
                            "days": draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True))})
    if not windows:
        windows = [{"start": "05:30", "end": "07:00"}]
    return Policy.model_validate({
        "windows": windows,
        "max_sessions_per_day": draw(st.integers(1, 6)),
        "max_session_minutes": draw(st.integers(1, 120)),
        "max_minutes_per_day": draw(st.integers(1, 300)),
        "session_gap_minutes": draw(st.integers(0, 60)),
        "join_in_progress": draw(st.sampled_from(["join", "skip"])),
    })


@st.composite
def schedules(draw):
    n = draw(st.integers(1, 12))
    progs = []
    for i in range(n):
        m = draw(st.integers(0, 1439))
        progs.append({
            "id": f"p{i}", "title": f"P{i}", "level": draw(st.sampled_from(["normal", "priority"])),
            "source": {"type": "file", "path": f"/m/{i}.mp3", "duration_s": draw(st.integers(5, 3600))},
            "recurrence": {"days": draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True))},
            "start": f"{m // 60:02d}:{m % 60:02d}",
            "gain_db": draw(st.sampled_from([-10.0, -3.0, 0.0])),
        })
    return ScheduleDoc.model_validate({"version": 1, "programmes": progs})


disturbances = st.lists(
    st.tuples(st.integers(1, DAYS * 24 * 60 - 1),
              st.sampled_from(["step+", "step-", "reboot", "alert", "untrust", "trust"])),
    max_size=6,
)


def simulate(policy, doc, events):
    start = at(FIRST.year, FIRST.month, FIRST.day)
    st_ = Station(policy, doc, TZ)
    run = DayRun(st_, start, keep_commands=True)
    run.steps = []  # (wall before, wall after) of each clock step
    run.send(E.Booted(clock_trusted=True, last_alive=start))
    for minute, kind in sorted(events):
        t = start + timedelta(minutes=minute)
        if t <= run.now:
            continue
        run.run_until(t)
        if kind in ("step+", "step-"):
            before = run.now
            run.step_clock(3600 if kind == "step+" else -3600)
            run.steps.append((before, run.now))
        elif kind == "reboot":
            st_ = Station(policy, doc, TZ)
            run.station = st_
            run._current = None
            run.send(E.Booted(clock_trusted=True, last_alive=run.now - timedelta(minutes=5)))
        elif kind == "alert":
            run.send(E.AlertReceived(Alert(f"a{minute}", run.now, run.now + timedelta(minutes=10), "actual",
                                           "alert", "severe", "Bão", "Bão số 9", repeat=2)))
        elif kind == "untrust":
            run.send(E.ClockTrustChanged(False))
        else:
            run.send(E.ClockTrustChanged(True))
    run.run_until(start + timedelta(days=DAYS))
    return run


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), schedules(), disturbances)
def test_no_scheduled_audio_outside_windows_or_above_the_cap(policy, doc, events):
    run = simulate(policy, doc, events)
    for t, c in run.commands:
        if isinstance(c, C.Play | C.SetGain) and (not isinstance(c, C.Play) or c.kind == "programme"):
            w = policy.window_at(t)
            assert w is not None, f"{c} at {t} outside every window"
            assert c.gain_db <= c.cap_db <= policy.windows[w[0]].cap_db
    for r in run.rows:
        # A row is wall time from its start to its end: one that straddles a clock step spans the jump, not
        # audio (the commands above are checked at the instant they were issued, which covers it).
        straddles = any(r.end and min(a, b) < r.end and r.start <= max(a, b) for a, b in run.steps)
        if r.kind == "programme" and r.end and r.end > r.start and not straddles:
            w = policy.window_at(r.start)
            assert w is not None
            # the row may go on into an adjacent window: every minute of it is inside some window
            t = r.start
            while t < r.end:
                assert policy.window_at(t) is not None, f"{r.programme} plays at {t} outside windows"
                t += timedelta(seconds=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), schedules())
def test_daily_caps_hold(policy, doc):
    run = simulate(policy, doc, [])
    per_day: dict = {}
    for r in sorted((r for r in run.rows if r.kind == "programme" and r.end and r.end > r.start),
                    key=lambda r: r.start):
        d = per_day.setdefault(r.start.date(), {"minutes": 0.0, "sessions": 0, "last": None, "session": 0.0})
        if d["last"] is None or (r.start - d["last"]).total_seconds() > policy.session_gap_minutes * 60:
            d["sessions"] += 1
            d["session"] = 0.0
        d["last"] = r.end
        length = (r.end - r.start).total_seconds() / 60
        d["minutes"] += length
        d["session"] += length
        assert d["session"] <= policy.max_session_minutes + 1e-6
    for d in per_day.values():
        assert d["minutes"] <= policy.max_minutes_per_day + 1e-6
        assert d["sessions"] <= policy.max_sessions_per_day


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), schedules(), disturbances)
def test_same_inputs_same_timeline(policy, doc, events):
    a = simulate(policy, doc, events)
    b = simulate(policy, doc, events)
    assert [(r.start, r.end, r.programme, r.gain_db) for r in a.rows] == [
        (r.start, r.end, r.programme, r.gain_db) for r in b.rows]
    assert a.log == b.log


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), schedules(), disturbances)
def test_nothing_plays_longer_than_planned_whatever_the_clock_does(policy, doc, events):
    run = simulate(policy, doc, events)
    planned = {}
    for p in doc.programmes:
        planned[p.id] = p.planned_s
    # sum of real play time per occurrence (by play id: a resume after an alert is the same occurrence)
    total: dict = {}
    for e in run.log:
        if e.kind == "programme":
            key = (e.ref, e.requested_start)
            total[key] = total.get(key, 0.0) + e.played_s
    for (ref, _), secs in total.items():
        assert secs <= planned[ref] + 2.5, f"{ref} played {secs} s of {planned[ref]} s"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), schedules(), st.integers(0, DAYS * 24 * 60 - 30))
def test_an_alert_always_wins(policy, doc, minute):
    start = at(FIRST.year, FIRST.month, FIRST.day)
    st_ = Station(policy, doc, TZ)
    run = DayRun(st_, start, keep_commands=True)
    run.send(E.Booted(clock_trusted=True, last_alive=start))
    run.run_until(start + timedelta(minutes=minute))
    n = len(run.commands)
    run.send(E.AlertReceived(Alert("x", run.now, run.now + timedelta(minutes=20), "actual", "alert", "minor",
                                   "Cháy", "Cháy rừng")))
    plays = [c for _, c in run.commands[n:] if isinstance(c, C.Play)]
    assert plays and plays[0].kind == "alert" and plays[0].gain_db == policy.alert_gain_db
