"""Missing content is known at the district hours ahead: a station whose schedule needs a file it cannot fetch
says so in its telemetry, the collector stores it, and `loa-district status` and the console show it."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from district.cli import main as district_main
from district.collector import Collector
from district.console.service import Console
from district.console.store import ConsoleStore
from district.content import ContentServer
from district.db import DistrictDb
from firmware.adapters.mqtt import parse_url
from firmware.protocol.keys import generate
from tests.reporting.helpers import wait_for
from tests.scenarios.harness import TZ, config, schedule, start_station, write_key

ALL_DAY = (("00:00", "24:00", 0.0),)


@pytest.fixture
def content(tmp_path):
    (tmp_path / "srv").mkdir()
    server = ContentServer(tmp_path / "srv", port=0).start()
    try:
        yield server
    finally:
        server.stop()


def programme(pid: str, hhmm: str, url: str, data: bytes) -> dict:
    return {"id": pid, "title": pid, "start": hhmm, "recurrence": {"days": "daily"},
            "source": {"type": "file", "url": url, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                       "duration_s": 1.0}}


def test_a_file_the_station_cannot_fetch_shows_at_the_district_before_it_is_due(tmp_path, broker, content, capsys):
    write_key(tmp_path)
    now = datetime.now(TZ)
    there, gone = b"RIFF-there" * 100, b"RIFF-gone" * 100
    (tmp_path / "srv" / "there.wav").write_bytes(there)
    doc = schedule(programme("co", "06:00", f"{content.url}/there.wav", there),
                   programme("mat", "06:30", f"{content.url}/gone.wav", gone))  # 404 on the server
    db = DistrictDb(tmp_path / "district.sqlite")
    collector = Collector(db, url=parse_url(broker.url), client_id="collector-test")
    collector.start()
    app, _, _ = start_station(config(tmp_path, broker_url=broker.url, windows=ALL_DAY), at=now, doc=doc)
    try:
        pf, reporter = app.parts.prefetcher, app.parts.reporter
        # hours before they are due (06:00 and 06:30, within the 48 h horizon): one file is fetched and verified,
        # the other failed (404)
        wait_for(lambda: [m.state for m in pf.missing()] == ["failed"], 20, "the 404 to be known")
        assert hashlib.sha256(there).hexdigest() in app.parts.cache
        t = reporter.telemetry_now()
        assert (t.content_missing, t.content_failed) == (1, 1)
        wait_for(lambda: db.content_status("hv/hb/s1") == (1, 1), 15, "the collector to store it")
        # a later telemetry that carries only changes keeps what the district knows
        reporter.telemetry_now()
        wait_for(lambda: db.query("SELECT count(*) FROM telemetry WHERE sid = 'hv/hb/s1'")[0][0] >= 2, 15,
                 "the second telemetry")
        assert db.content_status("hv/hb/s1") == (1, 1)
    finally:
        app.stop()
        collector.stop()
    capsys.readouterr()
    assert district_main(["status", "--db", str(tmp_path / "district.sqlite")]) == 0
    assert "content: 1 file(s) missing (1 failed)" in capsys.readouterr().out
    store = ConsoleStore(tmp_path / "district.sqlite")
    try:
        [row] = Console(db, store, generate("hv"), None).fleet()
        assert (row["content_missing"], row["content_failed"]) == (1, 1)
    finally:
        store.close()
        db.close()


def test_content_status_is_the_latest_known_value(tmp_path):
    from firmware.protocol.reports import StationIds, Telemetry

    db = DistrictDb(tmp_path / "d.sqlite")
    ids, t0 = StationIds("hv", "hb", "s1"), datetime(2026, 12, 3, 8, 0, tzinfo=TZ)

    def tele(n: int, minutes: int, **content):
        db.add_telemetry(ids, Telemetry(id=f"t{n}", station="s1", ts=t0 + timedelta(minutes=minutes), uptime_s=60,
                                        link_uptime_s=60, state="idle", outbox_depth=0, **content), 0.0)

    assert db.content_status("hv/hb/s1") is None  # never told
    tele(1, 0, content_missing=3, content_failed=2)
    tele(2, 5)  # a delta without the fields: unchanged
    assert db.content_status("hv/hb/s1") == (3, 2)
    tele(3, 10, content_missing=0, content_failed=0)
    tele(4, 4, content_missing=9, content_failed=9)  # arrived late (outbox after a cut), but older
    assert db.content_status("hv/hb/s1") == (0, 0)
    db.close()
