"""Live relay ("tiếp sóng"): a `Source` that plays an HTTP MP3 or Ogg (Icecast) stream, fails over to the
next URL when the stream stalls or sends garbage, comes back to the primary once it recovers, and falls back
to a local file played in a loop when every stream is down.

How a stream is decoded, and why:

* One `_StreamInput` per active URL: a reader thread pulls bytes from the server (`_HttpStream`, a minimal
  HTTP/1.0 client) and writes them into an `ffmpeg -i pipe:0 -f f32le -ac 1 -ar RATE pipe:1` subprocess; a
  second thread reads decoded float32 samples from ffmpeg into a bounded `_PcmQueue`. ffmpeg is already a
  system dependency, decodes MP3, Ogg/Vorbis, Opus and AAC alike, resamples, and cannot crash the daemon
  (a decoder bug kills a child process, not us). soundfile could read Ogg from a file-like, but not every
  MP3 stream, and a blocking decoder inside our process is harder to stop.
* Our own small HTTP client instead of urllib: the reader needs short socket timeouts to notice a stop
  request and keep reading after them (urllib's response object is dead after one timeout), it must accept
  SHOUTcast's `ICY 200 OK` status line, and asking HTTP/1.0 keeps chunked encoding out of the audio.
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

import collections
import contextlib
import errno
import logging
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware.core.sources import StreamSpec

log = logging.getLogger(__name__)

SwitchCallback = Callable[[str | None, str | None, str], None]
CLOSE_BUDGET_S = 1.0

_NOT_AUDIO = ("text/", "application/json", "application/xml", "application/xhtml")
_FORMATS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mpeg3": "mp3",
    "audio/ogg": "ogg",
    "application/ogg": "ogg",
    "audio/vorbis": "ogg",
    "audio/opus": "ogg",
    "audio/aac": "aac",
    "audio/aacp": "aac",
}


@dataclass(frozen=True, slots=True)
class RelayTimings:
    """When to give up on a stream and when to look again. Tests shrink them; defaults follow Barix."""

    stall_s: float = 5.0
    recheck_s: float = 10.0
    recheck_max_s: float = 180.0
    connect_timeout_s: float = 5.0
    prebuffer_s: float = 0.5
    buffer_s: float = 4.0
    tick_s: float = 0.1
    poll_s: float = 0.25


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


# -- the source ---------------------------------------------------------------------------------------


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
        self._active: _Input | None = None
        self._index = 0  # 0..n-1: urls; n: fallback file; n+1: silence
        self._probe: _Input | None = None
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
        new: _Input | None = None
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

    def _promote(self, probe: _Input) -> None:
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

    def _stream_input(self, url: str) -> _Input:
        return _StreamInput(url, self.rate, self.timings, self._monotonic, self._ssl)

    def _fallback_input(self) -> _Input:
        path = self._fallback_path
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: {path}")
        if self._fallback_open is not None:
            return _SourceInput(path, self._fallback_open, self._monotonic)
        return _FileInput(path, self.rate, self.timings, self._monotonic)

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


class _Input:
    """Something decoded into a PCM queue. Subclasses start threads; `health()` says why it failed."""

    label: str
    started: float

    def take(self, frames: int) -> np.ndarray:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def health(self, now: float) -> str | None:
        raise NotImplementedError

    def fail(self, reason: str) -> None:
        raise NotImplementedError

    def signal_stop(self) -> None:
        """Ask every thread and process to stop; never blocks."""
        raise NotImplementedError

    def join(self, deadline: float) -> None:
        """Wait (until `deadline`, monotonic) for threads and processes to end, and release them."""

    def close(self) -> None:
        self.signal_stop()
        self.join(time.monotonic() + CLOSE_BUDGET_S)


class _PcmQueue:
    """Bounded float32 FIFO. Live inputs drop the oldest audio when full; file inputs wait for room."""

    def __init__(self, max_frames: int, *, drop_oldest: bool):
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._frames = 0
        self._max = max(int(max_frames), 1)
        self._drop = drop_oldest
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return self._frames

    def put(self, chunk: np.ndarray) -> bool:
        with self._cond:
            if not self._drop:
                self._cond.wait_for(lambda: self._closed or self._frames < self._max)
            if self._closed:
                return False
            self._chunks.append(chunk)
            self._frames += len(chunk)
            while self._drop and self._frames > self._max and len(self._chunks) > 1:
                old = self._chunks.popleft()
                self._frames -= len(old)
                self.dropped += len(old)
            return True

    def take(self, frames: int) -> np.ndarray:
        parts = []
        need = frames
        with self._cond:
            while need > 0 and self._chunks:
                head = self._chunks[0]
                if len(head) <= need:
                    parts.append(self._chunks.popleft())
                    need -= len(head)
                else:
                    parts.append(head[:need])
                    self._chunks[0] = head[need:]
                    need = 0
            self._frames -= frames - need
            self._cond.notify_all()
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _FfmpegInput(_Input):
    """Common part of stream and file inputs: an ffmpeg process and the thread reading its PCM."""

    live = True

    def __init__(self, label: str, rate: int, timings: RelayTimings, monotonic):
        self.label = label
        self.rate = rate
        self.timings = timings
        self._monotonic = monotonic
        self.started = monotonic()
        self.last_pcm = self.started
        self.pcm_frames = 0
        self._stop = threading.Event()
        self._failed: str | None = None
        self._primed = False
        self._pcm = _PcmQueue(int(timings.buffer_s * rate), drop_oldest=self.live)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (ffmpeg writes it; closed in close())
        self._proc: subprocess.Popen | None = None
        self._threads: list[threading.Thread] = []
        # Held while starting ffmpeg or a thread, and by close() while it sets `_stop`: nothing starts
        # after close() looked, so nothing escapes being killed and joined.
        self._start_lock = threading.Lock()

    def _spawn(self, input_args: list[str], *, stdin) -> bool:
        exe = shutil.which("ffmpeg")
        if exe is None:
            raise FileNotFoundError("ffmpeg is not installed (apt-get install ffmpeg)")
        cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", *input_args,
               "-vn", "-ac", "1", "-ar", str(self.rate), "-f", "f32le", "pipe:1"]
        if stdin == subprocess.PIPE:
            cmd.remove("-nostdin")
        with self._start_lock:
            if self._stop.is_set():
                return False
            self._proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=self._stderr)
            self._start_thread(self._read_pcm, "loa-relay-pcm")
        return True

    def _thread(self, target, name: str) -> None:
        with self._start_lock:
            self._start_thread(target, name)

    def _start_thread(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _read_pcm(self) -> None:
        fd = self._proc.stdout.fileno()
        rest = b""
        while not self._stop.is_set():
            try:
                data = os.read(fd, 16384)
            except OSError as e:
                self.fail(f"decoder output error: {e}")
                return
            if not data:
                rc = self._proc.wait()
                self.fail(f"decoder exited with code {rc}{self._stderr_tail()}")
                return
            data = rest + data
            usable = len(data) - len(data) % 4
            rest = data[usable:]
            if usable:
                chunk = np.frombuffer(data[:usable], dtype="<f4").astype(np.float32)
                np.clip(chunk, -1.0, 1.0, out=chunk)
                self.pcm_frames += len(chunk)
                self.last_pcm = self._monotonic()
                self.bytes_at_last_pcm = getattr(self, "bytes_in", 0)
                if not self._pcm.put(chunk):
                    return

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 300))
            tail = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return f": {tail[-1]}" if tail else ""

    def fail(self, reason: str) -> None:
        if self._failed is None and not self._stop.is_set():
            self._failed = reason

    def ready(self) -> bool:
        return len(self._pcm) >= self.timings.prebuffer_s * self.rate

    def take(self, frames: int) -> np.ndarray:
        if not self._primed:
            if not self.ready():
                return np.zeros(0, dtype=np.float32)
            self._primed = True
        out = self._pcm.take(frames)
        if len(out) < frames:
            self._primed = False  # ran dry: gather `prebuffer_s` again rather than stutter
        return out

    def signal_stop(self) -> None:
        with self._start_lock:
            self._stop.set()
        self._pcm.close()
        self._close_extra()
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()

    def join(self, deadline: float) -> None:
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("relay: ffmpeg pid %d did not exit", proc.pid)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
                if t.is_alive():
                    log.warning("relay: thread %s of %s still busy (DNS?); it stops by itself", t.name, self.label)
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        with contextlib.suppress(OSError):
            self._stderr.close()

    def _close_extra(self) -> None:
        pass


class _StreamInput(_FfmpegInput):
    """One URL: the HTTP reader thread feeding ffmpeg."""

    live = True

    def __init__(self, url: str, rate: int, timings: RelayTimings, monotonic, ssl_context):
        super().__init__(url, rate, timings, monotonic)
        self.url = url
        self.bytes_in = 0
        self.bytes_at_last_pcm = 0
        self.first_byte: float | None = None
        self.last_byte = self.started
        self._ssl = ssl_context
        self._http: _HttpStream | None = None
        self._thread(self._feed, "loa-relay-http")

    def health(self, now: float) -> str | None:
        if self._failed:
            return self._failed
        if now - self.last_byte > self.timings.stall_s:
            return f"stalled: no data for {now - self.last_byte:.1f} s"
        if self.first_byte is None:
            return None
        # Counted from the first byte (connecting is not decoding), and only once a few KiB went in: a
        # low-bitrate Ogg stream legitimately delivers its audio a page (a second or two) at a time.
        quiet = now - max(self.last_pcm, self.first_byte)
        unheard = self.bytes_in - self.bytes_at_last_pcm
        if quiet > self.timings.stall_s and unheard >= 4096:
            return f"undecodable: {unheard} bytes received, no audio decoded for {quiet:.1f} s"
        return None

    def _feed(self) -> None:
        try:
            self._http = http = _HttpStream(self.url, self.timings.connect_timeout_s, self._ssl)
            first, ctype = http.open(self._stop)
            if self._stop.is_set():
                return
            if ctype.startswith(_NOT_AUDIO):
                self.fail(f"not audio: Content-Type {ctype!r}")
                return
            fmt = _FORMATS.get(ctype)
            # Small probes: ffmpeg otherwise reads 32 KiB (seconds of a 3G stream) before the first sample.
            args = ["-analyzeduration", "0", "-probesize", "32", "-f", fmt] if fmt else [
                "-analyzeduration", "0", "-probesize", "4096"]
            if not self._spawn([*args, "-i", "pipe:0"], stdin=subprocess.PIPE):
                return
            data = first
            while not self._stop.is_set():
                if data:
                    self.bytes_in += len(data)
                    self.last_byte = self._monotonic()
                    if self.first_byte is None:
                        self.first_byte = self.last_byte
                    self._proc.stdin.write(data)
                    self._proc.stdin.flush()
                data = http.recv(self.timings.poll_s)
                if data is None:
                    continue  # no byte within poll_s: the supervisor measures the stall
                if not data:
                    self.fail("the server closed the stream")
                    return
        except _HttpError as e:
            self.fail(str(e))
        except (BrokenPipeError, ValueError):
            self.fail(f"decoder stopped reading{self._stderr_tail()}")
        except OSError as e:
            self.fail(f"network error: {e}")
        finally:
            if self._proc is not None and self._proc.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._proc.stdin.close()

    def _close_extra(self) -> None:
        http = self._http
        if http is not None:
            http.close()


class _FileInput(_FfmpegInput):
    """The fallback file, looped by ffmpeg; paced by the reader (the queue waits for room, drops nothing)."""

    live = False

    def __init__(self, path: str, rate: int, timings: RelayTimings, monotonic):
        super().__init__(f"file://{path}", rate, timings, monotonic)
        self._spawn(["-stream_loop", "-1", "-i", path], stdin=subprocess.DEVNULL)

    def health(self, now: float) -> str | None:
        return self._failed

    def ready(self) -> bool:
        return len(self._pcm) > 0

    def take(self, frames: int) -> np.ndarray:
        return self._pcm.take(frames)


class _SourceInput(_Input):
    """The fallback file through the audio layer's own decoder, reopened at its end (a loop)."""

    def __init__(self, path: str, opener, monotonic):
        self.label = f"file://{path}"
        self.started = monotonic()
        self._path = path
        self._opener = opener
        self._failed: str | None = None
        self._source = opener(path)

    def take(self, frames: int) -> np.ndarray:
        if self._failed or self._source is None:
            return np.zeros(0, dtype=np.float32)
        out = self._source.read(frames)
        if len(out) == 0:
            self._source.close()
            self._source = self._opener(self._path)
            out = self._source.read(frames)
            if len(out) == 0:
                self.fail("fallback file has no audio")
        return out

    def ready(self) -> bool:
        return True

    def health(self, now: float) -> str | None:
        return self._failed

    def fail(self, reason: str) -> None:
        if self._failed is None:
            self._failed = reason

    def signal_stop(self) -> None:
        if self._source is not None:
            with contextlib.suppress(Exception):
                self._source.close()
            self._source = None


# -- a minimal HTTP/1.0 client for streams -------------------------------------------------------------


class _HttpError(Exception):
    pass


class _HttpStream:
    """GET a stream with HTTP/1.0 (no chunked encoding), follow up to 5 redirects, read with timeouts."""

    MAX_HEADER = 16384

    def __init__(self, url: str, timeout: float, ssl_context: ssl.SSLContext | None):
        self.url = url
        self.timeout = timeout
        self._ssl = ssl_context
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = False

    def open(self, stop: threading.Event) -> tuple[bytes, str]:
        """Connect and read the headers; return (first body bytes, content type)."""
        url = self.url
        for _ in range(6):
            status, headers, body = self._request(url)
            if status in (301, 302, 303, 307, 308) and headers.get("location"):
                url = urllib.parse.urljoin(url, headers["location"])
                self._drop()
                if stop.is_set():
                    return b"", ""
                continue
            if status != 200:
                raise _HttpError(f"HTTP {status} {headers.get(':reason', '')}".strip())
            if "chunked" in headers.get("transfer-encoding", "").lower():
                raise _HttpError("unsupported Transfer-Encoding: chunked")
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            return body, ctype
        raise _HttpError("too many redirects")

    def recv(self, timeout: float) -> bytes | None:
        """Up to 16 KiB; None when nothing came within `timeout`; b"" at the end of the stream."""
        sock = self._sock
        if sock is None:
            return b""
        try:
            sock.settimeout(timeout)
            return sock.recv(16384)
        except (TimeoutError, ssl.SSLWantReadError):
            return None
        except OSError:
            if self._closed:
                return b""
            raise

    def close(self) -> None:
        self._closed = True
        self._drop()

    def _drop(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _connect(self, host: str, port: int) -> socket.socket:
        """Connect without blocking `close()`: the socket is registered before anything can block on it,
        and the TCP handshake is awaited in short slices that check for a close."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # the one wait we cannot cut
        last: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, addr in infos:
            sock = socket.socket(family, kind, proto)
            with self._lock:
                if self._closed:
                    sock.close()
                    raise _HttpError("closed")
                self._sock = sock
            try:
                self._handshake(sock, addr)
                return sock
            except TimeoutError:
                self._drop()
                raise
            except OSError as e:
                self._drop()
                last = e
        raise last

    def _handshake(self, sock: socket.socket, addr) -> None:
        sock.setblocking(False)
        err = sock.connect_ex(addr)
        deadline = time.monotonic() + self.timeout
        while err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            if self._closed:
                raise _HttpError("closed")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("connect timed out")
            _, writable, _ = select.select([], [sock], [], min(left, 0.1))
            if writable:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        sock.settimeout(self.timeout)

    def _request(self, url: str) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _HttpError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            sock = self._connect(parts.hostname, port)
            if parts.scheme == "https":
                ctx = self._ssl or ssl.create_default_context()
                sock = ctx.wrap_socket(sock, server_hostname=parts.hostname)
                with self._lock:
                    self._sock = sock
        except _HttpError:
            raise
        except TimeoutError as e:
            raise _HttpError(f"cannot connect to {parts.hostname}:{port}: timed out") from e
        except OSError as e:
            raise _HttpError(f"cannot connect to {parts.hostname}:{port}: {e.strerror or e}") from e
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        req = (
            f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: loa-station/0.1 (relay)\r\n"
            "Accept: */*\r\nIcy-MetaData: 0\r\nConnection: close\r\n\r\n"
        )
        try:
            sock.sendall(req.encode("ascii", "strict"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    raise _HttpError("connection closed before the response headers")
                head += chunk
                if len(head) > self.MAX_HEADER:
                    raise _HttpError("response headers too long")
        except TimeoutError as e:
            raise _HttpError(f"stalled: no response within {self.timeout} s") from e
        except UnicodeEncodeError as e:
            raise _HttpError(f"bad characters in URL {url!r}") from e
        except OSError as e:
            raise _HttpError(f"connection error: {e}") from e
        raw, _, body = head.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        fields = lines[0].split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(("HTTP/", "ICY")) or not fields[1].isdigit():
            raise _HttpError(f"not an HTTP response: {lines[0][:60]!r}")
        headers = {":reason": fields[2] if len(fields) > 2 else ""}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return int(fields[1]), headers, body
