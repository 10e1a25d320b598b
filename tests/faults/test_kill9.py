"""kill -9 of a station process at random points of a busy schedule, then restart it, again and again.

After every kill the state files load (times, replay cache, outbox), and over all the runs nothing that the
play log says was played to the end is played again. The child is `tests/faults/station_child.py`: the same
App as `loa-sim station`, with a clock anchored so that simulated time runs on across restarts."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from district.alerts import build_alert, publish_alert
from district.mqtt import DistrictClient
from firmware.adapters.statefile import StateStore
from firmware.protocol.replay import ReplayCache
from firmware.protocol.topics import Scope
from firmware.reporting.outbox import Outbox
from tests.scenarios.harness import TZ, write_key

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("LOA_FAULT_KILLS", "5"))
PROGRAMMES = 10


class Child:
    def __init__(self, run: int, args: list[str]):
        self.run = run
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.faults.station_child", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, name=f"child-{self.proc.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.strip())
                self.cond.notify_all()
        with self.cond:
            self.lines.append("<eof>")
            self.cond.notify_all()

    def wait_line(self, pred, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: any(pred(x) for x in self.lines), timeout)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)


def _check_state_loads(state: Path) -> None:
    assert StateStore(state).last_alive is not None
    json.loads((state / "times.json").read_bytes())
    if (state / "replay.json").exists():
        json.loads((state / "replay.json").read_bytes())
    ReplayCache(state / "replay.json")
    assert not (state / "replay.json.corrupt").exists()
    box = Outbox(state / "outbox.sqlite")
    try:
        box.depth()
    finally:
        box.close()
    with sqlite3.connect(state / "outbox.sqlite") as db:
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"


def station_files(tmp_path: Path, broker_url: str, programmes: list[tuple[str, float]]) -> list[str]:
    """Config, trust anchor and schedule (programmes all at 06:00, played one after another); child args."""
    cfg = tmp_path / "station.toml"
    cfg.write_text(f"""
[station]
district = "hv"
commune = "hb"
id = "s1"
[[policy.windows]]
start = "05:30"
end = "07:00"
cap_db = -6
[gpio]
enabled = false
[broker]
url = "{broker_url}"
keepalive_s = 5
[trust]
key_files = ["{tmp_path / 'trust.json'}"]
""")
    progs = [{"id": ref, "title": ref, "start": "06:00", "recurrence": {"days": "daily"},
              "source": {"type": "tone", "kind": "test", "duration_s": secs}} for ref, secs in programmes]
    (tmp_path / "s.json").write_text(json.dumps({"version": 1, "programmes": progs}))
    return ["--config", str(cfg), "--schedule", str(tmp_path / "s.json"), "--state-dir", str(tmp_path / "state")]


def test_kill_9_at_random_points_state_always_loads_and_nothing_done_is_played_again(tmp_path, broker, collector):
    seed = int(os.environ.get("LOA_FAULT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    key = write_key(tmp_path)
    state = tmp_path / "state"
    origin = datetime(2026, 12, 1, 5, 59, 59, tzinfo=TZ)
    epoch = time.time()
    args = station_files(tmp_path, broker.url, [(f"p{i}", 2.0) for i in range(PROGRAMMES)]) + [
        "--origin", origin.isoformat(), "--origin-epoch", repr(epoch)]
    runs: list[Child] = []
    try:
        for run in range(KILLS):
            child = Child(run, args)
            runs.append(child)
            assert child.wait_line(lambda x: x in ("ready", "<eof>"), 30), child.lines
            assert "ready" in child.lines, f"seed {seed}: run {run} did not start: {child.lines}"
            if run == 1:  # an alert too, so the replay cache is written and killed mid-write sometimes
                now = origin + timedelta(seconds=time.time() - epoch)
                alert = build_alert(scope=Scope("hv"), status="actual", now=now, expires_in=timedelta(minutes=30),
                                    text="Thử.", repeat=1, tone=False)
                with DistrictClient.from_url(broker.url) as district:
                    publish_alert(district, alert, key, now)
            # a random point: before, during or after the next decision (the recorder's lines are the clock)
            child.wait_line(lambda x: x == "<eof>", rng.uniform(0.05, 2.0))  # (it must not exit on its own)
            child.kill()
            _check_state_loads(state)
        final = Child(KILLS, args)
        runs.append(final)
        last = f"p{PROGRAMMES - 1}"
        assert final.wait_line(lambda x: x.startswith("report ") and x.split()[2] == last, 60), \
            f"seed {seed}: {final.lines}"
        assert final.wait_line(lambda x: x == "<eof>", 0) is False
        final.proc.send_signal(signal.SIGTERM)
        assert final.proc.wait(20) == 0, f"seed {seed}: {final.lines}"
        final._reader.join(5)
    finally:
        for c in runs:
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait(5)
    _check_state_loads(state)
    box = Outbox(state / "outbox.sqlite")
    try:
        assert box.depth() == 0, f"seed {seed}: reports left unsent"
    finally:
        box.close()
    done_in_run: dict[str, int] = {}
    for c in runs:
        for line in c.lines:
            parts = line.split()
            if parts[0] == "play":
                ref = parts[1]
                assert ref not in done_in_run or done_in_run[ref] >= c.run, \
                    f"seed {seed}: {ref} was played in run {c.run} after run {done_in_run[ref]} logged it played"
            elif parts[0] == "report" and parts[3] == "played":
                done_in_run.setdefault(parts[2], c.run)
    played = [d for d in collector.playlog().values() if d["result"] == "played"]
    refs = [d["ref"] for d in played]
    assert len(refs) == len(set(refs)), f"seed {seed}: some programme was played to the end twice: {refs}"


def test_a_programme_interrupted_by_a_crash_is_in_the_play_log_after_the_reboot(tmp_path, broker, collector):
    write_key(tmp_path)
    origin = datetime(2026, 12, 1, 6, 0, 0, tzinfo=TZ)  # the station boots after "long" began: it joins it
    epoch = time.time()
    args = station_files(tmp_path, broker.url, [("long", 6.0), ("next", 30.0)]) + [
        "--origin", origin.isoformat(), "--origin-epoch", repr(epoch)]
    first = Child(0, args)
    try:
        assert first.wait_line(lambda x: x.startswith("play long"), 30), first.lines
        assert float(next(x for x in first.lines if x.startswith("play long")).split()[2]) > 0  # joined
        assert first.wait_line(lambda x: x == "ready", 30), first.lines
        first.kill()  # in the middle of "long"
        # stay dead until "long"'s slot is over (a timed wait on an event that does not come)
        threading.Event().wait(max(0.0, epoch + 7.0 - time.time()))  # "long" ends at origin + 6 s
        second = Child(1, args)
        assert second.wait_line(lambda x: x.startswith("play next"), 30), second.lines
        got = collector.wait(lambda c: any(d["ref"] == "long" for d in c.playlog().values()), 5)
        second.proc.send_signal(signal.SIGTERM)
        second.proc.wait(20)
    finally:
        for c in (first, locals().get("second")):
            if c is not None and c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait(5)
    assert got, f"no play-log entry for the interrupted programme: {first.lines} {second.lines}"
