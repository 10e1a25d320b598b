"""Ports: what the runtime needs from the outside world. Each Protocol says what an implementation MUST do
and what it MAY do. Real adapters live in `firmware.adapters`, simulated ones in `simulator`; contract tests in
`tests/adapters/` run one suite over both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import numpy as np


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
