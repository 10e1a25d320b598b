"""The real clock: aware wall time in the station's timezone, monotonic time, and NTP sync status."""

from __future__ import annotations

import time
from datetime import datetime, tzinfo
from pathlib import Path

# systemd-timesyncd touches this file once the clock is synchronised (systemd >= 239).
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")


class SystemClock:
    def __init__(self, tz: tzinfo, *, sync_flag: Path = TIMESYNC_FLAG):
        self.tz = tz
        self._flag = sync_flag

    def wall(self) -> datetime:
        return datetime.now(self.tz)

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool | None:
        try:
            return self._flag.exists()
        except OSError:
            return None
