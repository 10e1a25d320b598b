"""Shared by the reporting, link and collector tests: waiting on conditions, clocks, play-log entries."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from firmware.core.commands import PlayLogEntry

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def wait_for(cond, timeout_s: float, what: str, interval_s: float = 0.02):
    """Poll `cond()` until truthy (returns its value) or fail the test saying what did not happen."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


class RealClock:
    def wall(self) -> datetime:
        return datetime.now(TZ)

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool | None:
        return True


class SetClock:
    """A clock the test sets (wall and monotonic move together)."""

    def __init__(self, wall: datetime):
        self._wall = wall
        self._mono = 1000.0

    def advance(self, seconds: float) -> None:
        self._wall += timedelta(seconds=seconds)
        self._mono += seconds

    def wall(self) -> datetime:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def synced(self) -> bool | None:
        return True


def entry(entry_id: str, *, start: datetime | None = None, kind: str = "programme", level: str = "normal",
          result: str = "played", played_s: float = 900.0, requested_s: float = 900.0) -> PlayLogEntry:
    start = start or datetime(2026, 12, 3, 6, 0, tzinfo=TZ)
    ok = result in ("played", "partial")
    return PlayLogEntry(
        entry_id=entry_id,
        kind=kind,
        ref=f"ref-{entry_id}",
        title=f"Bản tin {entry_id}",
        level=level,
        requested_start=start,
        requested_end=start + timedelta(seconds=requested_s),
        actual_start=start if ok else None,
        actual_end=start + timedelta(seconds=played_s) if ok else None,
        played_s=played_s if ok else 0.0,
        gain_db=-6.0 if ok else None,
        result=result,
        reason="" if ok else "station offline",
    )


class Listener:
    """A plain MQTT 5 subscriber that records (topic, payload, retained)."""

    def __init__(self, port: int, topics=("loa/#",)):
        self.messages: list[tuple[str, bytes, bool]] = []
        self._c = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self._c.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))
        self._subscribed = False

        def on_subscribe(*_):
            self._subscribed = True

        self._c.on_subscribe = on_subscribe
        self._c.connect("127.0.0.1", port)
        self._c.subscribe([(t, 1) for t in topics])
        self._c.loop_start()
        wait_for(lambda: self._subscribed, 5, "listener SUBACK")

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in list(self.messages) if t == topic]

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()
