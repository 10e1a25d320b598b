"""Telemetry: full once an hour, only what changed in between, every field readable by the district."""

from __future__ import annotations

import json
from datetime import datetime

from firmware.protocol.reports import encode, parse_telemetry
from firmware.reporting.telemetry import Snapshot, TelemetryBuilder, cpu_temp_c
from tests.reporting.helpers import TZ, SetClock


def builder(tmp_path, **kw):
    thermal = tmp_path / "temp"
    thermal.write_text("51234\n")
    clock = SetClock(datetime(2026, 12, 3, 8, 0, tzinfo=TZ))
    return clock, thermal, TelemetryBuilder("hb-01", clock, boot_id="0123456789", disk_path=tmp_path,
                                            thermal_path=thermal, **kw)


def build(b, snap, **kw):
    t = b.build(snap, link_up_since=kw.get("since"), outbox_depth=kw.get("depth", 0), counters=kw.get("counters", {}),
                content=kw.get("content"))
    wire = encode(t)
    assert parse_telemetry(wire) == t  # what the collector reads back is what was built
    return json.loads(wire)


def test_first_message_is_full_then_only_changes_then_full_again(tmp_path):
    clock, thermal, b = builder(tmp_path, full_every=3)
    snap = Snapshot(state="idle", gain_db=-6.0, amp_on=False, clock_trusted=True, on_backup=False)
    first = build(b, snap)
    assert first["v"] == 1 and "kind" not in first  # the topic says telemetry
    assert {"gain_db", "amp_on", "clock_trusted", "on_backup", "disk_free_mb", "cpu_temp_c"} <= set(first)
    clock.advance(300)
    second = build(b, snap.with_(state="programme", item="tin-sang", amp_on=True))
    assert set(second) == {"v", "id", "station", "ts", "uptime_s", "link_uptime_s", "state", "item", "amp_on",
                           "outbox_depth"}
    assert (second["uptime_s"], second["state"], second["item"]) == (300, "programme", "tin-sang")
    thermal.write_text("56000\n")  # +4.8 °C: worth telling
    clock.advance(300)
    third = build(b, snap.with_(state="programme", item="tin-sang", amp_on=True))
    assert third["cpu_temp_c"] == 56.0 and "item" not in third
    fourth = build(b, snap)
    assert {"gain_db", "amp_on", "clock_trusted", "on_backup", "cpu_temp_c"} <= set(fourth)  # full again


def test_ids_are_unique_per_boot_and_link_uptime_counts_from_link_up(tmp_path):
    clock, _, b = builder(tmp_path)
    since = clock.monotonic()
    clock.advance(90)
    a = build(b, Snapshot(state="idle"), since=since, depth=4, counters={"dropped_telemetry": 2})
    c = build(b, Snapshot(state="idle"))
    assert a["id"] != c["id"] and a["id"].startswith("t-01234567-")
    assert (a["link_uptime_s"], a["outbox_depth"], a["dropped_telemetry"]) == (90, 4, 2)
    assert c["link_uptime_s"] == 0


def test_cpu_temperature_is_absent_rather_than_wrong(tmp_path):
    assert cpu_temp_c(tmp_path / "missing") is None
    (tmp_path / "garbage").write_text("hot\n")
    assert cpu_temp_c(tmp_path / "garbage") is None


def test_unknown_snapshot_fields_are_a_programming_error(tmp_path):
    import pytest

    with pytest.raises(TypeError, match="volume"):
        Snapshot().with_(volume=3)


def test_missing_content_is_told_in_full_messages_and_in_between_when_it_changes(tmp_path):
    clock, _, b = builder(tmp_path, full_every=4)
    snap = Snapshot(state="idle")
    first = build(b, snap, content=(2, 1))
    assert (first["content_missing"], first["content_failed"]) == (2, 1)
    clock.advance(300)
    assert "content_missing" not in build(b, snap, content=(2, 1))  # unchanged: not repeated
    clock.advance(300)
    fetched = build(b, snap, content=(0, 0))  # all there now: 0 is news, not "unknown"
    assert (fetched["content_missing"], fetched["content_failed"]) == (0, 0)
    clock.advance(300)
    assert "content_missing" not in build(b, snap, content=None)  # no cache at all: unknown, left out

