"""The fleet simulator: many stations (the daemon's own code) on shared loops against a real mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from district.alerts import build_alert, publish_alert
from district.mqtt import DistrictClient
from firmware.core import commands as C
from firmware.core import events as E
from firmware.core.sources import ToneSpec
from firmware.protocol.topics import Scope
from simulator.broker import Mosquitto
from simulator.fleet import Fleet, FleetOptions, Timers, VirtualPlayer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker():
    with Mosquitto(extra_conf="max_connections -1\n", persistence=False) as b:
        yield b


class Events:
    def __init__(self):
        self.items: list = []
        self.cond = threading.Condition()

    def put(self, ev) -> None:
        with self.cond:
            self.items.append(ev)
            self.cond.notify_all()

    def wait_for(self, pred, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.items), timeout)


def _play(pid: str, seconds: float, **kw) -> C.Play:
    return C.Play(pid, "programme", pid, ToneSpec("test", seconds), -6.0, -6.0, **kw)


def test_virtual_player_starts_then_ends_a_play_when_its_source_runs_out():
    timers, evs = Timers(), Events()
    firsts = []
    try:
        player = VirtualPlayer("s1", timers, evs.put, on_first_block=firsts.append)
        player.play(_play("p1", 0.3))
        assert evs.wait_for(lambda xs: any(isinstance(x, E.PlaybackEnded) for x in xs))
    finally:
        timers.close()
    assert [type(x) for x in evs.items] == [E.PlaybackStarted, E.PlaybackEnded]
    assert evs.items[1].completed and evs.items[1].play_id == "p1"
    assert [f.play_id for f in firsts] == ["p1"]


def test_virtual_player_ends_a_stopped_or_preempted_play_as_not_completed():
    timers, evs = Timers(), Events()
    try:
        player = VirtualPlayer("s1", timers, evs.put)
        player.play(_play("long", 3600))
        assert evs.wait_for(lambda xs: any(isinstance(x, E.PlaybackStarted) for x in xs))
        player.play(_play("next", 3600))  # preempts
        player.stop("next")
        assert evs.wait_for(lambda xs: sum(isinstance(x, E.PlaybackEnded) for x in xs) == 2)
        player.play(_play("joined", 10.0, offset_s=9.9))  # joined near its end: ends soon, completed
        assert evs.wait_for(lambda xs: sum(isinstance(x, E.PlaybackEnded) for x in xs) == 3)
    finally:
        timers.close()
    ended = [x for x in evs.items if isinstance(x, E.PlaybackEnded)]
    assert [(x.play_id, x.completed) for x in ended] == [("long", False), ("next", False), ("joined", True)]


def test_the_light_reporter_answers_everything_the_runtime_asks_of_a_reporter():
    import ast
    import inspect

    from firmware import runtime
    from simulator.fleet.reporting import LightReporter

    tree = ast.parse(inspect.getsource(runtime))
    asked = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
             and isinstance(n.value, ast.Attribute) and n.value.attr == "reporter"}
    assert asked >= {"report", "state_changed", "update"}  # the extraction found the calls
    assert not [name for name in asked if not hasattr(LightReporter, name)]


def test_every_station_of_a_fleet_plays_a_district_alert_once_and_acks_done(broker, tmp_path, caplog):
    n = 24
    firsts = []
    lock = threading.Lock()

    def on_first(fb):
        with lock:
            firsts.append(fb)

    fleet = Fleet(FleetOptions(stations=n, communes=3, broker_url=broker.url, loops=2), tmp_path,
                  on_first_block=on_first)
    acks: dict[str, list[str]] = {}
    cond = threading.Condition()

    def on_ack(msg):
        doc = json.loads(msg.payload)
        with cond:
            acks.setdefault(doc["station"], []).append(doc["state"])
            cond.notify_all()

    with DistrictClient.from_url(broker.url) as district:
        district.subscribe(["loa/v1/hv/+/+/ack"], on_ack)
        fleet.start()
        try:
            assert fleet.wait(lambda s: s.subscribed == n, 30), fleet.summary()
            now = fleet.clock.wall()
            alert = build_alert(scope=Scope("hv"), status="actual", now=now, expires_in=timedelta(minutes=5),
                                text="Thử.", severity="severe", repeat=1, tone=False)
            publish_alert(district, alert, fleet.key, now)
            with cond:
                assert cond.wait_for(lambda: len(acks) == n and all("done" in v for v in acks.values()), 30), acks
            summary = fleet.summary()
        finally:
            fleet.stop()
    alert_firsts = [f for f in firsts if f.ref == alert.id]
    assert sorted(f.station for f in alert_firsts) == sorted(st.id for st in fleet.stations)  # once each
    failed = [r.getMessage() for r in caplog.records if r.name == "firmware.runtime" and r.levelname == "ERROR"]
    assert failed == [], failed[:3]  # no command of any station failed on the way
    assert summary.faults == 0 and summary.online == n
    communes = {st.scope.commune for st in fleet.stations}
    assert communes == {"c00", "c01", "c02"}


def test_a_forged_alert_plays_nowhere_and_every_station_says_why(broker, tmp_path):
    from firmware.protocol.envelope import seal
    from firmware.protocol.keys import generate

    n = 6
    fleet = Fleet(FleetOptions(stations=n, broker_url=broker.url, loops=1), tmp_path)
    rejected: list[str] = []
    cond = threading.Condition()

    def on_ack(msg):
        doc = json.loads(msg.payload)
        with cond:
            if doc["state"] == "rejected":
                rejected.append(doc["station"])
            cond.notify_all()

    with DistrictClient.from_url(broker.url) as district:
        district.subscribe(["loa/v1/hv/+/+/ack"], on_ack)
        fleet.start()
        try:
            assert fleet.wait(lambda s: s.subscribed == n, 30)
            now = fleet.clock.wall()
            alert = build_alert(scope=Scope("hv"), status="actual", now=now, expires_in=timedelta(minutes=5),
                                text="Giả.", repeat=1, tone=False)
            district.publish("loa/v1/hv/alert", seal(alert.to_bytes(), generate("hv")), qos=1)
            with cond:
                assert cond.wait_for(lambda: len(rejected) == n, 20), rejected
            plays = fleet.summary().plays
        finally:
            fleet.stop()
    assert plays == 0


def test_loa_sim_fleet_runs_a_fleet_and_prints_its_summary(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "fleet", "--stations", "8", "--communes", "2", "--start-broker",
         "--duration", "3", "--interval", "0.5", "--no-schedule", "--state-dir", str(tmp_path / "fleet")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert "stations 8" in last and "faults 0" in last, proc.stdout
    assert len(list((tmp_path / "fleet" / "stations").iterdir())) == 8  # one state dir per station


def test_a_fleet_over_two_processes_plays_an_alert_everywhere_once(broker, tmp_path):
    from simulator.fleet import ProcessFleet

    n = 10
    firsts = []
    lock = threading.Lock()

    def on_first(fb):
        with lock:
            firsts.append(fb)

    fleet = ProcessFleet(FleetOptions(stations=n, communes=2, broker_url=broker.url), tmp_path, procs=2,
                         on_first_block=on_first)
    fleet.start()
    try:
        assert fleet.wait(lambda s: s.subscribed == n, 60), fleet.summary()
        now = fleet.clock.wall()
        alert = build_alert(scope=Scope("hv"), status="actual", now=now, expires_in=timedelta(minutes=5),
                            text="Thử.", repeat=1, tone=False)
        with DistrictClient.from_url(broker.url) as district:
            publish_alert(district, alert, fleet.key, now)
        assert fleet.wait(lambda s: s.plays == n, 30), fleet.summary()
    finally:
        fleet.stop()
    stations = sorted(f.station for f in firsts if f.ref == alert.id)
    assert stations == [f"s{i:04d}" for i in range(n)]  # every id once: the two slices neither overlap nor miss


def test_fleet_stations_with_the_real_outbox_deliver_their_play_log(broker, tmp_path):
    n = 4
    fleet = Fleet(FleetOptions(stations=n, broker_url=broker.url, loops=1, reporting="outbox"), tmp_path)
    entries: dict[str, dict] = {}
    cond = threading.Condition()

    def on_report(msg):
        doc = json.loads(msg.payload)
        with cond:
            if doc.get("kind") == "playlog":
                entries[doc["id"]] = doc
            cond.notify_all()

    with DistrictClient.from_url(broker.url) as district:
        district.subscribe(["loa/v1/hv/+/+/report"], on_report)
        fleet.start()
        try:
            assert fleet.wait(lambda s: s.subscribed == n, 30)
            now = fleet.clock.wall()
            alert = build_alert(scope=Scope("hv"), status="actual", now=now, expires_in=timedelta(minutes=5),
                                text="Thử.", repeat=1, tone=False)
            publish_alert(district, alert, fleet.key, now)
            with cond:
                assert cond.wait_for(lambda: len(entries) == n, 30), entries
            assert all((tmp_path / "stations" / st.id / "outbox.sqlite").exists() for st in fleet.stations)
        finally:
            fleet.stop()
    assert sorted(d["station"] for d in entries.values()) == sorted(st.id for st in fleet.stations)
    assert {d["result"] for d in entries.values()} == {"played"}
