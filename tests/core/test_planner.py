from datetime import date, timedelta

import pytest

from firmware.core.planner import Planner
from tests.core.helpers import TZ, at, policy, prog, schedule

DAY = date(2026, 12, 1)  # a Tuesday


def plan(pol, *programmes, day=DAY):
    return Planner(schedule(*programmes), pol, TZ).day(day)


def hm(t):
    return t.strftime("%H:%M:%S")


def test_programme_runs_inside_its_window_at_the_capped_gain():
    (s,) = plan(policy(("05:30", "07:00", -6)), prog("tin", "06:00", 600, gain_db=-2))
    assert (hm(s.start), hm(s.end), s.gain_db, s.cap_db) == ("06:00:00", "06:10:00", -6, -6)
    assert "gain capped to -6.0 dB by window" in s.reasons


def test_gain_below_the_cap_is_kept():
    (s,) = plan(policy(("05:30", "07:00", -6)), prog("tin", "06:00", 600, gain_db=-9))
    assert s.gain_db == -9 and not any("capped" in r for r in s.reasons)


def test_programme_running_past_the_window_is_cut_at_its_end():
    (s,) = plan(policy(("05:30", "07:00", -6)), prog("tin", "06:50", 1200))
    assert hm(s.end) == "07:00:00" and "cut at window end 07:00" in s.reasons


def test_programme_continues_into_an_adjacent_window_at_that_windows_cap():
    a, b = plan(policy(("05:30", "07:00", -6), ("07:00", "08:00", -12)), prog("tin", "06:50", 1200))
    assert (hm(a.end), a.gain_db, hm(b.start), hm(b.end), b.gain_db) == ("07:00:00", -6, "07:00:00", "07:10:00", -12)
    assert b.offset_s == 600 and a.occurrence == b.occurrence


def test_start_outside_windows_is_refused():
    (s,) = plan(policy(("05:30", "07:00", -6)), prog("som", "04:45", 300))
    assert s.refused and "starts 04:45 on Tue, outside allowed windows 05:30-07:00" in s.reasons[0]


def test_priority_bulletin_is_inserted_at_the_next_boundary():
    segs = plan(policy(("05:30", "08:00", 0)), prog("tin", "06:00", 1800), prog("ubnd", "06:10", 120, level="priority"),
                prog("nhac", "06:30", 600))
    assert [(s.programme.id, hm(s.start)) for s in segs] == [
        ("tin", "06:00:00"), ("ubnd", "06:30:00"), ("nhac", "06:32:00")]
    assert any("inserted at 06:30" in r for r in segs[1].reasons)
    assert any("delayed" in r for r in segs[2].reasons)


@pytest.mark.parametrize(
    "a_level,b_level,first",
    [("normal", "normal", "a"), ("normal", "priority", "b"), ("priority", "normal", "a"), ("priority", "priority", "a")],
)
def test_same_start_is_resolved_by_level_then_declared_order(a_level, b_level, first):
    segs = plan(policy(("05:30", "08:00", 0)), prog("a", "06:00", 60, level=a_level), prog("b", "06:00", 60, level=b_level))
    assert segs[0].programme.id == first
    assert hm(segs[1].start) == "06:01:00"


def test_window_crossing_midnight_and_lookup_after_midnight():
    pol = policy(("21:00", "01:00", -10, ["sat"]))
    pl = Planner(schedule(prog("le-hoi", "23:30", 3600, days=["sat"])), pol, TZ)
    (s,) = pl.day(date(2026, 12, 5))
    assert s.end == at(2026, 12, 6, 0, 30)
    assert pl.at(at(2026, 12, 6, 0, 15)) == s
    assert pl.at(at(2026, 12, 6, 0, 30)) is None


def test_window_ending_at_24_00_cuts_at_midnight_on_new_years_eve():
    pl = Planner(schedule(prog("giao-thua", "23:50", 1200)), policy(("23:00", "24:00", -3)), TZ)
    (s,) = pl.day(date(2026, 12, 31))
    assert s.end == at(2027, 1, 1) and "cut at window end 00:00" in s.reasons


def test_leap_day_programme():
    pl = Planner(schedule(prog("nhuan", "06:00", 60, recurrence={"dates": ["2028-02-29"]})),
                 policy(("05:00", "07:00", 0)), TZ)
    assert len(pl.day(date(2028, 2, 29))) == 1
    assert pl.day(date(2028, 3, 1)) == ()


def test_session_cap_refuses_a_third_session():
    pol = policy(("05:00", "22:00", 0), max_sessions_per_day=2, session_gap_minutes=10)
    segs = plan(pol, prog("a", "06:00", 60), prog("b", "12:00", 60), prog("c", "18:00", 60))
    assert [s.refused for s in segs] == [False, False, True]
    assert "session cap, already 2 session(s) today (max 2)" in segs[2].reasons[0]


def test_items_close_together_share_a_session_and_its_minute_cap():
    pol = policy(("05:00", "22:00", 0), max_sessions_per_day=1, max_session_minutes=15, session_gap_minutes=10)
    segs = plan(pol, prog("a", "06:00", 600), prog("b", "06:15", 600))
    assert not segs[1].refused and segs[1].duration_s == 300
    assert "capped: cut after 5 min (session limit 15 min)" in segs[1].reasons


def test_daily_minutes_cap():
    pol = policy(("05:00", "22:00", 0), max_minutes_per_day=20)
    segs = plan(pol, prog("a", "06:00", 900), prog("b", "17:00", 900), prog("c", "18:00", 60))
    assert segs[1].duration_s == 300 and segs[2].refused
    assert "daily limit" in segs[2].reasons[0]


def test_at_and_next_change():
    pl = Planner(schedule(prog("a", "06:00", 600), prog("b", "17:00", 60)), policy(("05:30", "19:00", 0)), TZ)
    assert pl.at(at(2026, 12, 1, 6, 5)).programme.id == "a"
    assert pl.at(at(2026, 12, 1, 6, 10)) is None
    assert pl.next_change(at(2026, 12, 1, 6, 5)) == at(2026, 12, 1, 6, 10)
    assert pl.next_change(at(2026, 12, 1, 17, 1)) == at(2026, 12, 2, 6, 0)
    assert pl.next_start(at(2026, 12, 1, 6, 0)).start == at(2026, 12, 1, 17, 0)


def test_plan_of_a_day_is_the_same_however_it_is_reached():
    progs = [prog(f"p{i}", f"{6 + i // 4:02d}:{(i % 4) * 15:02d}", 700) for i in range(20)]
    a = Planner(schedule(*progs), policy(("05:30", "12:00", -3)), TZ)
    b = Planner(schedule(*progs), policy(("05:30", "12:00", -3)), TZ)
    for k in range(5, -1, -1):
        b.day(DAY + timedelta(days=k))
    assert a.day(DAY) == b.day(DAY)


def test_a_programme_shorter_than_a_second_is_planned_not_refused():
    (s,) = plan(policy(("05:30", "07:00", -6)), prog("jingle", "06:00", 0.5))
    assert not s.refused and s.duration_s == 0.5
