"""A whole reporter (outbox, sender, telemetry, daily) and the district collector on a real mosquitto."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from district.collector import Collector
from district.db import DistrictDb
from district.mqtt import parse_broker_url
from firmware.adapters.mqtt import station_link
from firmware.protocol.reports import StationIds
from firmware.reporting import Outbox, Reporter
from tests.reporting.helpers import TZ, RealClock, entry, wait_for

IDS = StationIds("hoa-vang", "hoa-bac", "hb-07")
SID = "hoa-vang/hoa-bac/hb-07"


class Station:
    def __init__(self, url: str, state_dir, outbox_cls=Outbox, **reporter_kwargs):
        clock = RealClock()
        self.outbox = outbox_cls(state_dir / "outbox.sqlite")
        box: list[Reporter] = []
        self.link = station_link(url, IDS, fw="t", boot_id="boot-x", config_hash="", wall=clock.wall,
                                 on_link=lambda up: box and box[0].on_link(up), keepalive_s=5,
                                 reconnect_min_s=0.2, reconnect_max_s=1)
        self.reporter = Reporter(self.link, self.outbox, IDS, clock, boot_id="boot-x", **reporter_kwargs)
        box.append(self.reporter)

    def start(self):
        self.link.start()
        self.reporter.start()
        return self

    def stop(self):
        self.reporter.stop()
        self.link.stop()
        self.outbox.close()


@pytest.fixture
def district(broker, tmp_path):
    db = DistrictDb(tmp_path / "district.sqlite")
    c = Collector(db, url=parse_broker_url(broker.url), client_id="collector-1")
    c.start()
    yield c
    c.stop()
    db.close()


def rows(db, table: str) -> list[str]:
    return [r[0] for r in db.query(f"SELECT id FROM {table} WHERE sid = ?", (SID,))]


@pytest.mark.parametrize("down_s", [1.0, 4.0])
def test_reports_made_while_the_broker_is_down_all_arrive_once_afterwards(broker, tmp_path, district, down_s):
    station = Station(broker.url, tmp_path / "st").start()
    try:
        wait_for(lambda: station.link.connected, 5, "station online")
        for i in range(5):
            station.reporter.report(entry(f"before-{i}"))
        wait_for(lambda: len(rows(district.db, "playlog")) == 5, 10, "reports before the outage")
        broker.stop()
        wait_for(lambda: not station.link.connected, 5, "station sees the outage")
        for i in range(20):
            station.reporter.report(entry(f"during-{i}"))
        station.reporter.daily_now(date(2026, 12, 3))
        # The outage lasts down_s: measured on the station's own outbox, which must hold everything meanwhile.
        wait_for(lambda: station.outbox.depth() >= 21, 5, "reports queued in the outbox")
        deadline = datetime.now() + timedelta(seconds=down_s)
        wait_for(lambda: datetime.now() >= deadline, down_s + 1, "the outage to last")
        assert station.outbox.depth() >= 21
        broker.start()
        wait_for(lambda: len(rows(district.db, "playlog")) == 25, 20, "all 25 play-log entries at the district")
        wait_for(lambda: station.outbox.depth() == 0, 10, "the outbox drained")
        ids = rows(district.db, "playlog")
        assert len(ids) == len(set(ids)) == 25
        in_arrival_order = [r[0] for r in district.db.query("SELECT id FROM playlog ORDER BY rowid")]
        assert in_arrival_order == [f"before-{i}" for i in range(5)] + [f"during-{i}" for i in range(20)]
        assert rows(district.db, "daily") == ["hb-07-daily-2026-12-03"]
        assert district.rejected == {}
    finally:
        station.stop()


def test_telemetry_on_change_and_on_interval_reaches_the_district(broker, tmp_path, district):
    thermal = tmp_path / "temp"
    thermal.write_text("48312\n")
    station = Station(broker.url, tmp_path / "st", telemetry_interval_s=0.5, min_change_gap_s=0,
                      thermal_path=thermal)
    station.start()
    try:
        wait_for(lambda: len(rows(district.db, "telemetry")) >= 2, 10, "periodic telemetry")
        (first,) = district.db.query("SELECT payload FROM telemetry WHERE sid = ? AND id LIKE '%-1'", (SID,))[0]
        assert json.loads(first)["cpu_temp_c"] == 48.3  # the first message is full
        station.reporter.state_changed("programme", "tin-sang", item="tin-sang", gain_db=-6.0, amp_on=True)
        found = wait_for(
            lambda: [json.loads(p) for (p,) in district.db.query(
                "SELECT payload FROM telemetry WHERE sid = ? AND state = 'programme'", (SID,))],
            10, "telemetry saying programme")
        t = found[0]
        assert (t["item"], t["gain_db"], t["amp_on"], t["detail"]) == ("tin-sang", -6.0, True, "tin-sang")
        assert t["link_uptime_s"] <= t["uptime_s"]
    finally:
        station.stop()


def test_a_stopped_station_is_offline_at_the_district(broker, tmp_path, district):
    station = Station(broker.url, tmp_path / "st").start()
    wait_for(lambda: district.db.stations() and district.db.stations()[0].state == "online", 5, "online")
    station.stop()
    wait_for(lambda: district.db.stations()[0].state == "offline", 5, "offline after a clean stop")


def test_daily_report_counts_the_days_entries_and_online_time(tmp_path):
    from tests.reporting.helpers import SetClock

    class NoLink:
        connected = False

        def publish(self, *a, **k):
            raise AssertionError("not connected: nothing is published")

    day = date(2026, 12, 3)
    clock = SetClock(datetime(2026, 12, 3, 5, 0, tzinfo=TZ))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    rep = Reporter(NoLink(), outbox, IDS, clock, boot_id="b")
    rep.on_link(True)
    clock.advance(6 * 3600)  # online 05:00-11:00
    rep.on_link(False)
    at = datetime(2026, 12, 3, 6, 0, tzinfo=TZ)
    rep.report(entry("p1", start=at))
    rep.report(entry("p2", start=at + timedelta(hours=1), result="partial", played_s=300))
    rep.report(entry("p3", start=at + timedelta(hours=2), result="missed"))
    rep.report(entry("a1", start=at + timedelta(hours=3), kind="alert", level="actual", played_s=90, requested_s=90))
    rep.report(entry("other-day", start=at + timedelta(days=1)))
    rep.state_changed("fault", "amplifier does not answer")
    clock.advance(-3 * 3600)  # 08:00 on the 3rd
    rep.alert_received("ref-a1")  # the alert that played: counted once
    rep.alert_received("test-1")  # a test alert: received, never played
    rep.alert_received("test-1")
    report = rep.daily_now(day)
    assert report.id == "hb-07-daily-2026-12-03"
    assert report.online_pct == 25.0
    assert (report.programmes_played, report.programmes_missed) == (2, 1)
    assert report.minutes_played == round((900 + 300 + 90) / 60, 2)
    assert report.minutes_requested == round((900 * 3 + 90) / 60, 2)
    assert report.by_level == {"normal": 3, "actual": 1}
    assert (report.alerts_received, report.alerts_played, report.faults) == (2, 1, 1)
    assert "hb-07-daily-2026-12-03" in outbox.ids()
    rep.stop()


def test_the_daily_report_is_built_after_local_midnight_and_once_per_day(tmp_path):
    from tests.reporting.helpers import SetClock

    class NoLink:
        connected = False

    clock = SetClock(datetime(2026, 12, 3, 23, 59, tzinfo=TZ))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    rep = Reporter(NoLink(), outbox, IDS, clock, boot_id="b", min_change_gap_s=0)
    rep.start()
    try:
        rep.report(entry("p1", start=datetime(2026, 12, 3, 18, 0, tzinfo=TZ)))
        wait_for(lambda: any(i.startswith("t-") for i in outbox.ids()), 5, "first telemetry")
        assert not any("daily" in i for i in outbox.ids())  # first run: no backlog of earlier days
        clock.advance(120)  # 00:01 on the 4th
        rep.state_changed("idle", "after midnight")  # wakes the reporter thread now rather than in <= 60 s
        wait_for(lambda: "hb-07-daily-2026-12-03" in outbox.ids(), 5, "the daily report of the 3rd")
        rep.state_changed("idle", "again")
        wait_for(lambda: sum(i.startswith("t-") for i in outbox.ids()) >= 3, 5, "telemetry after the change")
        assert [i for i in outbox.ids() if "daily" in i] == ["hb-07-daily-2026-12-03"]
    finally:
        rep.stop()


class FullCard(Outbox):
    """An outbox on a card that can be made full (the real thing is in tests/faults/test_disk.py, tmpfs)."""

    full = False

    def put(self, *args, **kwargs):
        if self.full:
            import sqlite3

            raise sqlite3.OperationalError("database or disk is full")
        return super().put(*args, **kwargs)


def test_reports_the_full_card_refused_reach_the_district_from_memory_and_are_stored_when_space_returns(
        broker, tmp_path, district):
    station = Station(broker.url, tmp_path / "st", outbox_cls=FullCard).start()
    try:
        wait_for(lambda: station.link.connected, 5, "station online")
        # the reporter's own first telemetry (on start / link up) must not fall into the full-card window,
        # or it would be dropped and counted too
        wait_for(lambda: rows(district.db, "telemetry"), 10, "the first telemetry")
        station.outbox.full = True
        station.reporter.report(entry("on-full-card-1"))
        station.reporter.report(entry("on-full-card-2"))
        station.reporter.telemetry_now()  # not kept: counted
        wait_for(lambda: set(rows(district.db, "playlog")) == {"on-full-card-1", "on-full-card-2"}, 10,
                 "the reports sent from memory")
        assert station.reporter.counters() == {"dropped_telemetry": 1, "dropped_reports": 0}
        station.outbox.full = False
        station.reporter.report(entry("after"))
        wait_for(lambda: len(rows(district.db, "playlog")) == 3, 10, "the report made after space returned")
        wait_for(lambda: station.outbox.depth() == 0 and len(station.reporter.unsaved) == 0, 10, "all settled")
    finally:
        station.stop()


def test_memory_for_refused_reports_is_bounded_and_every_loss_is_counted():
    from firmware.reporting.unsaved import UnsavedReports

    unsaved = UnsavedReports(max_items=2)
    for i in range(4):
        unsaved.keep(f"p{i}", "playlog", "t", b"x")
    unsaved.keep("t1", "telemetry", "t", b"x")
    assert unsaved.ids() == ["p2", "p3"]
    assert (unsaved.lost, unsaved.dropped_telemetry) == (2, 1)
