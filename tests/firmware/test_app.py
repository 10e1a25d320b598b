"""The composition root's own promises (`firmware.app.App`): whatever reads the station's state does so on the
runtime thread, the one owner of the Station."""

from __future__ import annotations

import threading
from datetime import datetime

from firmware.runtime import Call
from simulator.sinks import PacedSink
from simulator.station import sim_app
from tests.scenarios.harness import TZ, clock_at, config, schedule, write_key
from tests.waiting import wait_until

SHA = "ab" * 32


def test_start_reads_the_plan_for_prefetch_on_the_runtime_thread_only(tmp_path):
    write_key(tmp_path)
    cfg = config(tmp_path)
    doc = schedule({"id": "tin", "title": "Tin", "level": "normal", "start": "05:30", "recurrence": {"days": "daily"},
                    "source": {"type": "file", "url": "http://127.0.0.1:9/tin.mp3", "sha256": SHA,
                               "duration_s": 60}})
    app = sim_app(cfg, sink=PacedSink(cfg.audio.rate_hz, latency_s=0.02), clock=clock_at(datetime(2026, 12, 1, 5, 0,
                                                                                             tzinfo=TZ)),
                  schedule=doc)
    # Hold the runtime thread in a call of ours: while it is held, nothing else may read its planner (the
    # planner's day cache is the runtime thread's to change), so the prefetcher cannot learn its needs yet.
    held, release = threading.Event(), threading.Event()
    app.events.put(Call(lambda rt: (held.set(), release.wait(10))))
    try:
        app.start()
        assert held.wait(10)
        assert app.parts.prefetcher.missing() == [], "the plan was read off the runtime thread"
        release.set()
        assert wait_until(lambda: [m.sha256 for m in app.parts.prefetcher.missing()] == [SHA], timeout=10)
    finally:
        release.set()
        app.stop()


def test_a_boot_on_a_stale_clock_keeps_the_last_alive_time_it_found(tmp_path):
    # No RTC: the Pi boots in 2015 and NTP is not there yet. The last alive time the previous run left is the
    # floor of what can be reported missed once the clock is set right: a write of "alive in 2015" over it
    # would make the next boot report a week of programmes the station had already accounted for.
    from firmware.adapters.statefile import StateStore
    from simulator.clock import SteppableClock

    write_key(tmp_path)
    cfg = config(tmp_path)
    good = datetime(2026, 12, 1, 5, 0, tzinfo=TZ)
    StateStore(cfg.paths.state_dir).save_times(last_alive=good, last_trusted=good)
    clock = SteppableClock(TZ, offset_s=(datetime(2015, 1, 1, tzinfo=TZ) - datetime.now(TZ)).total_seconds(),
                           synced=False)
    app = sim_app(cfg, sink=PacedSink(cfg.audio.rate_hz, latency_s=0.02), clock=clock, schedule=schedule())
    try:
        app.start()
        assert not app.parts.runtime.clock_trusted
    finally:
        app.stop()
    store = StateStore(cfg.paths.state_dir)
    assert store.last_alive == good and store.last_trusted == good
