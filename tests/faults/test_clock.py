"""Wall-clock faults on a running station: steps of +-1 h, and a boot at a stale time before NTP syncs.

The station runs in real time on a `SteppableClock`; a step takes effect at once and the runtime notices it on
its next wake (at most 2 s later). Negative checks ("it did not play again") wait on the recorder's condition
with a timeout long enough for the station's clock to cross the instant in question."""

from __future__ import annotations

from datetime import datetime, timedelta

from firmware.adapters.statefile import StateStore
from firmware.core import commands as C
from simulator.clock import SteppableClock
from simulator.sinks import PacedSink
from simulator.station import sim_app
from tests.scenarios.harness import TZ, Recorder, config, schedule, start_station, write_key

WINDOWS = (("05:00", "08:00", -6.0),)


def tone(pid, start, seconds):
    return {"id": pid, "title": pid, "start": start, "recurrence": {"days": "daily"},
            "source": {"type": "tone", "kind": "test", "duration_s": seconds}}


def plays(rec, ref):
    return [p for p in rec.of(C.Play) if p.ref == ref]


def test_clock_stepped_back_an_hour_does_not_play_a_programme_again(tmp_path):
    write_key(tmp_path)
    doc = schedule(tone("a", "06:00", 1.0), tone("b", "06:01", 1.0))
    app, sink, rec = start_station(config(tmp_path, windows=WINDOWS), doc=doc,
                                   at=datetime(2026, 12, 1, 5, 59, 58, tzinfo=TZ))
    clock = app.clock
    try:
        assert rec.wait_for(lambda r: [e.ref for e in r.reports()] == ["a"], 20), rec.commands
        clock.step(-3600)  # 05:00: a technician sets the wrong time zone, or NTP corrects a fast clock
        # ... and the hour passes again: wall time crosses 06:00 once more
        clock.step((datetime(2026, 12, 1, 5, 59, 59, tzinfo=TZ) - clock.wall()).total_seconds())
        assert not rec.wait_for(lambda r: len(plays(r, "a")) > 1, 4), "a played twice"
        assert clock.wall() > datetime(2026, 12, 1, 6, 0, 1, tzinfo=TZ)  # the 4 s did cross 06:00
        clock.step((datetime(2026, 12, 1, 6, 0, 59, tzinfo=TZ) - clock.wall()).total_seconds())
        assert rec.wait_for(lambda r: any(e.ref == "b" for e in r.reports()), 20), rec.commands  # still works
    finally:
        app.stop()
    assert len(plays(rec, "a")) == 1
    assert [(e.ref, e.result) for e in rec.reports()] == [("a", "played"), ("b", "played")]


def test_clock_stepped_forward_an_hour_misses_what_it_skipped_without_a_burst(tmp_path):
    write_key(tmp_path)
    doc = schedule(tone("a", "06:00", 62.0), tone("b", "06:30", 1.0), tone("c", "07:00", 300.0))
    app, sink, rec = start_station(config(tmp_path, windows=WINDOWS), doc=doc,
                                   at=datetime(2026, 12, 1, 6, 0, 57, tzinfo=TZ))
    try:
        assert rec.wait_for(lambda r: any(e.ref == "a" for e in r.reports()), 20), rec.commands
        app.clock.step(3600)  # 07:01: an hour skipped (NTP after a slow RTC-less boot)
        assert rec.wait_for(lambda r: plays(r, "c"), 20), rec.commands
        assert rec.wait_for(lambda r: any(e.ref == "b" for e in r.reports()), 10), rec.reports()
    finally:
        app.stop()
    assert plays(rec, "b") == []  # the skipped 06:30 programme is not played late
    [b] = [e for e in rec.reports() if e.ref == "b"]
    assert b.result == "missed", b
    [c] = plays(rec, "c")
    assert c.offset_s > 30  # joined in progress at its offset, not started from the top


def test_boot_at_a_stale_time_plays_nothing_until_ntp_syncs_then_plays_once(tmp_path):
    write_key(tmp_path)
    cfg = config(tmp_path)
    truth = datetime(2026, 12, 1, 6, 0, 1, tzinfo=TZ)
    StateStore(tmp_path / "state").save_times(last_alive=truth - timedelta(minutes=5),
                                              last_trusted=truth - timedelta(minutes=5))
    stale = datetime(2026, 11, 29, 5, 59, 58, tzinfo=TZ)  # a Pi without RTC after two days without power
    clock = SteppableClock(TZ, offset_s=(stale - datetime.now(TZ)).total_seconds(), synced=False)
    doc = schedule(tone("a", "06:00", 30.0))
    rec = Recorder()
    app = sim_app(cfg, sink=PacedSink(cfg.audio.rate_hz), clock=clock, schedule=doc, on_command=rec)
    app.start()
    try:
        # the stale clock crosses 06:00 (of the wrong day): nothing may play on it
        assert not rec.wait_for(lambda r: r.of(C.Play), 4), rec.of(C.Play)
        assert clock.wall() > stale + timedelta(seconds=3)
        clock.step((truth - clock.wall()).total_seconds())  # NTP: the right date, just after 06:00
        clock.set_synced(True)
        assert rec.wait_for(lambda r: plays(r, "a"), 20), rec.commands
        assert not rec.wait_for(lambda r: len(plays(r, "a")) > 1, 3)
    finally:
        app.stop()
    [(when, play)] = [(w, c) for w, c in rec.commands if isinstance(c, C.Play)]
    assert when.date() == truth.date()  # decided on the synced clock
    assert play.offset_s > 0  # joined in progress after the sync
