"""Ports: what the runtime and the app are handed from the outside world. Each Protocol says what an
implementation MUST do and what it MAY do. Real adapters live in `firmware.adapters` (and `firmware.audio`,
`firmware.reporting`), simulated ones in `simulator`; contract tests in `tests/adapters/` run one suite over
both, and `tests/firmware/test_ports.py` checks that every implementation offers every member of its port.

`firmware.app.compose` is typed against these: the daemon and a fleet station differ only in the parts
passed in (the player, the reporter, GPIO and the notifier).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from firmware.core.commands import Play, PlayLogEntry


class Clock(Protocol):
    """Two readings of time.

    MUST: `wall()` returns an aware datetime in the station's timezone; `monotonic()` returns seconds that
    never go backwards (steps of the wall clock do not move it).
    MAY: `synced()` says whether the OS reports NTP synchronisation (None when unknown).
    """

    def wall(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def synced(self) -> bool | None: ...


class Source(Protocol):
    """A stream of mono float32 samples in [-1, 1] at the player's rate.

    MUST: `read(n)` returns at most n frames as a 1-D float32 array; an empty array means the source has
    ended; decoding errors raise `firmware.audio.SourceError` with a reason a technician can read. Memory
    MUST NOT grow with the length of the programme (decode in blocks, never whole files).
    MUST: `close()` releases files, processes and sockets; safe to call twice.
    MAY: `seek(seconds)` before the first read (joining a programme in progress).
    """

    rate: int

    def read(self, frames: int) -> np.ndarray: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Where int16 mono blocks go: a sound card, a WAV file, a counter.

    MUST: `write(block)` blocks until the sink accepted the block (so a writer is paced by the sink) and
    raises `firmware.audio.SinkError` on a device error; `open()` may be called again after an error to
    recover the device. `latency_s` is how much audio the sink buffers beyond the block being written.
    """

    rate: int
    latency_s: float

    def open(self) -> None: ...

    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


class Amplifier(Protocol):
    """The amplifier relay.

    MUST: `on()`/`off()` are idempotent; `ready_in()` returns the seconds left before the warm-up is over
    (0 when on and warm, > 0 while warming, and it switches the relay on if it was off).
    MAY: `release()` (the player calls it when it goes idle): switch off after an idle hang time unless used
    again meanwhile.
    """

    def on(self) -> None: ...

    def off(self) -> None: ...

    def ready_in(self) -> float: ...

    @property
    def is_on(self) -> bool: ...


class Link(Protocol):
    """The station's MQTT link to the district.

    MUST: connect in the background and keep reconnecting with backoff; deliver every message received on a
    subscribed topic to `on_message(topic, payload, retained)` and link changes to `on_link(up)`; callbacks
    are called from the network thread and MUST only enqueue. `publish()` never blocks on the network: it
    returns at once and calls `on_done(ok)` from the network thread once the broker acknowledged (QoS 1
    PUBACK) or the publish failed.
    """

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> None: ...

    @property
    def connected(self) -> bool: ...


class Player(Protocol):
    """Carries out the core's audio commands (the runtime thread calls it; it MUST NOT block on audio).

    MUST: `play(cmd)` replaces what plays by `cmd` (a short fade, one hand-over block) and later puts
    `PlaybackStarted`, then `PlaybackEnded` or `PlaybackFailed`, for `cmd.play_id` on the runtime's queue;
    it never plays longer than `cmd.max_s`. `stop(play_id, fade_s)` and `set_gain(play_id, gain_db, cap_db)`
    ignore a `play_id` that no longer plays; the gain never exceeds `cap_db`. `close(fade_s)` fades out, ends
    what plays and releases the sink; safe to call twice. `alive` is False once the player can no longer play
    (thread dead or stuck): the runtime then starves the systemd watchdog.
    MAY: `start()` starts its thread (the app calls it once, before the runtime starts); a player without
    a thread of its own does nothing.
    """

    def start(self) -> None: ...

    def play(self, cmd: Play) -> None: ...

    def stop(self, play_id: str, fade_s: float = 0.03) -> None: ...

    def set_gain(self, play_id: str, gain_db: float, cap_db: float) -> None: ...

    def close(self, fade_s: float = 0.03, timeout_s: float = 5.0) -> None: ...

    @property
    def alive(self) -> bool: ...


class Reporter(Protocol):
    """Everything the station says to the district besides acks: play log, state, telemetry fields.

    MUST: `report(entry)` keeps the play-log entry until the broker has it (or hands it to a link that
    does), never blocks the runtime on the network, and never raises on a full disk or a dead link (it
    logs). `state_changed(state, detail, **fields)`, `update(**fields)` and `alert_received(alert_id)`
    record what telemetry and the daily report say. `on_link(up)` is called from the network thread and
    MUST only record or enqueue. `start()`/`stop()` start and join its threads, if any.
    MAY: `telemetry_now()` publishes a telemetry message at once (the `telemetry` remote command) and
    returns it; `content_status` is a callable the app sets to report missing content.
    """

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def report(self, entry: PlayLogEntry) -> None: ...

    def state_changed(self, state: str, detail: str = "", **fields: Any) -> None: ...

    def update(self, **fields: Any) -> None: ...

    def alert_received(self, alert_id: str) -> None: ...

    def on_link(self, up: bool) -> None: ...


class StatusLed(Protocol):
    """The status LED.

    MUST: `show(pattern)` shows one of `firmware.adapters.gpio.LED_PATTERNS` ("booting", "online",
    "offline", "playing", "alert", "fault"), idempotent, returning at once (blinking runs elsewhere); an
    unknown pattern raises ValueError. `close()` switches it off and releases the pin.
    """

    def show(self, pattern: str) -> None: ...

    def close(self) -> None: ...


class StateStore(Protocol):
    """The station's small persisted facts (`state/times.json`, `schedule.json`, `playing.json`).

    MUST: every save is atomic (a power cut leaves the old or the new version, never half) and raises
    OSError when it cannot write; a read of a missing or unreadable file returns None, never raises.
    `last_alive` and `last_trusted` are aware datetimes as last saved by `save_times`.
    MAY: batch or skip writes that change nothing (SD cards die of writes).
    """

    @property
    def last_alive(self) -> datetime | None: ...

    @property
    def last_trusted(self) -> datetime | None: ...

    def save_times(self, *, last_alive: datetime, last_trusted: datetime | None) -> None: ...

    def load_schedule_bytes(self) -> bytes | None: ...

    def save_schedule_bytes(self, raw: bytes) -> None: ...

    def load_playing(self) -> dict | None: ...

    def save_playing(self, record: dict) -> None: ...

    def clear_playing(self) -> None: ...


class Notifier(Protocol):
    """The service manager (systemd `Type=notify`).

    MUST: every call returns at once and never raises (no manager: nothing happens); `ready(status)` is sent
    once, after the first plan; `watchdog()` only while the station's threads are alive (the runtime
    decides); `stopping()` on SIGTERM. `enabled` is False when there is no manager to talk to;
    `watchdog_interval_s` is how often to ping (None: no watchdog configured).
    MAY: `status(text)` shows a one-line status (`systemctl status`).
    """

    @property
    def enabled(self) -> bool: ...

    watchdog_interval_s: float | None

    def ready(self, status: str = "") -> None: ...

    def status(self, text: str) -> None: ...

    def watchdog(self) -> None: ...

    def stopping(self) -> None: ...
