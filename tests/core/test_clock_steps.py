"""Clock steps while the station runs or boots: what plays carries on, only the unknown is reported missed."""

from datetime import timedelta

import pytest

from firmware.core import commands as C
from firmware.core import events as E
from firmware.core.station import Station
from simulator.dayrun import DayRun
from tests.core.helpers import TZ, at, policy, prog, schedule

MORNING = policy(("05:30", "07:00", -6), ("17:00", "19:00", -12))
PROGRAMMES = (prog("tin-sang", "05:30", 900), prog("nhac", "05:50", 600, gain_db=-8),
              prog("toi", "17:30", 1200, gain_db=-3))


def station(*programmes):
    return Station(MORNING, schedule(*(programmes or PROGRAMMES)), TZ)


def plays(run, ref=None):
    return [c for _, c in run.commands if isinstance(c, C.Play) and (ref is None or c.ref == ref)]


# (programme playing, when the step comes, step in seconds, its planned length)
BACKWARD_STEPS = [
    ("tin-sang", at(2026, 12, 1, 5, 40), -3600, 900),  # NTP fixes a clock an hour fast, mid-bulletin
    ("tin-sang", at(2026, 12, 1, 5, 31), -600, 900),
    ("tin-sang", at(2026, 12, 1, 5, 44), -60, 900),
    ("nhac", at(2026, 12, 1, 5, 55), -7200, 600),
    ("toi", at(2026, 12, 1, 17, 31), -86400, 1200),  # a whole day back
]


@pytest.mark.parametrize(("ref", "when", "step_s", "planned_s"), BACKWARD_STEPS)
def test_a_backward_step_lets_the_programme_that_plays_carry_on_to_its_planned_length(ref, when, step_s, planned_s):
    run = DayRun(station(), at(2026, 12, 1, 5, 0), keep_commands=True)
    run.send(E.Booted(clock_trusted=True, last_alive=at(2026, 12, 1, 5, 0)))
    run.run_until(when)
    n = len(run.commands)
    run.step_clock(step_s)
    run.run_until(when + timedelta(hours=6))
    stops = [c for t, c in run.commands[n:] if isinstance(c, C.Stop) and c.reason != "planned end"]
    assert stops == [], "the step stopped what was playing"
    entry = next(e for e in run.log if e.ref == ref)
    assert entry.result == "played" and entry.played_s == pytest.approx(planned_s)
    assert len(plays(run, ref)) == 1  # played once, in one piece: never twice, never resumed


def test_after_a_backward_step_the_morning_does_not_come_round_again():
    run = DayRun(station(), at(2026, 12, 1, 5, 0), keep_commands=True)
    run.send(E.Booted(clock_trusted=True, last_alive=at(2026, 12, 1, 5, 0)))
    run.run_until(at(2026, 12, 1, 5, 40))
    run.step_clock(-3600)  # tin-sang carries on to 04:45 by the corrected clock; nothing else repeats
    run.run_until(at(2026, 12, 1, 20, 0))
    assert [p.ref for p in plays(run)] == ["tin-sang", "nhac", "toi"]
    assert [e.result for e in run.log] == ["played", "played", "played"]


# (last alive, by the good clock; when NTP sets the clock right; programmes that may be reported missed)
STALE_BOOTS = [
    # off from 05:35 to 17:35: tin-sang (05:30) was accounted for before, nhac was missed
    (at(2026, 12, 1, 5, 35), at(2026, 12, 1, 17, 35), ["nhac"]),
    # off for two days: only what fell after 28 Nov 12:00, never the week before
    (at(2026, 11, 28, 12, 0), at(2026, 11, 30, 6, 10),
     ["toi@2026-11-28", "tin-sang@2026-11-29", "nhac@2026-11-29", "toi@2026-11-29", "tin-sang@2026-11-30",
      "nhac@2026-11-30"]),
    # off for a minute, nothing due in it
    (at(2026, 12, 1, 12, 0), at(2026, 12, 1, 12, 1), []),
]


@pytest.mark.parametrize(("last_alive", "set_right", "may_miss"), STALE_BOOTS)
def test_a_forward_step_from_a_stale_boot_reports_only_what_fell_after_the_last_alive_time(
        last_alive, set_right, may_miss):
    stale = at(2015, 1, 1, 0, 0)  # no RTC: the Pi boots with the time of its image
    run = DayRun(station(), stale, keep_commands=True)
    run.send(E.Booted(clock_trusted=False, last_alive=last_alive))
    run.run_until(stale + timedelta(minutes=1))
    run.step_clock((set_right - run.now).total_seconds())
    run.send(E.ClockTrustChanged(True))
    missed = [e for e in run.log if e.result == "missed"]
    assert all(e.requested_start >= last_alive for e in missed), [(e.ref, e.requested_start) for e in missed]
    named = [f"{e.ref}@{e.requested_start:%Y-%m-%d}" for e in missed]
    assert named == [m if "@" in m else f"{m}@{set_right:%Y-%m-%d}" for m in may_miss]
