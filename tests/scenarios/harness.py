"""A whole simulated station for scenario tests: the real App on a PacedSink, MockFactory pins, a clock
set just before a chosen local time, and (optionally) a real mosquitto and a district key."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from firmware.config import parse_config_text
from firmware.core import commands as C
from firmware.core.schedule import ScheduleDoc
from firmware.protocol.keys import generate, signing_key_pem, trust_anchor_json
from simulator.clock import SteppableClock
from simulator.sinks import PacedSink
from simulator.station import sim_app

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def clock_at(local: datetime) -> SteppableClock:
    """A clock whose wall time is `local` now and runs on from there in real time."""
    return SteppableClock(TZ, offset_s=(local - datetime.now(TZ)).total_seconds())


def write_key(tmp: Path, district: str = "hv"):
    key = generate(district)
    (tmp / "district.key").write_bytes(signing_key_pem(key))
    (tmp / "district.key").chmod(0o600)
    (tmp / "trust.json").write_bytes(trust_anchor_json([key.anchor()]))
    return key


def config(tmp: Path, *, broker_url: str = "", windows=(("05:30", "07:00", -6.0),), extra: str = "",
           key_files=("trust.json",), warmup_s: float = 0.2, hang_s: float = 2.0):
    wins = "".join(f'[[policy.windows]]\nstart = "{a}"\nend = "{b}"\ncap_db = {c}\n' for a, b, c in windows)
    keys = ", ".join(f'"{tmp / k}"' for k in key_files)
    text = f"""
[station]
district = "hv"
commune = "hb"
id = "s1"
[policy]
alert_gain_db = -2.0
{wins}
[gpio]
amp_warmup_s = {warmup_s}
amp_hang_s = {hang_s}
[broker]
url = "{broker_url}"
keepalive_s = 5
[trust]
key_files = [{keys}]
[paths]
state_dir = "{tmp / 'state'}"
{extra}
"""
    return parse_config_text(text, "scenario.toml")


def schedule(*programmes, version: int = 1, target: str | None = None) -> ScheduleDoc:
    doc = {"version": version, "programmes": list(programmes)}
    if target:
        doc["target"] = target
    return ScheduleDoc.model_validate(json.loads(json.dumps(doc)))


class Recorder:
    """Collects the station's commands as they are carried out; waits on conditions, never sleeps."""

    def __init__(self):
        self.commands: list[tuple[datetime, C.Command]] = []
        self.cond = threading.Condition()

    def __call__(self, when, cmd) -> None:
        with self.cond:
            self.commands.append((when, cmd))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self), timeout)

    def of(self, kind) -> list:
        with self.cond:
            return [c for _, c in self.commands if isinstance(c, kind)]

    def reports(self) -> list[C.PlayLogEntry]:
        return [c.entry for c in self.of(C.Report)]


def start_station(cfg, *, at: datetime, doc: ScheduleDoc | None = None, **kw):
    rec = Recorder()
    sink = PacedSink(cfg.audio.rate_hz, latency_s=0.02)
    app = sim_app(cfg, sink=sink, clock=clock_at(at), schedule=doc, on_command=rec, **kw)
    app.start()
    return app, sink, rec


def peak_db(samples: np.ndarray) -> float:
    if len(samples) == 0:
        return -120.0
    return 20 * np.log10(max(1e-9, float(np.max(np.abs(samples.astype(np.float64)))) / 32767))
