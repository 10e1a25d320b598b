"""kill -9 a station at random moments, again and again: every report it wrote reaches the district once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from district.collector import Collector
from district.db import DistrictDb
from district.mqtt import parse_broker_url
from firmware.reporting.outbox import Outbox
from tests.reporting.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("LOA_KILL_RUNS", "50"))


class Child:
    """The station process, its stdout read by a named thread into `lines`."""

    def __init__(self, broker_url: str, outbox: Path, first: int, count: int):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reporting.station_child", "--broker", broker_url,
             "--outbox", str(outbox), "--first", str(first), "--count", str(count)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"child-{self.proc.pid}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def loaded(self) -> bool:
        return any(line.startswith("loaded") for line in list(self.lines))

    def written(self) -> list[str]:
        return [line.split()[1] for line in list(self.lines) if line.startswith("written ")]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr else ""


@pytest.fixture
def collector(broker, tmp_path):
    db = DistrictDb(tmp_path / "district.sqlite")
    c = Collector(db, url=parse_broker_url(broker.url), client_id="collector-kill9")
    c.start()
    yield c
    c.stop()
    db.close()


def playlog_ids(db: DistrictDb) -> list[str]:
    return [r[0] for r in db.query("SELECT id FROM playlog WHERE sid = 'hoa-vang/hoa-bac/kill-me'")]


def test_kill_9_at_random_points_loses_nothing_and_duplicates_nothing(broker, tmp_path, collector):
    rng = random.Random(1234)
    outbox = tmp_path / "station" / "outbox.sqlite"
    written: set[str] = set()
    attempted: set[str] = set()
    first = 0
    for run in range(RUNS):
        count = rng.randint(1, 8)
        child = Child(broker.url, outbox, first, count)
        try:
            # The outbox always loads, whatever state the previous kill left it in.
            wait_for(lambda c=child: c.loaded() or c.proc.poll() is not None, 20, f"run {run}: outbox loaded")
            assert child.loaded(), f"run {run}: {child.stderr()}"
            # Kill at a random point: while writing, while sending, or after draining.
            target = rng.randint(0, count)
            wait_for(lambda c=child, n=target: len(c.written()) >= n or c.proc.poll() is not None, 20,
                     f"run {run}: {target} reports written")
            child.kill()
        finally:
            if child.proc.poll() is None:
                child.kill()
        written |= set(child.written())
        attempted |= {f"e{i}" for i in range(first, first + count)}
        first += count
    # A last boot with nothing new to write: it resends whatever is left.
    final = Child(broker.url, outbox, first, 0)
    try:
        wait_for(lambda: "drained" in final.lines or final.proc.poll() is not None, 30, "the final drain")
        assert "drained" in final.lines, final.stderr()
    finally:
        final.kill()
    assert Outbox(outbox).depth() == 0
    wait_for(lambda: written <= set(playlog_ids(collector.db)), 20, "every written report at the district")
    ids = playlog_ids(collector.db)
    assert len(ids) == len(set(ids))
    assert set(ids) <= attempted  # nothing the station never wrote
    assert collector.rejected == {}
