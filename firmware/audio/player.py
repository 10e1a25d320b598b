"""The player thread: pulls blocks from the current source, applies gain/fade/limiter, writes to the sink.

Threading: the runtime calls `play()`, `stop()`, `set_gain()` and `close()` from its own thread; they only
queue a command and wake the player. The player thread owns the source, the DSP state and the sink, and
applies queued commands between blocks, so a preemption costs at most one block plus the sink's buffer.
Events (`PlaybackStarted`, `PlaybackEnded`, `PlaybackFailed`) go out through `emit`, which must only
enqueue (it is called from the player thread).

Idle: the player writes nothing when nothing plays. A blocking PortAudio stream simply underruns and
restarts on the next write, and no writes means no CPU and no pointless hiss through a warm amplifier.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware.audio import SourceError
from firmware.audio.dsp import Chain
from firmware.audio.sources import open_source as default_open_source
from firmware.audio.sources import skip
from firmware.core.commands import Play
from firmware.core.events import PlaybackEnded, PlaybackFailed, PlaybackStarted

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class NowPlaying:
    """What the player is doing, for telemetry: a snapshot, replaced (never mutated) by the player thread."""

    play_id: str
    kind: str
    gain_db: float
    cap_db: float
    played_s: float
    started: bool


class _Item:
    def __init__(self, cmd: Play, rate: int):
        self.cmd = cmd
        self.source = None
        self.chain = Chain(rate, cmd.gain_db, cmd.cap_db)
        self.frames = 0
        self.started = False
        self.fading = False
        self.limit = None if cmd.max_s is None else max(0, int(cmd.max_s * rate))


class Player:
    """See the module docstring. Construct, `start()`, then `play()`/`stop()`/`set_gain()`; `close()`."""

    def __init__(
        self,
        sink,
        *,
        amplifier=None,
        open_source: Callable = default_open_source,
        emit: Callable[[object], None] = lambda event: None,
        block_ms: int = 20,
        rate: int = 48000,
        stuck_blocks: int = 50,
        backoff_s: tuple[float, float] = (BACKOFF_FIRST_S, BACKOFF_MAX_S),
        name: str = "loa-player",
    ):
        if not (1 <= block_ms <= 500):
            raise ValueError(f"block_ms {block_ms} is out of range [1, 500]")
        self.sink = sink
        self.amplifier = amplifier
        self.rate = rate
        self.block_frames = int(rate * block_ms / 1000)
        self.block_s = self.block_frames / rate
        self._open_source = open_source
        self._emit_fn = emit
        self._stuck_s = max(stuck_blocks * self.block_s, 0.2) + float(getattr(sink, "latency_s", 0.0))
        self._backoff_first, self._backoff_max = backoff_s
        self._cmds: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._item: _Item | None = None
        self._next: Play | None = None
        self._closing = False
        self._sink_ok = False
        self._backoff = self._backoff_first
        self._next_attempt = 0.0
        self._busy_since: float | None = None
        self._current: NowPlaying | None = None

    # ---- API for the runtime (any thread) -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def play(self, cmd: Play) -> None:
        self._submit(("play", cmd))

    def stop(self, play_id: str, fade_s: float = 0.03) -> None:
        self._submit(("stop", play_id, fade_s))

    def set_gain(self, play_id: str, gain_db: float, cap_db: float) -> None:
        self._submit(("gain", play_id, gain_db, cap_db))

    def close(self, fade_s: float = 0.03, timeout_s: float = 5.0) -> None:
        """Fade out what plays, end it (PlaybackEnded, completed=False), close the sink, join the thread."""
        if not self._thread.is_alive():
            self._close_sink()
            return
        self._submit(("close", fade_s))
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("player thread did not stop within %.1f s (stuck in the sink or a source?)", timeout_s)

    @property
    def alive(self) -> bool:
        """False if the thread died, or one source/sink call has been running longer than `stuck_blocks`."""
        if not self._thread.is_alive():
            return False
        busy = self._busy_since
        return busy is None or time.monotonic() - busy < self._stuck_s

    @property
    def current(self) -> NowPlaying | None:
        return self._current

    def _submit(self, cmd: tuple) -> None:
        self._cmds.append(cmd)
        self._wake.set()

    # ---- the player thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._try_open_sink()
            while True:
                self._drain()
                if self._item is None and self._next is not None:
                    self._item, self._next = _Item(self._next, self.rate), None
                if self._closing and self._item is None:
                    break
                if not self._sink_ok:
                    self._recover_sink()
                elif self._item is None:
                    self._idle()
                elif self._next is not None and self._item.fading and self._item.started:
                    self._hand_over(self._item)
                else:
                    self._step(self._item)
                self._publish()
        except BaseException:
            log.exception("player thread crashed")
            raise
        finally:
            if self._item is not None:
                self._end(self._item, completed=False)
            self._close_sink()

    def _drain(self) -> None:
        self._wake.clear()
        while self._cmds:
            cmd = self._cmds.popleft()
            getattr(self, f"_on_{cmd[0]}")(*cmd[1:])

    def _on_play(self, cmd: Play) -> None:
        if self._next is not None:
            # Replaced before it ever started.
            self._emit(PlaybackEnded(self._next.play_id, 0.0, False))
        self._next = cmd
        if self._item is not None:
            log.info("play %s preempts %s", cmd.play_id, self._item.cmd.play_id)
            # Half a block at most: the fade-out and the new item's first samples share one block.
            self._wind_down(self._item, min(cmd.fade_s, self.block_s / 2))

    def _on_stop(self, play_id: str, fade_s: float) -> None:
        if self._next is not None and self._next.play_id == play_id:
            self._emit(PlaybackEnded(play_id, 0.0, False))
            self._next = None
        if self._item is not None and self._item.cmd.play_id == play_id:
            self._wind_down(self._item, fade_s)

    def _on_gain(self, play_id: str, gain_db: float, cap_db: float) -> None:
        if self._item is not None and self._item.cmd.play_id == play_id:
            self._item.chain.set_gain(gain_db, cap_db)
            self._item.cmd = dataclasses.replace(self._item.cmd, gain_db=gain_db, cap_db=cap_db)
        if self._next is not None and self._next.play_id == play_id:
            self._next = dataclasses.replace(self._next, gain_db=gain_db, cap_db=cap_db)

    def _on_close(self, fade_s: float) -> None:
        self._closing = True
        if self._next is not None:
            self._emit(PlaybackEnded(self._next.play_id, 0.0, False))
            self._next = None
        if self._item is not None:
            self._wind_down(self._item, fade_s)

    def _wind_down(self, item: _Item, fade_s: float) -> None:
        """Fade out if anything was heard; an item that never started simply ends."""
        if not item.started or not self._sink_ok:
            self._end(item, completed=False)
        elif not item.fading:
            item.fading = True
            item.chain.fade_out(fade_s)

    def _idle(self) -> None:
        release = getattr(self.amplifier, "release", None)
        if release is not None:
            release()
        self._wake.wait(1.0)

    def _step(self, item: _Item) -> None:
        if item.source is None and not self._open(item):
            return
        if not item.started and not self._warm_up():
            return  # a command arrived during the warm-up: apply it first
        try:
            block, bound = self._read(item)
        except SourceError as e:
            self._fail(item, str(e))
            return
        except Exception as e:  # a decoder bug must not kill the thread that plays alerts
            log.exception("source of %s raised", item.cmd.play_id)
            self._fail(item, f"source error: {type(e).__name__}: {e}")
            return
        if len(block) == 0:
            self._end(item, completed=not item.fading)
            return
        out = item.chain.process(block, bound)
        self._busy_since = time.monotonic()
        try:
            self.sink.write(out)
        except Exception as e:
            self._busy_since = None
            self._sink_failed(e)
            self._fail(item, f"audio device error: {e}")
            return
        self._busy_since = None
        if not item.started:
            item.started = True
            log.info(
                "playing %s (%s %s) at %.1f dB, cap %.1f dBFS",
                item.cmd.play_id,
                item.cmd.kind,
                item.cmd.ref,
                item.cmd.gain_db,
                item.cmd.cap_db,
            )
            self._emit(PlaybackStarted(item.cmd.play_id))
        item.frames += len(out)
        if item.fading and item.chain.faded_out or item.limit is not None and item.frames >= item.limit:
            self._end(item, completed=False)

    def _hand_over(self, old: _Item) -> None:
        """Preemption in a single block: the rest of the old item's fade-out, then the new item's first
        samples (which fade in). The two never overlap, so each stays under its own cap, and the preempting
        item (an alert) reaches the sink in the very next block instead of one block later."""
        fade_frames = min(self.block_frames, max(0, old.chain.fade._left))
        parts = []
        if fade_frames:
            try:
                tail = old.source.read(fade_frames)
            except Exception:  # the old item is ending anyway: its last samples are not worth a failure
                tail = np.zeros(0, dtype=np.float32)
            if len(tail) < fade_frames:
                tail = np.concatenate([tail, np.zeros(fade_frames - len(tail), dtype=np.float32)])
            parts.append(old.chain.process(tail))
            old.frames += fade_frames
        self._end(old, completed=False)
        new = self._item = _Item(self._next, self.rate)
        self._next = None
        if not self._open(new):
            self._write_parts(parts)
            return
        if self.amplifier is not None and self.amplifier.ready_in() > 0:
            self._write_parts(parts)  # amp not warm (it was off): the usual path waits for it
            return
        want = self.block_frames - fade_frames
        if want > 0:
            try:
                first = new.source.read(want)
            except SourceError as e:
                self._write_parts(parts)
                self._fail(new, str(e))
                return
            if len(first):
                parts.append(new.chain.process(first))
                new.frames += len(first)
        if not self._write_parts(parts):
            self._fail(new, "audio device error during hand-over")
            return
        if new.frames:
            new.started = True
            log.info("playing %s (%s %s) at %.1f dB, cap %.1f dBFS", new.cmd.play_id, new.cmd.kind,
                     new.cmd.ref, new.cmd.gain_db, new.cmd.cap_db)
            self._emit(PlaybackStarted(new.cmd.play_id))

    def _write_parts(self, parts: list) -> bool:
        if not parts:
            return True
        self._busy_since = time.monotonic()
        try:
            self.sink.write(np.concatenate(parts) if len(parts) > 1 else parts[0])
            return True
        except Exception as e:
            self._sink_failed(e)
            return False
        finally:
            self._busy_since = None

    def _open(self, item: _Item) -> bool:
        self._busy_since = time.monotonic()
        try:
            item.source = self._open_source(item.cmd.source, self.rate, play_id=item.cmd.play_id)
            skip(item.source, item.cmd.offset_s)
        except SourceError as e:
            self._fail(item, str(e))
            return False
        except Exception as e:
            log.exception("opening the source of %s raised", item.cmd.play_id)
            self._fail(item, f"cannot open source: {type(e).__name__}: {e}")
            return False
        finally:
            self._busy_since = None
        return True

    def _read(self, item: _Item) -> tuple[np.ndarray, float | None]:
        """The next block, and the source's bound of its peak when it came from one read (see dsp.Chain)."""
        want = self.block_frames
        if item.limit is not None:
            left = item.limit - item.frames
            want = min(want, max(0, left))
            fade_frames = int(item.cmd.fade_s * self.rate)
            if not item.fading and left <= fade_frames + self.block_frames:
                # Cut at max_s with a fade ending exactly at the limit.
                item.fading = True
                item.chain.fade_out(max(left, 1) / self.rate)
        if want == 0:
            return np.zeros(0, dtype=np.float32), None
        self._busy_since = time.monotonic()
        try:
            first = item.source.read(want)
            if len(first) == want or len(first) == 0:
                return first, getattr(item.source, "peak_bound", None)
            # Sources may return short reads (resampler edges); fill the block so the sink gets full blocks.
            parts, got = [first], len(first)
            while got < want:
                more = item.source.read(want - got)
                if len(more) == 0:
                    break
                parts.append(more)
                got += len(more)
            return np.concatenate(parts), None
        finally:
            self._busy_since = None

    def _warm_up(self) -> bool:
        """Wait until the amplifier is warm; False if a command arrived meanwhile (the caller re-checks)."""
        if self.amplifier is None:
            return True
        while True:
            left = self.amplifier.ready_in()
            if left <= 0:
                return True
            log.debug("waiting %.2f s for the amplifier to warm up", left)
            # An Event, not sleep(): a stop or a preempting alert during the warm-up is handled at once.
            if self._wake.wait(left) or self._cmds:
                return False

    def _end(self, item: _Item, *, completed: bool) -> None:
        played = item.frames / self.rate
        log.info("%s %s after %.1f s", item.cmd.play_id, "completed" if completed else "stopped", played)
        self._release(item)
        self._emit(PlaybackEnded(item.cmd.play_id, played, completed))

    def _fail(self, item: _Item, reason: str) -> None:
        played = item.frames / self.rate
        log.warning("%s failed after %.1f s: %s", item.cmd.play_id, played, reason)
        self._release(item)
        self._emit(PlaybackFailed(item.cmd.play_id, played, reason))

    def _release(self, item: _Item) -> None:
        if item.source is not None:
            try:
                item.source.close()
            except Exception:
                log.exception("closing the source of %s failed", item.cmd.play_id)
            item.source = None
        if self._item is item:
            self._item = None

    def _emit(self, event) -> None:
        try:
            self._emit_fn(event)
        except Exception:
            log.exception("emit(%r) raised; the runtime's queue should never refuse an event", event)

    def _publish(self) -> None:
        item = self._item
        if item is None:
            self._current = None
        else:
            c = item.cmd
            self._current = NowPlaying(
                c.play_id, c.kind, c.gain_db, c.cap_db, item.frames / self.rate, item.started
            )

    # ---- sink lifecycle -----------------------------------------------------------------------------

    def _try_open_sink(self) -> Exception | None:
        self._busy_since = time.monotonic()
        try:
            self.sink.open()
        except Exception as e:
            self._sink_ok = False
            self._next_attempt = time.monotonic() + self._backoff
            log.warning("audio device unavailable (retry in %.1f s): %s", self._backoff, e)
            self._backoff = min(self._backoff * 2, self._backoff_max)
            return e
        finally:
            self._busy_since = None
        if not self._sink_ok:
            log.info("audio device open")
        self._sink_ok = True
        self._backoff = self._backoff_first
        return None

    def _sink_failed(self, error: Exception) -> None:
        log.warning("audio device error: %s", error)
        self._sink_ok = False
        self._close_sink()
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._backoff_max)

    def _recover_sink(self) -> None:
        if self._item is None:
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                self._wake.wait(wait)
                return
        # A play arrived (or the backoff ran out): try now rather than make an alert wait for the timer.
        error = self._try_open_sink()
        if error is not None and self._item is not None:
            self._fail(self._item, f"audio device unavailable: {error}")

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception:
            log.exception("closing the audio device failed")
