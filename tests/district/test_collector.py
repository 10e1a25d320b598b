"""The district collector: strict parsing, dedup, persistence across its own restarts, and the CLI views."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from benchmarks.telemetry_bytes import CountingProxy
from district.cli import main as district_main
from district.collector import Collector
from district.db import DistrictDb
from district.mqtt import DistrictClient, parse_broker_url
from firmware.adapters.mqtt import station_link
from firmware.protocol.reports import MAX_REPORT_BYTES, StationIds, Status, encode, playlog_from_entry
from tests.reporting.helpers import TZ, RealClock, entry, wait_for

ROOT = Path(__file__).resolve().parents[2]
IDS = StationIds("hoa-vang", "hoa-bac", "hb-01")
SID = "hoa-vang/hoa-bac/hb-01"
GOOD_TELEMETRY = {
    "v": 1, "kind": "telemetry", "id": "t-1", "station": "hb-01", "ts": "2026-11-26T11:00:00+07:00",
    "uptime_s": 10, "link_uptime_s": 5, "state": "idle", "outbox_depth": 0,
}


def tel(**changes) -> bytes:
    return json.dumps({**GOOD_TELEMETRY, **changes}).encode()


def playlog(entry_id: str, station: str = "hb-01") -> bytes:
    return encode(playlog_from_entry(entry(entry_id), station))


BAD = {
    "not json": (IDS.topic("telemetry"), b"{not json"),
    "a list": (IDS.topic("telemetry"), b"[1, 2]"),
    "unknown schema version": (IDS.topic("telemetry"), tel(v=2)),
    "unknown field": (IDS.topic("telemetry"), tel(extra="x")),
    "string for a number": (IDS.topic("telemetry"), tel(uptime_s="10")),
    "negative depth": (IDS.topic("telemetry"), tel(outbox_depth=-1)),
    "foreign telemetry": (IDS.topic("telemetry"), tel(station="hb-02")),
    "foreign play log": (IDS.topic("report"), playlog("e1", station="hb-02")),
    "oversize": (IDS.topic("report"), b'{"kind":"playlog","title":"' + b"x" * MAX_REPORT_BYTES + b'"}'),
    "unknown report kind": (IDS.topic("report"), b'{"v":1,"kind":"weekly","id":"w1","station":"hb-01"}'),
    "bad topic id": ("loa/v1/hoa-vang/hoa-bac/HB_01/telemetry", tel()),
    "not utf-8": (IDS.topic("status"), b"\xff\xfe\x00"),
    "status of another station": (IDS.topic("status"), encode(Status(state="online", station="hb-02", boot_id="b"))),
    "ack of another station": (
        IDS.topic("ack"),
        b'{"ref":"a1","state":"received","at":"2026-11-26T11:00:00+07:00","station":"hoa-vang/hoa-bac/hb-09"}',
    ),
}


@pytest.fixture
def db(tmp_path):
    d = DistrictDb(tmp_path / "district.sqlite")
    yield d
    d.close()


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_oversize_and_foreign_messages_are_rejected_logged_and_never_stored(db, caplog, case):
    topic, payload = BAD[case]
    collector = Collector(db)
    assert collector.handle(topic, payload) is False
    assert sum(collector.rejected.values()) == 1
    assert "rejected message on" in caplog.text
    counts = db.counts()
    assert counts["telemetry"] == counts["playlog"] == counts["transitions"] == counts["acks"] == 0


def test_a_report_received_twice_is_stored_once(db):
    collector = Collector(db)
    assert collector.handle(IDS.topic("report"), playlog("e1"))
    assert not collector.handle(IDS.topic("report"), playlog("e1"))
    assert collector.handle(IDS.topic("telemetry"), tel())
    assert not collector.handle(IDS.topic("telemetry"), tel())
    assert db.counts()["playlog"] == db.counts()["telemetry"] == 1
    assert collector.duplicates == {"report": 1, "telemetry": 1}


def test_acks_are_stored_per_station_ref_and_state(db):
    collector = Collector(db)
    ack = b'{"ref":"a1","state":"playing","at":"2026-11-26T11:00:00+07:00","station":"hoa-vang/hoa-bac/hb-01"}'
    assert collector.handle(IDS.topic("ack"), ack)
    assert db.query("SELECT sid, ref, state FROM acks") == [(SID, "a1", "playing")]


def test_bad_messages_on_a_real_broker_do_not_stop_the_collector(broker, db):
    collector = Collector(db, url=parse_broker_url(broker.url), client_id="c-bad")
    collector.start()
    try:
        with DistrictClient.from_url(broker.url) as pub:
            for topic, payload in BAD.values():
                pub.publish(topic, payload)
            pub.publish(IDS.topic("report"), playlog("good-1"))
        wait_for(lambda: db.counts()["playlog"] == 1, 5, "the good report after the bad ones")
        assert sum(collector.rejected.values()) == len(BAD)
        assert collector.connected
    finally:
        collector.stop()


class CollectorProcess:
    def __init__(self, url: str, db_path: Path, group: str | None):
        cmd = [sys.executable, "-m", "district.cli", "-v", "collect", "--broker", url, "--db", str(db_path),
               "--client-id", "collector-proc"]
        if group:
            cmd += ["--group", group]
        self.log = db_path.with_suffix(".log")
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()  # "collecting from ..." once subscribed (or "" if it died)
        assert line.startswith("collecting from"), line + self.log.read_text()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)


@pytest.mark.parametrize("group", [None, "district-a"])
def test_a_collector_killed_and_restarted_misses_nothing_published_meanwhile(broker, tmp_path, group):
    db_path = tmp_path / "district.sqlite"
    proc = CollectorProcess(broker.url, db_path, group)
    with DistrictClient.from_url(broker.url) as pub:
        pub.publish(IDS.topic("report"), playlog("before"))
        db = DistrictDb(db_path)
        try:
            wait_for(lambda: db.counts()["playlog"] == 1, 10, "the first report")
            proc.kill9()
            for i in range(20):
                pub.publish(IDS.topic("report"), playlog(f"meanwhile-{i}"))
            proc = CollectorProcess(broker.url, db_path, group)
            wait_for(lambda: db.counts()["playlog"] == 21, 10, "the 20 reports published while it was dead")
            assert proc.terminate() == 0
        finally:
            if proc.proc.poll() is None:
                proc.kill9()
            db.close()


def test_a_dead_station_shows_offline_in_status_within_its_keepalive(broker, tmp_path, capsys):
    db_path = tmp_path / "district.sqlite"
    db = DistrictDb(db_path)
    collector = Collector(db, url=parse_broker_url(broker.url), client_id="c-will")
    collector.start()
    with CountingProxy(broker.port) as proxy:
        link = station_link(proxy.url, IDS, fw="9.9", boot_id="b1", config_hash="", wall=RealClock().wall,
                            keepalive_s=1, reconnect_min_s=30, reconnect_max_s=30)
        link.start()
        try:
            wait_for(lambda: db.stations() and db.stations()[0].state == "online", 5, "online")
            assert district_main(["status", "--db", str(db_path)]) == 0
            assert "online" in capsys.readouterr().out
            proxy.freeze()  # the station's power is cut: no FIN, no DISCONNECT, only silence
            wait_for(lambda: db.stations()[0].state == "offline", 10, "the Will at the district")
        finally:
            proxy.thaw()
            link.stop()
    collector.stop()
    db.close()
    assert district_main(["status", "--db", str(db_path), "--commune", "hoa-bac"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(SID))
    assert " offline " in row
    assert district_main(["status", "--db", str(db_path), "--commune", "elsewhere"]) == 0
    assert "no stations in commune elsewhere" in capsys.readouterr().out


def test_kill_9_of_a_station_process_shows_it_offline_in_status(broker, tmp_path, capsys):
    db_path = tmp_path / "district.sqlite"
    db = DistrictDb(db_path)
    collector = Collector(db, url=parse_broker_url(broker.url), client_id="c-kill")
    collector.start()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.reporting.station_child", "--broker", broker.url,
         "--outbox", str(tmp_path / "outbox.sqlite"), "--count", "3", "--stay"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        wait_for(lambda: db.stations() and db.stations()[0].state == "online", 20, "the station online")
        wait_for(lambda: db.counts()["playlog"] == 3, 10, "its reports")
        assert district_main(["status", "--db", str(db_path)]) == 0
        assert " online " in capsys.readouterr().out
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        # The kernel closes the socket without an MQTT DISCONNECT: the broker publishes the Will at once.
        wait_for(lambda: db.stations()[0].state == "offline", 10, "offline after kill -9")
        assert district_main(["status", "--db", str(db_path)]) == 0
        assert " offline " in capsys.readouterr().out
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        collector.stop()
        db.close()


# -- report and status from a known history ------------------------------------------------------------------


def october(db: DistrictDb) -> None:
    """hb-01: online all October except 3 days; 4 programmes (1 missed), 1 alert played. hb-02: never reported."""
    start = datetime(2026, 10, 1, tzinfo=TZ)
    down = datetime(2026, 10, 11, tzinfo=TZ)
    up = down + timedelta(days=3)

    def status(state, at):
        s = Status(state=state, station="hb-01", boot_id=f"boot-{at:%d}", ts=at if state == "online" else None)
        db.add_status(IDS, s, at.timestamp())

    status("online", start)
    status("offline", down)
    status("online", up)
    status("offline", datetime(2026, 11, 1, tzinfo=TZ))
    collector = Collector(db)
    for i, result in enumerate(["played", "played", "partial", "missed"]):
        payload = encode(playlog_from_entry(
            entry(f"p{i}", start=start + timedelta(days=i), result=result, played_s=900 if result == "played" else 450),
            "hb-01"))
        assert collector.handle(IDS.topic("report"), payload)
    alert = entry("a1", start=start + timedelta(days=20), kind="alert", level="actual", played_s=60, requested_s=60)
    assert collector.handle(IDS.topic("report"), encode(playlog_from_entry(alert, "hb-01")))
    db.add_status(StationIds("hoa-vang", "hoa-bac", "hb-02"),
                  Status(state="offline", station="hb-02", boot_id="x"), datetime(2026, 11, 2, tzinfo=TZ).timestamp())


def test_monthly_report_as_csv(tmp_path, capsys):
    db = DistrictDb(tmp_path / "d.sqlite")
    october(db)
    db.close()
    assert district_main(["report", "--month", "2026-10", "--format", "csv", "--db", str(tmp_path / "d.sqlite")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("station,uptime_pct,programmes_played,programmes_missed,minutes_played,minutes_requested,"
                        "alerts_received,alerts_played")
    assert lines[1] == f"{SID},{100 * 28 / 31:.2f},3,1,38.5,61.0,1,1"
    assert lines[2] == "hoa-vang/hoa-bac/hb-02,,0,0,0.0,0.0,0,0"


def test_monthly_report_as_markdown(tmp_path, capsys):
    db = DistrictDb(tmp_path / "d.sqlite")
    october(db)
    db.close()
    assert district_main(["report", "--month", "2026-10", "--format", "md", "--db", str(tmp_path / "d.sqlite")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Station report 2026-10")
    assert f"| {SID} | 90.32 | 3 | 1 | 38.5 | 61.0 | 1 | 1 |" in out


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "26-12", "december", "2026-1"])
def test_a_bad_month_is_a_usage_error(tmp_path, capsys, month):
    DistrictDb(tmp_path / "d.sqlite").close()
    with pytest.raises(SystemExit) as e:
        district_main(["report", "--month", month, "--db", str(tmp_path / "d.sqlite")])
    assert e.value.code == 2
    assert f"--month {month!r}" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["report", "--month", "2026-10"], ["status"]])
def test_a_missing_database_is_a_clear_error(tmp_path, capsys, command):
    missing = tmp_path / "nope.sqlite"
    assert district_main([*command, "--db", str(missing)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not missing.exists()


def test_uptime_comes_from_status_transitions(tmp_path):
    db = DistrictDb(tmp_path / "d.sqlite")
    october(db)
    lo = datetime(2026, 10, 1, tzinfo=TZ).timestamp()
    assert db.uptime(SID, lo, lo + 10 * 86400) == 1.0
    assert db.uptime(SID, lo + 10 * 86400, lo + 12 * 86400) == 0.0
    assert db.uptime(SID, lo - 86400, lo + 86400) == 1.0  # before the first transition does not count
    db.close()
