"""A virtual player: the `Player` port without audio, for fleets.

It keeps time the way the real player would: `PlaybackStarted` at the instant the first block would be handed
to the sink (here: as soon as the shared timer thread takes the play, the same thread hop the real player
makes), `PlaybackEnded(completed=True)` when the source's duration (`simulator.dayrun.spec_duration`, less
the join offset, bounded by `max_s`) has passed, `PlaybackEnded(completed=False)` when stopped or preempted.
No samples are synthesised, decoded or written, so 1,000 of them cost one thread. An endless source (a live
relay) plays until stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from firmware.core.commands import Play
from firmware.core.events import PlaybackEnded, PlaybackStarted
from simulator.dayrun import spec_duration
from simulator.fleet.timers import Timers


@dataclass(frozen=True, slots=True)
class FirstBlock:
    """Where and when a play's first block was handed to the (virtual) sink: `t` is `time.monotonic()`."""

    station: str
    play_id: str
    kind: str
    ref: str
    t: float
    t_inbound: float | None = None  # when the station's last message arrived off the network (fleet breakdown)


@dataclass
class _Item:
    cmd: Play
    t_start: float
    end_token: int | None = None


class VirtualPlayer:
    """Implements `firmware.ports.Player` (`start`, `play`, `stop`, `set_gain`, `close`, `alive`) on timers."""

    def __init__(self, station: str, timers: Timers, emit: Callable[[object], None], *,
                 on_first_block: Callable[[FirstBlock], None] | None = None):
        self.station = station
        self.timers = timers
        self._emit = emit
        self._on_first_block = on_first_block
        self._item: _Item | None = None
        self._lock = threading.Lock()  # play/stop come from the runtime thread, ends from the timer thread
        self.plays = 0
        self.completed = 0
        self.stopped = 0

    # -- the runtime's calls (runtime thread): hop to the timer thread like the real player's queue ------------

    def start(self) -> None:
        """`firmware.ports.Player.start`: nothing to start, the fleet's shared timer thread keeps time."""

    def play(self, cmd: Play) -> None:
        self.timers.call_soon(lambda: self._start(cmd))

    def stop(self, play_id: str, fade_s: float = 0.03) -> None:
        self.timers.call_soon(lambda: self._stop(play_id))

    def set_gain(self, play_id: str, gain_db: float, cap_db: float) -> None:
        pass  # gain changes cost nothing to a player that makes no sound

    def close(self, fade_s: float = 0.03, timeout_s: float = 5.0) -> None:
        done = threading.Event()

        def end() -> None:
            with self._lock:
                item, self._item = self._item, None
            if item is not None:
                self._finish(item, completed=False)
            done.set()

        if self.timers.alive:
            self.timers.call_soon(end)
            done.wait(timeout_s)

    @property
    def alive(self) -> bool:
        return self.timers.alive

    @property
    def current(self) -> Play | None:
        item = self._item
        return item.cmd if item else None

    # -- timer thread ------------------------------------------------------------------------------------------

    def _start(self, cmd: Play) -> None:
        with self._lock:
            before, self._item = self._item, None
        if before is not None:
            self._finish(before, completed=False)  # preempted, as the real player ends it after its fade
        t = time.monotonic()
        item = _Item(cmd, t)
        length = spec_duration(cmd.source)
        remaining = None if length is None else max(0.0, length - cmd.offset_s)
        if cmd.max_s is not None:
            remaining = cmd.max_s if remaining is None else min(remaining, cmd.max_s)
        with self._lock:
            self._item = item
            self.plays += 1
        if self._on_first_block is not None:
            self._on_first_block(FirstBlock(self.station, cmd.play_id, cmd.kind, cmd.ref, t))
        self._emit(PlaybackStarted(cmd.play_id))
        if remaining is not None:
            item.end_token = self.timers.call_at(t + remaining, lambda: self._ran_out(item))

    def _ran_out(self, item: _Item) -> None:
        with self._lock:
            if self._item is not item:
                return
            self._item = None
        self._finish(item, completed=True)

    def _stop(self, play_id: str) -> None:
        with self._lock:
            item = self._item
            if item is None or item.cmd.play_id != play_id:
                return
            self._item = None
        self._finish(item, completed=False)

    def _finish(self, item: _Item, *, completed: bool) -> None:
        if item.end_token is not None and not completed:
            self.timers.cancel(item.end_token)
        played = max(0.0, time.monotonic() - item.t_start)
        if completed:
            self.completed += 1
        else:
            self.stopped += 1
        self._emit(PlaybackEnded(item.cmd.play_id, played, completed))
