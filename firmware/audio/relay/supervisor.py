"""The live relay's failover supervisor: a `Source` that plays an HTTP MP3 or Ogg (Icecast) stream, fails
over to the next URL when the stream stalls or sends garbage, comes back to the primary once it recovers,
and falls back to a local file played in a loop when every stream is down.

How a stream is decoded, and why:

* One `StreamInput` (`inputs.py`) per active URL: a reader thread pulls bytes from the server
  (`HttpStream`, the minimal HTTP/1.0 client in `http.py`) and writes them into an
  `ffmpeg -i pipe:0 -f f32le -ac 1 -ar RATE pipe:1` subprocess; a second thread reads decoded float32 samples from ffmpeg into a bounded `PcmQueue`. ffmpeg is already a
  system dependency, decodes MP3, Ogg/Vorbis, Opus and AAC alike, resamples, and cannot crash the daemon
  (a decoder bug kills a child process, not us). soundfile could read Ogg from a file-like, but not every
  MP3 stream, and a blocking decoder inside our process is harder to stop.
* Buffering is bounded at every step: the HTTP reader blocks on the OS pipe into ffmpeg, and the PCM queue
  holds at most `buffer_s` of audio (the oldest is dropped: live audio late is worse than a skip).
  `prebuffer_s` of audio is gathered before a stream is played, to ride over network jitter.

Health, checked by a supervisor thread every `tick_s`: no bytes for `stall_s` → "stalled"; bytes but no
decoded audio for `stall_s` → "undecodable" (garbage, an HTML captive-portal page, a wrong codec); an HTTP
error, a closed connection or ffmpeg exiting → failed at once. On failure the next URL is opened; after the
last URL comes the fallback file (decoded by `fallback_open(path)` if given, else by ffmpeg with
`-stream_loop -1`); without one, silence. Better URLs are re-checked after `recheck_s`, doubling on each
failed check up to `recheck_max_s` (as Barix Exstreamer does: 10 s backing off to 3 min). A check opens
the URL beside the playing one and switches only once it has delivered `prebuffer_s` of audio.

Every switch is reported as `on_switch(from_url, to_url, reason)`; the fallback file is reported as
`file://<path>`, silence as None. `read()` never raises for a stream and never blocks on the network: it
returns what is buffered, padded with silence. It never returns an empty array (a relay has no end; the
schedule stops it).
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable

import numpy as np

from firmware.audio.relay.inputs import (
    CLOSE_BUDGET_S,
    FileInput,
    Input,
    RelayTimings,
    SourceInput,
    StreamInput,
)
from firmware.core.sources import StreamSpec

log = logging.getLogger(__name__)

SwitchCallback = Callable[[str | None, str | None, str], None]


def open_stream(
    spec: StreamSpec,
    rate: int,
    *,
    fallback_open: Callable[[str], object] | None = None,
    on_switch: SwitchCallback | None = None,
    clock=None,
    timings: RelayTimings | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> RelaySource:
    """Start relaying `spec` at `rate` Hz mono. See the module docstring for the behaviour.

    `fallback_open(path)` returns a `Source` at `rate` for the fallback file (the audio layer's file
    decoder); without it the fallback is decoded by ffmpeg. `clock` (a `firmware.ports.Clock`) gives
    monotonic time. `on_switch` is called from the relay's thread and MUST only enqueue.
    """
    return RelaySource(
        spec, rate, fallback_open=fallback_open, on_switch=on_switch, clock=clock,
        timings=timings or RelayTimings(), ssl_context=ssl_context,
    )


class RelaySource:
    """The live relay `Source`. Use `open_stream()`."""

    def __init__(self, spec: StreamSpec, rate: int, *, fallback_open, on_switch, clock, timings, ssl_context):
        if not spec.urls and not spec.fallback_path:
            log.warning("relay: no URL and no fallback file: silence")
        self.rate = int(rate)
        self._urls = [u for u in spec.urls]
        self._fallback_path = spec.fallback_path
        self._fallback_open = fallback_open
        self._on_switch = on_switch
        self._monotonic = clock.monotonic if clock is not None else time.monotonic
        self.timings = timings
        self._ssl = ssl_context
        self._lock = threading.Lock()
        self._active: Input | None = None
        self._index = 0  # 0..n-1: urls; n: fallback file; n+1: silence
        self._probe: Input | None = None
        self._probe_index = 0
        self._recheck_interval = timings.recheck_s
        self._next_recheck = float("inf")
        self._stop = threading.Event()
        self._closed = False
        self._open_at(0, reason="start", from_label=None)
        self._thread = threading.Thread(target=self._run, name="loa-relay", daemon=True)
        self._thread.start()

    @property
    def current(self) -> str | None:
        """What is playing: a URL, `file://<fallback>`, or None (silence)."""
        active = self._active
        return active.label if active is not None else None

    def read(self, frames: int) -> np.ndarray:
        out = np.zeros(max(int(frames), 0), dtype=np.float32)
        active = self._active
        if active is not None and frames > 0:
            try:
                got = active.take(int(frames))
            except Exception as e:  # a broken fallback Source must not stop the player
                active.fail(f"read failed: {e}")
                got = np.zeros(0, dtype=np.float32)
            out[: len(got)] = got
        return out

    def close(self) -> None:
        """Stop at once: the player calls this between blocks (an alert may be waiting). Everything is
        signalled first (sockets shut, ffmpeg killed), then joined within `CLOSE_BUDGET_S`; only a thread stuck
        in a DNS lookup can outlive that, and it exits by itself as soon as the lookup returns."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        with self._lock:
            inputs = [i for i in (self._active, self._probe) if i is not None]
            self._active = self._probe = None
        for i in inputs:
            i.signal_stop()
        deadline = time.monotonic() + CLOSE_BUDGET_S
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            inputs += [i for i in (self._active, self._probe) if i is not None and i not in inputs]
            self._active = self._probe = None
        for i in inputs:
            i.signal_stop()
            i.join(deadline)

    # -- supervisor ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.timings.tick_s):
            try:
                self._check_active()
                self._check_probe()
            except Exception:
                log.exception("relay supervisor error")

    def _check_active(self) -> None:
        active = self._active
        if active is None:
            return
        reason = active.health(self._monotonic())
        if reason is None:
            return
        log.warning("relay: %s failed: %s", active.label, reason)
        self._open_at(self._index + 1, reason=reason, from_label=active.label)
        active.close()

    def _open_at(self, index: int, *, reason: str, from_label: str | None) -> None:
        """Make candidate `index` (or the first one after it that opens) the active input."""
        n = len(self._urls)
        new: Input | None = None
        if index < n:
            new = self._stream_input(self._urls[index])
        elif index == n and self._fallback_path:
            try:
                new = self._fallback_input()
            except Exception as e:
                log.error("relay: fallback file %s unusable: %s", self._fallback_path, e)
                reason = f"{reason}; fallback file unusable: {e}"
                index = n + 1
        else:
            index = n + 1
        if index > n and new is None:
            reason = f"{reason}; nothing left to play: silence"
        with self._lock:
            closed = self._closed
            if not closed:
                self._active = new
                self._index = index
        if closed:  # close() ran meanwhile and cannot see this input: stop it here
            if new is not None:
                new.close()
            return
        if index > 0:
            self._schedule_recheck()
        self._report(from_label, new.label if new is not None else None, reason)

    def _schedule_recheck(self) -> None:
        # The interval is reset only by a recovery: a station bouncing between dead URLs keeps backing off.
        if self._probe is None and self._next_recheck == float("inf"):
            self._next_recheck = self._monotonic() + self._recheck_interval

    def _check_probe(self) -> None:
        if self._index == 0 or not self._urls:
            return
        now = self._monotonic()
        probe = self._probe
        if probe is None:
            if now < self._next_recheck:
                return
            self._probe_index = 0
            self._start_probe()
            return
        if probe.ready():
            self._promote(probe)
            return
        reason = probe.health(now)
        if reason is None and now - probe.started < self.timings.stall_s:
            return
        log.info("relay: re-check of %s failed: %s", probe.label, reason or "no audio in time")
        self._probe = None
        probe.close()
        self._probe_index += 1
        if self._probe_index < min(self._index, len(self._urls)):
            self._start_probe()
        else:
            self._recheck_interval = min(self._recheck_interval * 2, self.timings.recheck_max_s)
            self._next_recheck = now + self._recheck_interval
            log.info("relay: next re-check in %.0f s", self._recheck_interval)

    def _start_probe(self) -> None:
        probe = self._stream_input(self._urls[self._probe_index])
        with self._lock:
            if not self._closed:
                self._probe = probe
                return
        probe.close()

    def _promote(self, probe: Input) -> None:
        old = self._active
        with self._lock:
            self._active = probe
            self._index = self._probe_index
            self._probe = None
        self._recheck_interval = self.timings.recheck_s
        self._next_recheck = float("inf")
        if self._index > 0:
            self._schedule_recheck()
        self._report(old.label if old is not None else None, probe.label, "recovered")
        if old is not None:
            old.close()

    def _stream_input(self, url: str) -> Input:
        return StreamInput(url, self.rate, self.timings, self._monotonic, self._ssl)

    def _fallback_input(self) -> Input:
        path = self._fallback_path
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: {path}")
        if self._fallback_open is not None:
            return SourceInput(path, self._fallback_open, self._monotonic)
        return FileInput(path, self.rate, self.timings, self._monotonic)

    def _report(self, from_label: str | None, to_label: str | None, reason: str) -> None:
        level = logging.INFO if reason in ("start", "recovered") else logging.WARNING
        log.log(level, "relay: switch %s -> %s: %s", from_label or "(none)", to_label or "silence", reason)
        if self._on_switch is None:
            return
        try:
            self._on_switch(from_label, to_label, reason)
        except Exception:
            log.exception("relay on_switch callback failed")


# -- inputs -------------------------------------------------------------------------------------------
