"""Simulated audio sinks implementing `firmware.ports.Sink`.

- `RecordingSink`: keeps every block with the time it was accepted (clock injected); `to_wav()`; not paced.
- `PacedSink`: consumes in real time like a sound card (write returns once the audio ahead of the playhead
  fits in `latency_s`), records when each block starts sounding.
- `CountingSink`: frames, blocks, first/last block time; no storage (the fleet simulator runs hundreds).

Test verbs, like gpiozero's MockPin: `fail_after(n)` makes writes raise after n more blocks, `unplug()` makes
open/write raise until `replug()`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware.audio import SinkError


@dataclass(frozen=True, slots=True)
class Accepted:
    """One block: when write() was called, when its first sample sounds (paced sinks), and the samples."""

    t_write: float
    t_play: float
    block: np.ndarray


class _Faults:
    """The test verbs shared by all simulated sinks."""

    def __init__(self):
        self._fail_in: int | None = None
        self._unplugged = False
        self.opens = 0
        self.errors = 0
        self.changed = threading.Condition()

    def fail_after(self, blocks: int, reason: str = "simulated device error") -> None:
        """The write after `blocks` more accepted blocks raises SinkError (and every write after it, until
        the next successful open())."""
        self._fail_in = blocks
        self._fail_reason = reason

    def unplug(self) -> None:
        """The device disappears: writes and opens raise SinkError until `replug()`."""
        self._unplugged = True

    def replug(self) -> None:
        self._unplugged = False

    def _check_open(self) -> None:
        if self._unplugged:
            self._error("device unplugged")
        self._fail_in = None if self._fail_in == 0 else self._fail_in
        with self.changed:
            self.opens += 1
            self.changed.notify_all()

    def _check_write(self) -> None:
        if self._unplugged:
            self._error("device unplugged")
        if self._fail_in is not None:
            if self._fail_in <= 0:
                self._error(self._fail_reason)
            self._fail_in -= 1

    def _error(self, reason: str) -> None:
        with self.changed:
            self.errors += 1
            self.changed.notify_all()
        raise SinkError(reason)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until `predicate()` holds (checked whenever a block is accepted, an open or an error)."""
        with self.changed:
            return self.changed.wait_for(predicate, timeout)


class RecordingSink(_Faults):
    """Accepts every block at once and keeps it with `clock()` at acceptance."""

    def __init__(
        self, rate: int = 48000, *, clock: Callable[[], float] = time.monotonic, latency_s: float = 0.0
    ):
        super().__init__()
        self.rate = rate
        self.latency_s = latency_s
        self.clock = clock
        self.accepted: list[Accepted] = []
        self.is_open = False

    def open(self) -> None:
        self._check_open()
        self.is_open = True

    def write(self, block: np.ndarray) -> None:
        if not self.is_open:
            raise SinkError("write to a closed sink")
        self._check_write()
        t = self.clock()
        with self.changed:
            self.accepted.append(Accepted(t, t, np.array(block, dtype=np.int16, copy=True)))
            self.changed.notify_all()

    def close(self) -> None:
        self.is_open = False

    @property
    def frames(self) -> int:
        return sum(len(a.block) for a in self.accepted)

    def samples(self) -> np.ndarray:
        if not self.accepted:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([a.block for a in self.accepted])

    def to_wav(self, path) -> None:
        import soundfile as sf

        sf.write(path, self.samples(), self.rate, subtype="PCM_16")


class _Pacer:
    """Real-time consumption: the audio written so far ends at `self.end`; write() returns when what is
    queued ahead of the playhead is at most `latency_s`. After an idle gap the playhead restarts at now."""

    def __init__(self, rate: int, latency_s: float):
        self.rate = rate
        self.latency_s = latency_s
        self.end = 0.0
        self._closed = threading.Event()

    def pace(self, frames: int) -> float:
        now = time.monotonic()
        start = max(now, self.end)
        self.end = start + frames / self.rate
        wait = self.end - self.latency_s - time.monotonic()
        if wait > 0:
            # Wait on an Event, not sleep(): close() ends the wait at once.
            self._closed.wait(wait)
        return start

    def stop(self) -> None:
        self._closed.set()

    def restart(self) -> None:
        self._closed.clear()
        self.end = 0.0


class PacedSink(RecordingSink):
    """Like a sound card: accepts blocks in real time, keeps them with the instant each starts sounding."""

    def __init__(self, rate: int = 48000, *, latency_s: float = 0.02, keep: bool = True):
        super().__init__(rate, latency_s=latency_s)
        self._pacer = _Pacer(rate, latency_s)
        self.keep = keep

    def open(self) -> None:
        self._check_open()
        self._pacer.restart()
        self.is_open = True

    def write(self, block: np.ndarray) -> None:
        if not self.is_open:
            raise SinkError("write to a closed sink")
        self._check_write()
        t_write = time.monotonic()
        t_play = self._pacer.pace(len(block))
        with self.changed:
            stored = np.array(block, dtype=np.int16, copy=True) if self.keep else np.zeros(0, np.int16)
            self.accepted.append(Accepted(t_write, t_play, stored))
            self.changed.notify_all()

    def close(self) -> None:
        self._pacer.stop()
        self.is_open = False


class CountingSink(_Faults):
    """Counts frames and blocks and remembers when the first and last block sounded. Paced by default (a
    fleet of unpaced players would burn the CPU decoding as fast as they can)."""

    def __init__(self, rate: int = 48000, *, paced: bool = True, latency_s: float = 0.02):
        super().__init__()
        self.rate = rate
        self.latency_s = latency_s
        self.paced = paced
        self._pacer = _Pacer(rate, latency_s)
        self.frames = 0
        self.blocks = 0
        self.peak = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.is_open = False

    def open(self) -> None:
        self._check_open()
        self._pacer.restart()
        self.is_open = True

    def write(self, block: np.ndarray) -> None:
        if not self.is_open:
            raise SinkError("write to a closed sink")
        self._check_write()
        t = self._pacer.pace(len(block)) if self.paced else time.monotonic()
        with self.changed:
            self.frames += len(block)
            self.blocks += 1
            if len(block):
                self.peak = max(self.peak, int(np.max(np.abs(block.astype(np.int32)))))
            if self.first_t is None:
                self.first_t = t
            self.last_t = t
            self.changed.notify_all()

    def close(self) -> None:
        self._pacer.stop()
        self.is_open = False
