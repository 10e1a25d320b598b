"""The outbox: durable, ordered, bounded with telemetry dropped first and every drop counted."""

from __future__ import annotations

import sqlite3

import pytest

from firmware.reporting.outbox import Outbox, OutboxError


def test_items_come_back_in_the_order_they_were_written_even_after_reopening(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(5):
        assert box.put(f"r{i}", "playlog", "loa/v1/d/c/s/report", f"payload {i}".encode())
    box.remove([box.peek(1)[0].seq])
    box.close()
    box = Outbox(tmp_path / "o.sqlite")
    assert [i.id for i in box.peek(10)] == ["r1", "r2", "r3", "r4"]
    assert box.peek(1)[0].payload == b"payload 1"
    assert box.depth() == 4


def test_the_same_report_id_is_stored_once(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    assert box.put("r1", "playlog", "t", b"x")
    assert not box.put("r1", "playlog", "t", b"x")
    assert box.depth() == 1


def test_peek_skips_what_is_already_in_flight(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(4):
        box.put(f"r{i}", "playlog", "t", b"x")
    seqs = [i.seq for i in box.peek(2)]
    assert [i.id for i in box.peek(2, skip=set(seqs))] == ["r2", "r3"]


def test_outbox_is_in_wal_mode_on_disk(tmp_path):
    Outbox(tmp_path / "o.sqlite").close()
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_full_outbox_drops_oldest_telemetry_first_and_keeps_every_play_log_entry(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1000)
    box.put("t0", "telemetry", "t", b"a" * 200)
    box.put("p0", "playlog", "t", b"b" * 200)
    box.put("t1", "telemetry", "t", b"c" * 200)
    box.put("d0", "daily", "t", b"d" * 200)
    box.put("t2", "telemetry", "t", b"e" * 200)
    box.put("p1", "playlog", "t", b"f" * 200)  # 1200 > 1000: t0 must go
    assert box.ids() == ["p0", "t1", "d0", "t2", "p1"]
    box.put("p2", "playlog", "t", b"g" * 400)  # t1 and t2 go, reports stay
    assert box.ids() == ["p0", "d0", "p1", "p2"]
    assert box.bytes <= 1000
    assert box.counters() == {"dropped_telemetry": 3, "dropped_reports": 0}


def test_when_only_reports_are_left_the_oldest_is_dropped_and_counted_persistently(tmp_path, caplog):
    box = Outbox(tmp_path / "o.sqlite", max_bytes=500)
    for i in range(3):
        box.put(f"p{i}", "playlog", "t", b"x" * 200)
    assert box.ids() == ["p1", "p2"]
    assert "dropped playlog p0" in caplog.text
    box.close()
    box = Outbox(tmp_path / "o.sqlite", max_bytes=500)
    assert box.counters()["dropped_reports"] == 1
    assert box.bytes == 400


def test_a_report_larger_than_the_whole_bound_is_refused_loudly(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_bytes=100)
    with pytest.raises(OutboxError, match="exceeds the outbox bound"):
        box.put("big", "playlog", "t", b"x" * 101)
