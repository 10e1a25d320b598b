"""Telemetry payloads: what the station is doing and how healthy it is, read at the moment of building.

The runtime tells us what only it knows (state, current item, gain, amplifier, clock trust, power) through a
`Snapshot`; what the OS knows (disk free, CPU temperature) is read here, from paths that tests can point
elsewhere. Byte budget: a telemetry message is ~300 bytes on the wire and goes out 288 times a day, the
largest share of the 100 KB/day; fields that are unknown (None) are left out of the JSON.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from firmware.ports import Clock
from firmware.protocol.reports import Telemetry

log = logging.getLogger(__name__)

THERMAL_PATH = "/sys/class/thermal/thermal_zone0/temp"
SNAPSHOT_FIELDS = ("state", "detail", "item", "gain_db", "amp_on", "clock_trusted", "on_backup")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the runtime last told the reporter. `state`: idle | programme | alert | fault | held | booting."""

    state: str = "booting"
    detail: str = ""
    item: str | None = None
    gain_db: float | None = None
    amp_on: bool | None = None
    clock_trusted: bool | None = None
    on_backup: bool | None = None

    def with_(self, **fields) -> Snapshot:
        unknown = set(fields) - set(SNAPSHOT_FIELDS)
        if unknown:
            raise TypeError(f"unknown telemetry field(s): {', '.join(sorted(unknown))}")
        return replace(self, **fields)


def cpu_temp_c(path: str | Path = THERMAL_PATH) -> float | None:
    """CPU temperature from sysfs (millidegrees), None when absent (not a Pi, or a container)."""
    try:
        return round(int(Path(path).read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def disk_free_mb(path: str | Path) -> float | None:
    try:
        return round(shutil.disk_usage(path).free / 1e6, 1)
    except OSError:
        return None


class TelemetryBuilder:
    """Builds telemetry; every `full_every`-th message (and the first) is full, the others carry only what
    changed (see `firmware.protocol.reports.Telemetry`). Disk free counts as changed beyond `disk_step_mb`,
    CPU temperature beyond `temp_step_c`, so slow drift does not defeat the saving."""

    def __init__(
        self,
        station: str,
        clock: Clock,
        *,
        boot_id: str,
        disk_path: str | Path,
        thermal_path=THERMAL_PATH,
        full_every: int = 12,
        disk_step_mb: int = 100,
        temp_step_c: float = 3.0,
    ):
        self.station = station
        self.clock = clock
        self.boot_id = boot_id
        self.disk_path = disk_path
        self.thermal_path = thermal_path
        self.full_every = max(1, full_every)
        self.disk_step_mb = disk_step_mb
        self.temp_step_c = temp_step_c
        self._started_mono = clock.monotonic()
        self._count = 0
        self._last: dict[str, object] = {}

    def build(
        self, snap: Snapshot, *, link_up_since: float | None, outbox_depth: int, counters: dict[str, int],
        content: tuple[int, int] | None = None,
    ) -> Telemetry:
        """`link_up_since`: monotonic time the link came up (None: down). `content`: (missing, failed) files
        within the prefetch horizon, None when the station has no content cache."""
        full = self._count % self.full_every == 0
        self._count += 1
        mono = self.clock.monotonic()
        disk = disk_free_mb(self.disk_path)
        temp = cpu_temp_c(self.thermal_path)
        current = {
            "detail": snap.detail[:500],
            "item": snap.item,
            "gain_db": snap.gain_db,
            "amp_on": snap.amp_on,
            "clock_trusted": snap.clock_trusted,
            "on_backup": snap.on_backup,
            "disk_free_mb": None if disk is None else int(disk),
            "cpu_temp_c": temp,
            "content_missing": None if content is None else content[0],
            "content_failed": None if content is None else content[1],
        }
        fields = current if full else {k: v for k, v in current.items() if self._changed(k, v)}
        if full:
            self._last = dict(current)
        else:
            self._last.update(fields)
        return Telemetry(
            id=f"t-{self.boot_id[:8]}-{self._count}",
            station=self.station,
            ts=self.clock.wall().replace(microsecond=0),
            uptime_s=round(max(0.0, mono - self._started_mono)),
            link_uptime_s=0 if link_up_since is None else round(max(0.0, mono - link_up_since)),
            state=snap.state,
            outbox_depth=outbox_depth,
            dropped_telemetry=counters.get("dropped_telemetry", 0),
            dropped_reports=counters.get("dropped_reports", 0),
            **{k: v for k, v in fields.items() if k != "detail" or v},
        )

    def _changed(self, key: str, value) -> bool:
        old = self._last.get(key)
        if value is None:
            return False  # JSON cannot say "cleared" without null; `state` tells (idle has no item)
        if old is None:
            return True
        if key == "disk_free_mb":
            return abs(value - old) >= self.disk_step_mb
        if key == "cpu_temp_c":
            return abs(value - old) >= self.temp_step_c
        return value != old
