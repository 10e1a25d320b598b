"""A 2-minute network cut during a schedule (issues 5 and 8): programmes play on time, reports arrive after,
each once.

The cut lasts 120 s of real time, as the issues ask. It begins as a black hole (bytes vanish, nothing is
closed), so only keepalives notice it: the station's link drops its connection and retries, the broker
publishes the station's Will. Then the proxy refuses connections for the rest of the cut, and the station's
link keeps retrying with its backoff (1, 2, 4 ... 64 s) until one attempt after the restore gets through.

Schedule starts are HH:MM, so a 120 s cut holds two of them: "a" plays about 6 s into the cut (its report may
still go into the black hole, before the link notices), "b" about 66 s in for 30 s, and "c", due with "b",
follows it about 96 s in. Real duration about 2.5 minutes: 120 s of cut, then the wait for the station's next
retry (10-20 s after the restore by its backoff; 64 s at most)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

import pytest

from firmware.adapters.mqtt import offline_within_s
from firmware.core import commands as C
from tests.faults.helpers import Collector
from tests.scenarios.harness import TZ, config, schedule, start_station, write_key
from tests.waiting import wait_until

CUT_S = 120.0
KEEPALIVE_S = 5  # tests.scenarios.harness.config


def tone(pid, start, seconds):
    return {"id": pid, "title": pid, "start": start, "recurrence": {"days": "daily"},
            "source": {"type": "tone", "kind": "test", "duration_s": seconds}}


@pytest.fixture
def district(broker):
    """The district's view: reports, and the station's retained status (birth `online`, Will `offline`)."""
    with Collector(broker.url, topics=("loa/v1/+/+/+/report", "loa/v1/+/+/+/status")) as c:
        yield c


def states(district) -> list[str]:
    with district.cond:
        return [d.get("state") for t, d in district.messages if t.endswith("/status")]


def playlog_copies(district) -> Counter:
    """How many times each play-log entry reached the district (the collector's `playlog()` dedups)."""
    with district.cond:
        return Counter(d["id"] for t, d in district.messages
                       if t.endswith("/report") and d.get("kind") == "playlog")


@pytest.mark.slow
def test_programmes_play_on_time_through_a_two_minute_network_cut_and_their_reports_arrive_after(
        tmp_path, proxy, district):
    write_key(tmp_path)
    doc = schedule(tone("a", "06:00", 1.0), tone("b", "06:01", 30.0), tone("c", "06:01", 1.0))
    app, sink, rec = start_station(config(tmp_path, broker_url=proxy.url), doc=doc,
                                   at=datetime(2026, 12, 1, 5, 59, 53, tzinfo=TZ))
    try:
        assert wait_until(lambda: app.parts.link.connected, 10)
        assert not rec.of(C.Play), "the station connected so late that a programme played before the cut"
        accepted = proxy.accepted
        proxy.drop()
        restore_at = time.monotonic() + CUT_S

        def left() -> float:
            return max(0.0, restore_at - time.monotonic())

        # Only keepalives can tell a black hole: the station drops its dead connection and dials again...
        assert proxy.wait_for(lambda p: p.accepted > accepted, 6 * KEEPALIVE_S), "the link never noticed"
        proxy.cut()  # ...and from now on every attempt is refused
        # ...and the district sees it offline: the broker lost its connection and published its Will
        offline = district.wait(lambda c: "offline" in states(c), offline_within_s(KEEPALIVE_S))
        assert offline, states(district)
        assert rec.wait_for(lambda r: len(r.reports()) == 3, left()), rec.commands
        # the rest of the cut: nothing may reach the district
        assert not district.wait(lambda c: c.playlog(), left()), "reports crossed a cut link"
        assert proxy.refused >= 3, proxy.refused  # the link kept retrying through the cut
        seen = len(states(district))
        proxy.restore()
        # the station's next attempt comes by its backoff (64 s at most this far into the cut)
        assert district.wait(lambda c: len(c.playlog()) == 3, 90), district.messages
        assert district.wait(lambda c: "online" in states(c)[seen:], 10), states(district)
        assert app.parts.outbox is not None
        assert wait_until(lambda: app.parts.outbox.depth() == 0, 10), app.parts.outbox.depth()
    finally:
        app.stop()
    entries = rec.reports()
    assert [(e.ref, e.result) for e in entries] == [("a", "played"), ("b", "played"), ("c", "played")]
    plays = rec.of(C.Play)
    assert [p.ref for p in plays] == ["a", "b", "c"]
    assert all(p.offset_s < 1.0 for p in plays), plays  # started on time, not joined late
    assert playlog_copies(district) == Counter(e.entry_id for e in entries)  # all of them, each once
    assert {d["result"] for d in district.playlog().values()} == {"played"}


def test_a_flapping_link_loses_no_report(tmp_path, proxy, collector):
    write_key(tmp_path)
    doc = schedule(*(tone(f"p{i}", "06:00", 0.5) for i in range(6)))
    app, sink, rec = start_station(config(tmp_path, broker_url=proxy.url), doc=doc,
                                   at=datetime(2026, 12, 1, 5, 59, 58, tzinfo=TZ))
    try:
        for i in range(1, 6):
            # drop the link each time another programme has been reported
            assert rec.wait_for(lambda r, i=i: len(r.reports()) >= i, 30)
            proxy.flap()
        assert rec.wait_for(lambda r: len(r.reports()) == 6, 30)
        assert collector.wait(lambda c: len(c.playlog()) == 6, 60), collector.playlog().keys()
    finally:
        app.stop()
    assert proxy.accepted >= 2
    assert sorted(collector.playlog()) == sorted(e.entry_id for e in rec.reports())
