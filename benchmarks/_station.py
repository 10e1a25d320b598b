"""A whole simulated station for benchmarks: the real App on a PacedSink with a real mosquitto, the
district key, and event timestamps taken where they happen (not where a test notices them)."""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from firmware.config import parse_config_text
from firmware.core import commands as C
from firmware.core import events as E
from firmware.core.schedule import ScheduleDoc
from firmware.protocol.keys import generate, signing_key_pem, trust_anchor_json
from simulator.clock import SteppableClock
from simulator.sinks import PacedSink
from simulator.station import sim_app

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class TimedQueue(queue.Queue):
    """The runtime's event queue, stamping PlaybackStarted with time.monotonic() at the moment the player
    puts it (right after it handed the first block of the item to the sink)."""

    def __init__(self):
        super().__init__()
        self.started: dict[str, float] = {}
        self.cond = threading.Condition()

    def put(self, item, block=True, timeout=None):
        if isinstance(item, E.PlaybackStarted):
            with self.cond:
                self.started[item.play_id] = time.monotonic()
                self.cond.notify_all()
        super().put(item, block, timeout)


class Bench:
    def __init__(self, *, broker_url: str = "", windows=None, warmup_s: float = 0.2, at: datetime | None = None,
                 programmes=(), block_ms: int = 20):
        self.dir = Path(tempfile.mkdtemp(prefix="loa-bench-"))
        self.key = generate("bd")
        (self.dir / "k.key").write_bytes(signing_key_pem(self.key))
        (self.dir / "trust.json").write_bytes(trust_anchor_json([self.key.anchor()]))
        now = datetime.now(TZ)
        windows = windows or [((now - timedelta(hours=1)).strftime("%H:%M"),
                               (now + timedelta(hours=2)).strftime("%H:%M"), -6.0)]
        wins = "".join(f'[[policy.windows]]\nstart = "{a}"\nend = "{b}"\ncap_db = {c}\n' for a, b, c in windows)
        self.cfg = parse_config_text(f"""
[station]
district = "bd"
commune = "bc"
id = "bs"
[policy]
max_sessions_per_day = 48
max_session_minutes = 1440
max_minutes_per_day = 1440
{wins}
[audio]
block_ms = {block_ms}
[gpio]
amp_warmup_s = {warmup_s}
amp_hang_s = 3600
[broker]
url = "{broker_url}"
keepalive_s = 10
[trust]
key_files = ["{self.dir / 'trust.json'}"]
[paths]
state_dir = "{self.dir / 'state'}"
""")
        self.doc = ScheduleDoc.model_validate({"version": 1, "programmes": list(programmes)})
        self.clock = SteppableClock(TZ, offset_s=((at or now) - datetime.now(TZ)).total_seconds())
        self.sink = PacedSink(self.cfg.audio.rate_hz, latency_s=0.02, keep=False)
        self.plays: list[tuple[float, C.Play]] = []
        self.reports: list[C.PlayLogEntry] = []
        self.cond = threading.Condition()
        self.app = sim_app(self.cfg, sink=self.sink, clock=self.clock, schedule=self.doc, on_command=self._cmd)
        self.app.events = TimedQueue()

    def _cmd(self, when, cmd) -> None:
        with self.cond:
            if isinstance(cmd, C.Play):
                self.plays.append((time.monotonic(), cmd))
            elif isinstance(cmd, C.Report):
                self.reports.append(cmd.entry)
            self.cond.notify_all()

    def wait(self, pred, timeout: float = 30.0) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def started_at(self, play_id: str, timeout: float = 10.0) -> float | None:
        q = self.app.events
        with q.cond:
            q.cond.wait_for(lambda: play_id in q.started, timeout)
            return q.started.get(play_id)

    def first_block_at(self, play_id: str, timeout: float = 10.0) -> float | None:
        """When the item's first block was handed to the sink: the last write() call that began before
        the player announced the item as started."""
        t_event = self.started_at(play_id, timeout)
        if t_event is None:
            return None
        writes = [a.t_write for a in list(self.sink.accepted) if a.t_write <= t_event]
        return writes[-1] if writes else t_event

    def start(self) -> Bench:
        self.app.start()
        return self

    def stop(self) -> None:
        self.app.stop()
