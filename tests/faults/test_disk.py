"""A full disk (SD card) under the state directory: the station keeps playing on time and says so."""

from __future__ import annotations

import errno
import os
import subprocess
from datetime import datetime

import pytest

from firmware.core import commands as C
from tests.scenarios.harness import TZ, config, schedule, start_station, write_key


def tone(pid, start, seconds):
    return {"id": pid, "title": pid, "start": start, "recurrence": {"days": "daily"},
            "source": {"type": "tone", "kind": "test", "duration_s": seconds}}


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs as the station's state dir (root only: skipped elsewhere)."""
    path = tmp_path / "state"
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path) -> int:
    """Write until the file system refuses (ENOSPC). Returns the bytes written."""
    n = 0
    chunk = b"\0" * 65536
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT)  # unbuffered: close() has nothing left to flush
    try:
        while True:
            try:
                n += os.write(fd, chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                if len(chunk) == 1:
                    return n
                chunk = chunk[: len(chunk) // 2]  # fill the last partial pages too
    finally:
        os.close(fd)


def run_through_a_full_disk(tmp_path, disk, broker, collector, wait_reports: set[str]):
    """a and b play while the state dir is full; space returns; c plays. Returns the recorder."""
    write_key(tmp_path)
    doc = schedule(tone("a", "06:00", 1.0), tone("b", "06:00", 1.0), tone("c", "06:01", 1.0))
    app, sink, rec = start_station(config(tmp_path, broker_url=broker.url), doc=doc,
                                   at=datetime(2026, 12, 1, 5, 59, 58, tzinfo=TZ))
    try:
        assert rec.wait_for(lambda r: app.parts.link.connected, 10)
        assert fill(disk) > 0
        assert rec.wait_for(lambda r: [e.ref for e in r.reports()] == ["a", "b"], 20), rec.commands
        assert app.parts.runtime.alive and app.parts.player.alive
        os.unlink(disk / "filler")
        app.clock.step((datetime(2026, 12, 1, 6, 0, 58, tzinfo=TZ) - app.clock.wall()).total_seconds())
        assert rec.wait_for(lambda r: [e.ref for e in r.reports()] == ["a", "b", "c"], 20), rec.commands
        collector.wait(lambda c: {d["ref"] for d in c.playlog().values()} >= wait_reports, 10)
    finally:
        app.stop()
    return rec


def test_a_full_disk_does_not_stop_the_station_and_reports_resume_when_space_returns(
        tmp_path, small_disk, broker, collector):
    rec = run_through_a_full_disk(tmp_path, small_disk, broker, collector, {"c"})
    assert [p.ref for p in rec.of(C.Play)] == ["a", "b", "c"]  # every programme played, on time
    assert all(p.offset_s < 1.0 for p in rec.of(C.Play) if p.ref != "b")  # (b waits for a, by design)
    assert "c" in {d["ref"] for d in collector.playlog().values()}  # reporting works again with space


def test_play_log_entries_made_while_the_disk_is_full_still_reach_the_district(
        tmp_path, small_disk, broker, collector):
    run_through_a_full_disk(tmp_path, small_disk, broker, collector, {"a", "b", "c"})
    assert {d["ref"] for d in collector.playlog().values()} == {"a", "b", "c"}
