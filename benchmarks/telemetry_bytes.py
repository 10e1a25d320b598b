"""MQTT bytes per station per simulated day at the default reporting settings, against the 100 KB/day limit.

    python -m benchmarks.telemetry_bytes [--minutes 3] [--speed 60]

How it is measured. A byte-counting TCP proxy sits between a real station link (`firmware.adapters.mqtt`,
with the `Reporter`) and a private mosquitto; it counts every byte of MQTT in both directions (fixed
headers, variable headers, properties, payloads; not TCP/IP or TLS overhead, which depend on the carrier).

How time is accelerated. A day of defaults is: a PINGREQ/PINGRESP pair per idle keepalive (30 s, the station
config's default), telemetry every 300 s (each with its PUBACK), a day's play log and one daily report, the
birth message. Running all of it for a real day is pointless, so the timers are divided by `--speed`
(keepalive 30 s -> 30/speed s,
telemetry 300 s -> 300/speed s) and we run `--minutes` of real time. Every periodic message keeps its exact
size (sizes do not depend on the interval), so bytes per real minute x speed x 1440 = bytes per day of the
periodic traffic. Telemetry is full once an hour and a delta otherwise, so the window must hold whole hours of
simulated time (default 3.6 min at x50 = 3 h). The per-day one-offs (the connect/birth, a typical play log of 8 programmes + 1 alert, the
daily report) are sent once during the run and counted at their real size, not scaled. Keepalive is at least
1 s (MQTT's unit), so speeds above 50 measure telemetry faster but pings are extrapolated from their fixed
4 bytes per interval; the printout says which.

Offline detection is checked on the side: keepalive 30 s gives the Will at most 1.5 x 30 + 7 s (mosquitto's
keepalive sweep) = 52 s after the last packet, <= 90 s.

`CountingProxy` is also used by the link tests to black-hole a connection (`freeze()`): the broker then sees
silence, exactly like a station whose power or 3G link died, and publishes the Will after 1.5 x keepalive.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from simulator.clock import HostClock

LIMIT_BYTES_PER_DAY = 100 * 1024


class CountingProxy:
    """A TCP proxy on 127.0.0.1:<free port> in front of `upstream_port`, counting bytes both ways.

    `freeze()`: keep the connections open but forward nothing (a dead link); `thaw()` undoes it.
    `cut()`: close every connection at once (a socket torn down).
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.up_bytes = 0  # client -> broker
        self.down_bytes = 0  # broker -> client
        self.connections = 0
        self._frozen = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def total(self) -> int:
        return self.up_bytes + self.down_bytes

    def start(self) -> CountingProxy:
        self._acceptor.start()
        return self

    def reset(self) -> None:
        with self._lock:
            self.up_bytes = self.down_bytes = 0

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def cut(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._server.close()
        for t in [self._acceptor, *self._threads]:
            if t.is_alive():
                t.join(2)

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self.connections += 1
                self._socks += [client, upstream]
                n = self.connections
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                t = threading.Thread(target=self._pump, args=(src, dst, up), name=f"proxy-{n}-{'up' if up else 'down'}")
                t.daemon = True
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                if not self._frozen.is_set():
                    for s in (dst, src):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                return
            if self._frozen.is_set():
                continue  # black hole: the other side hears nothing
            with self._lock:
                if up:
                    self.up_bytes += len(data)
                else:
                    self.down_bytes += len(data)
            try:
                dst.sendall(data)
            except OSError:
                return


# -- the measurement -----------------------------------------------------------------------------------------


def typical_day(now: datetime):
    """8 programmes (2 sessions x 4 items, 15 min each, one missed) and one alert: a busy commune's day."""
    from firmware.core.commands import PlayLogEntry

    out = []
    for i in range(8):
        start = now.replace(hour=6 if i < 4 else 17, minute=15 * (i % 4), second=0, microsecond=0)
        missed = i == 7
        out.append(
            PlayLogEntry(
                entry_id=f"p-{now:%Y%m%d}-{i}-{uuid.uuid4().hex[:6]}",
                kind="programme",
                ref=f"chuong-trinh-{i}",
                title=f"Bản tin thời sự {i}",
                level="normal",
                requested_start=start,
                requested_end=start + timedelta(minutes=15),
                actual_start=None if missed else start,
                actual_end=None if missed else start + timedelta(minutes=15),
                played_s=0.0 if missed else 900.0,
                gain_db=None if missed else -6.0,
                result="missed" if missed else "played",
                reason="station offline" if missed else "",
            )
        )
    start = now.replace(hour=10, minute=2, second=0, microsecond=0)
    out.append(
        PlayLogEntry(
            entry_id=f"a-{uuid.uuid4().hex[:12]}",
            kind="alert",
            ref="bao-so-9",
            title="Cảnh báo bão số 9",
            level="actual",
            requested_start=start,
            requested_end=None,
            actual_start=start,
            actual_end=start + timedelta(seconds=95),
            played_s=95.0,
            gain_db=0.0,
            result="played",
        )
    )
    return out


def measure(minutes: float, speed: float, *, keepalive_s: int | None = None) -> dict:
    from firmware.adapters.mqtt import offline_within_s, station_link
    from firmware.config import BrokerConfig
    from firmware.protocol.reports import StationIds
    from firmware.reporting import Outbox, Reporter
    from firmware.reporting.reporter import DEFAULT_TELEMETRY_INTERVAL_S
    from simulator.broker import Mosquitto

    # the station config's default (30 s), which provisioning also writes into every station.toml
    keepalive_s = keepalive_s or BrokerConfig.model_fields["keepalive_s"].default
    keepalive = max(1, round(keepalive_s / speed))
    interval = DEFAULT_TELEMETRY_INTERVAL_S / speed
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    clock = HostClock(tz)
    ids = StationIds("hoa-vang", "hoa-bac", "hoa-bac-01")
    work = Path(tempfile.mkdtemp(prefix="loa-bench-"))
    with Mosquitto(workdir=work / "mosq") as broker, CountingProxy(broker.port) as proxy:
        reporter_box: list = []
        link = station_link(
            proxy.url,
            ids,
            fw="0.1.0",
            boot_id=uuid.uuid4().hex,
            config_hash="sha256:" + "0" * 16,
            wall=clock.wall,
            subscriptions=[
                f"loa/v1/{ids.district}/alert",
                f"loa/v1/{ids.district}/{ids.commune}/alert",
                ids.topic("alert"),
                f"loa/v1/{ids.district}/schedule",
                f"loa/v1/{ids.district}/{ids.commune}/schedule",
                ids.topic("schedule"),
                ids.topic("cmd"),
            ],
            on_link=lambda up: reporter_box and reporter_box[0].on_link(up),
            keepalive_s=keepalive,
        )
        outbox = Outbox(work / "outbox.sqlite")
        thermal = work / "thermal_zone0_temp"  # a Pi has one; this machine may not: same bytes either way
        thermal.write_text("48312\n")
        reporter = Reporter(
            link, outbox, ids, clock, boot_id=uuid.uuid4().hex, telemetry_interval_s=interval, thermal_path=thermal
        )
        # Every field a running station knows, so telemetry has its real size.
        reporter.update(gain_db=-6.0, amp_on=False, clock_trusted=True, on_backup=False)
        reporter.content_status = lambda: (0, 0)  # a station with a content cache counts its missing files
        reporter_box.append(reporter)
        link.start()
        deadline = time.monotonic() + 10
        while not link.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        reporter.start()
        # One-offs: connect + birth, a day's play log, the daily report.
        wait_empty(outbox)
        for e in typical_day(clock.wall()):
            reporter.report(e)
        reporter.state_changed("idle", "")
        reporter.daily_now(clock.wall().date())
        wait_empty(outbox)
        time.sleep(0.5)
        one_offs = proxy.total
        proxy.reset()
        t0 = time.monotonic()
        time.sleep(minutes * 60)  # the measured window of periodic traffic: sleeping *is* the experiment
        elapsed = time.monotonic() - t0
        periodic = proxy.total
        up, down = proxy.up_bytes, proxy.down_bytes
        reporter.stop()
        link.stop()
        outbox.close()
    scale = 86400 / (elapsed * speed)
    per_day = one_offs + periodic * scale
    if abs(keepalive * speed - keepalive_s) > keepalive_s * 0.05:
        # keepalive could not be scaled exactly (whole seconds): correct the pings, 4 bytes a pair.
        per_day += 4 * (86400 / keepalive_s - 86400 / (keepalive * speed))
    return {
        "speed": speed,
        "minutes": minutes,
        "keepalive_s": keepalive,
        "telemetry_s": interval,
        "one_offs_bytes": one_offs,
        "periodic_bytes": periodic,
        "periodic_up": up,
        "periodic_down": down,
        "bytes_per_day": per_day,
        "keepalive_real_s": keepalive_s,
        "offline_within_s": offline_within_s(keepalive_s),
    }


def wait_empty(outbox, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while outbox.depth() and time.monotonic() < deadline:
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--minutes", type=float, default=3.6,
        help="real minutes of periodic traffic (default 3.6: at x50, three whole hours of telemetry, each with "
        "its one full message and eleven deltas)",
    )
    p.add_argument("--speed", type=float, default=50.0, help="time acceleration (default 50: keepalive 1 s)")
    p.add_argument("--keepalive", type=int, default=None,
                   help="station keepalive in s (default 30: the station config's, as provisioned)")
    args = p.parse_args(argv)
    r = measure(args.minutes, args.speed, keepalive_s=args.keepalive)
    kb = r["bytes_per_day"] / 1024
    print(
        f"telemetry_bytes: {kb:.1f} KB/station/day (limit {LIMIT_BYTES_PER_DAY / 1024:.0f} KB/day, "
        f"ratio {r['bytes_per_day'] / LIMIT_BYTES_PER_DAY:.2f}); offline shown within "
        f"{r['offline_within_s']:.1f} s (limit 90 s) at keepalive {r['keepalive_real_s']} s"
    )
    print(
        f"  measured {r['minutes']:g} min at x{r['speed']:g} (keepalive {r['keepalive_s']} s, telemetry every "
        f"{r['telemetry_s']:.2f} s): periodic {r['periodic_bytes']} B (up {r['periodic_up']}, down "
        f"{r['periodic_down']}), one-offs {r['one_offs_bytes']} B (connect, birth, 9 play-log entries, daily)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
