"""Clocks for simulated stations."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo


class HostClock:
    """The host's clock, taken as NTP-synchronised (a laptop or CI machine keeps good time)."""

    def __init__(self, tz: tzinfo):
        self.tz = tz

    def wall(self) -> datetime:
        return datetime.now(self.tz)

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool | None:
        return True


class SteppableClock(HostClock):
    """The host's clock plus an offset a test can step (an NTP correction, a technician setting the date),
    and a sync flag it can flip. Monotonic time is never affected."""

    def __init__(self, tz: tzinfo, *, offset_s: float = 0.0, synced: bool = True):
        super().__init__(tz)
        self.offset = timedelta(seconds=offset_s)
        self._synced = synced

    def wall(self) -> datetime:
        return datetime.now(self.tz) + self.offset

    def step(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def set_synced(self, synced: bool) -> None:
        self._synced = synced

    def synced(self) -> bool | None:
        return self._synced
