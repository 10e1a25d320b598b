"""What the relay supervisor plays from: a bounded queue of decoded PCM and the inputs that fill it.

`StreamInput` feeds a URL's bytes (`firmware.audio.relay.http`) into an `ffmpeg ... -f f32le pipe:1`
subprocess; `FileInput` loops the fallback file through ffmpeg; `SourceInput` wraps the audio layer's own
file decoder. Each reports its health to the supervisor ("stalled", "undecodable", failed) and stops within
`CLOSE_BUDGET_S`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

from firmware.audio.relay.http import HttpError, HttpStream

log = logging.getLogger(__name__)

CLOSE_BUDGET_S = 1.0

NOT_AUDIO = ("text/", "application/json", "application/xml", "application/xhtml")
FORMATS = {
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


class Input:
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


class PcmQueue:
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


class FfmpegInput(Input):
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
        self._pcm = PcmQueue(int(timings.buffer_s * rate), drop_oldest=self.live)
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


class StreamInput(FfmpegInput):
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
        self._http: HttpStream | None = None
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
            self._http = http = HttpStream(self.url, self.timings.connect_timeout_s, self._ssl)
            first, ctype = http.open(self._stop)
            if self._stop.is_set():
                return
            if ctype.startswith(NOT_AUDIO):
                self.fail(f"not audio: Content-Type {ctype!r}")
                return
            fmt = FORMATS.get(ctype)
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
        except HttpError as e:
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


class FileInput(FfmpegInput):
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


class SourceInput(Input):
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
