"""N simulated stations in one process: shared network loops, one timer thread, one runtime thread each.

    fleet = Fleet(FleetOptions(stations=1000, communes=20, broker_url=url), workdir=tmp)
    fleet.start()
    fleet.wait(lambda s: s.subscribed == s.stations, timeout=120)
    ...
    fleet.stop()

Threads: one `SharedLoop` per core (each drives its share of the MQTT links through a selector), one timer
thread for every virtual player, and one `Runtime` thread per station (the daemon's own loop, unchanged).
State: one directory per station under `workdir/stations/` (replay cache, times, accepted schedule).
"""

from __future__ import annotations

import logging
import os
import resource
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from firmware.adapters.mqtt import SharedLoop
from firmware.config import StationConfig, parse_config_text
from firmware.core.schedule import ScheduleDoc
from firmware.protocol.keys import (
    SigningKey,
    generate,
    load_trust_anchors,
    signing_key_pem,
    trust_anchor_json,
)
from simulator.clock import HostClock
from simulator.fleet.player import FirstBlock
from simulator.fleet.station import FleetStation
from simulator.fleet.timers import Timers

log = logging.getLogger(__name__)

BASE_CONFIG = """
[station]
district = "{district}"
commune = "c00"
id = "s0000"
[policy]
alert_gain_db = -3.0
[[policy.windows]]
start = "00:00"
end = "24:00"
cap_db = -6.0
[gpio]
enabled = false
[broker]
url = "{broker_url}"
keepalive_s = {keepalive_s}
[trust]
key_files = ["{trust}"]
"""


@dataclass(frozen=True)
class FleetOptions:
    stations: int = 10
    communes: int = 1
    district: str = "hv"
    broker_url: str = ""
    loops: int = 0  # SharedLoops; 0 = one per core
    reporting: str = "light"  # "light" | "outbox"
    keepalive_s: int = 50
    schedule: ScheduleDoc | None = None
    prefix: str = "s"
    first: int = 0  # index of the first station (a worker process of a multi-process fleet runs a slice)


@dataclass(frozen=True)
class Summary:
    stations: int
    online: int
    subscribed: int
    playing: int
    alerting: int
    faults: int
    plays: int
    reports: int

    def line(self) -> str:
        return (f"stations {self.stations}  online {self.online}  playing {self.playing}  "
                f"alerting {self.alerting}  faults {self.faults}  plays {self.plays}  reports {self.reports}")


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit (each station holds a socket, mosquitto one per
    client). Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


def commune_ids(k: int) -> list[str]:
    return [f"c{i:02d}" for i in range(k)]


def station_id(prefix: str, i: int) -> str:
    return f"{prefix}{i:04d}"


@dataclass
class Fleet:
    opts: FleetOptions
    workdir: Path
    key: SigningKey | None = None  # the district key the stations trust; generated when not given
    trust_file: Path | None = None  # or: an existing trust-anchor file (worker processes; `key` stays None)
    on_first_block: Callable[[FirstBlock], None] | None = None
    on_command: Callable | None = None
    clock: object = None
    stations: list[FleetStation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self.loops: list[SharedLoop] = []
        self.timers: Timers | None = None
        if self.trust_file is not None:
            self.trust_path = Path(self.trust_file)
            return
        if self.key is None:
            self.key = generate(self.opts.district)
        (self.workdir / "district.key").write_bytes(signing_key_pem(self.key))
        (self.workdir / "district.key").chmod(0o600)
        self.trust_path = self.workdir / "trust.json"
        self.trust_path.write_bytes(trust_anchor_json([self.key.anchor()]))

    # -- building ----------------------------------------------------------------------------------------------

    def base_config(self) -> StationConfig:
        return parse_config_text(BASE_CONFIG.format(
            district=self.opts.district, broker_url=self.opts.broker_url, keepalive_s=self.opts.keepalive_s,
            trust=self.trust_path), "fleet")

    def configs(self) -> list[StationConfig]:
        base = self.base_config()
        communes = commune_ids(max(1, self.opts.communes))
        out = []
        for i in range(self.opts.first, self.opts.first + self.opts.stations):
            sid = station_id(self.opts.prefix, i)
            ident = base.station.model_copy(update={"commune": communes[i % len(communes)], "id": sid})
            paths = base.paths.model_copy(update={"state_dir": str(self.workdir / "stations" / sid)})
            out.append(base.model_copy(update={"station": ident, "paths": paths}))
        return out

    def start(self) -> Fleet:
        n = self.opts.stations
        raise_fd_limit(n * 2 + 256)
        clock = self.clock or HostClock(self.base_config().tz)
        self.clock = clock
        self.timers = Timers()
        if self.opts.broker_url:
            loops = self.opts.loops or os.cpu_count() or 1
            self.loops = [SharedLoop(name=f"loa-mqtt-shared-{i}") for i in range(loops)]
        trusted = load_trust_anchors(str(self.trust_path))  # parsed once, shared (read-only) by every station
        for i, cfg in enumerate(self.configs()):
            loop = self.loops[i % len(self.loops)] if self.loops else None
            self.stations.append(FleetStation(
                cfg, timers=self.timers, loop=loop, clock=clock, schedule=self.opts.schedule, trusted=trusted,
                reporting=self.opts.reporting, on_first_block=self.on_first_block, on_change=self._changed,
                on_command=self.on_command))
        for st in self.stations:
            st.start_runtime()
        for st in self.stations:
            if not st.runtime.wait_ready(30):
                raise RuntimeError(f"station {st.id}: runtime did not start")
        for st in self.stations:
            st.start_link()
        log.info("fleet of %d stations started (%d network loops)", n, len(self.loops))
        return self

    def stop(self) -> None:
        # In parallel: each stop joins a runtime thread and waits for its link's DISCONNECT to be written.
        with ThreadPoolExecutor(max_workers=32, thread_name_prefix="loa-fleet-stop") as pool:
            list(pool.map(lambda st: st.stop(), self.stations))
        for loop in self.loops:
            loop.close()
        if self.timers is not None:
            self.timers.close()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- watching ----------------------------------------------------------------------------------------------

    def _changed(self, station: FleetStation) -> None:
        with self._cond:
            self._cond.notify_all()

    def summary(self) -> Summary:
        sts = list(self.stations)
        return Summary(
            stations=len(sts),
            online=sum(s.online for s in sts),
            subscribed=sum(s.subscribed for s in sts),
            playing=sum(s.state == "programme" for s in sts),
            alerting=sum(s.state == "alert" for s in sts),
            faults=sum(s.state == "fault" or not s.healthy for s in sts),
            plays=sum(s.player.plays for s in sts),
            reports=sum(getattr(s.reporter, "reports", 0) for s in sts),
        )

    def wait(self, predicate: Callable[[Summary], bool], timeout: float) -> bool:
        """Block until `predicate(summary)` holds (re-checked on every link, subscription or state change)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.summary()), timeout)

    def notify(self) -> None:
        self._changed(None)
