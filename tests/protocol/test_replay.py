from __future__ import annotations

import json
from datetime import timedelta

from firmware.protocol.replay import ReplayCache
from tests.protocol.factory import NOW


def test_remembered_ids_survive_a_restart(tmp_path):
    path = tmp_path / "state" / "replay.json"
    cache = ReplayCache(path)
    cache.remember("a1", NOW + timedelta(minutes=30), NOW)
    assert "a1" in cache
    assert "a1" in ReplayCache(path)
    assert "a2" not in ReplayCache(path)


def test_ids_are_forgotten_some_time_after_their_alert_expired(tmp_path):
    cache = ReplayCache(tmp_path / "replay.json", keep_after_expiry=timedelta(hours=1))
    cache.remember("old", NOW, NOW - timedelta(minutes=30))
    cache.remember("new", NOW + timedelta(hours=5), NOW)
    assert "old" in cache
    cache.prune(NOW + timedelta(hours=1, seconds=1))
    assert "old" not in cache and "new" in cache
    assert "old" not in ReplayCache(tmp_path / "replay.json")


def test_the_cache_is_bounded_dropping_the_soonest_forgotten(tmp_path):
    cache = ReplayCache(tmp_path / "replay.json", max_entries=3)
    for i in range(5):
        cache.remember(f"a{i}", NOW + timedelta(minutes=i), NOW)
    assert len(cache) == 3
    assert [f"a{i}" in cache for i in range(5)] == [False, False, True, True, True]


def test_writes_are_atomic_no_temp_files_left_behind(tmp_path):
    cache = ReplayCache(tmp_path / "replay.json")
    for i in range(3):
        cache.remember(f"a{i}", NOW + timedelta(minutes=5), NOW)
    assert [p.name for p in tmp_path.iterdir()] == ["replay.json"]
    assert set(json.loads((tmp_path / "replay.json").read_text())["seen"]) == {"a0", "a1", "a2"}


def test_a_corrupt_file_is_set_aside_and_the_station_keeps_working(tmp_path):
    path = tmp_path / "replay.json"
    path.write_bytes(b'{"v":1,"seen":{"a1": "not a time"')
    cache = ReplayCache(path)
    assert len(cache) == 0
    assert (tmp_path / "replay.json.corrupt").exists()
    cache.remember("a2", NOW + timedelta(minutes=5), NOW)
    assert "a2" in ReplayCache(path)
