"""Fixtures for the live relay: encoded test streams, a misbehaving stream server, a paced player."""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from firmware.audio.relay import RelayTimings
from tests.content.faultserver import FaultServer

RATE = 16000
BLOCK = 320  # 20 ms
FAST = RelayTimings(
    stall_s=1.0, recheck_s=0.5, recheck_max_s=2.0, connect_timeout_s=1.0, prebuffer_s=0.2, buffer_s=2.0,
    tick_s=0.05, poll_s=0.1,
)


def _encode(out: Path, freq: int, seconds: float, args: list[str]) -> bytes:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}",
         "-ac", "1", *args, str(out)],
        check=True,
    )
    return out.read_bytes()


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    return {
        "mp3": _encode(d / "a440.mp3", 440, 10, ["-b:a", "64k"]),
        "ogg": _encode(d / "a880.ogg", 880, 10, ["-c:a", "libvorbis", "-q:a", "2"]),
        "mp3_b": _encode(d / "b1000.mp3", 1000, 10, ["-b:a", "64k"]),
        "fallback": str(d / "f660.wav") if _encode(d / "f660.wav", 660, 0.7, ["-ar", str(RATE)]) else None,
    }


def looped(data: bytes, chunk: int = 2000):
    """A stream factory: the file's bytes again and again, as a radio station would send them forever."""

    def gen():
        while True:
            for i in range(0, len(data), chunk):
                yield data[i : i + chunk]

    return gen


def random_bytes(chunk: int = 2000):
    def gen():
        rng = np.random.default_rng(7)
        while True:
            yield rng.integers(0, 256, chunk, dtype=np.uint8).tobytes()

    return gen


@pytest.fixture
def server():
    s = FaultServer().start()
    try:
        yield s
    finally:
        s.stop()


def add_stream(server: FaultServer, name: str, data_or_gen, *, content_type="audio/mpeg", bytes_per_s=12_000):
    gen = data_or_gen if callable(data_or_gen) else looped(data_or_gen)
    return server.add(name, stream=gen, bytes_per_s=bytes_per_s, content_type=content_type)


class Switches:
    """Collects on_switch calls with their time; `wait_for(pred)` waits on a condition."""

    def __init__(self):
        self.calls: list[tuple[str | None, str | None, str, float]] = []
        self._cond = threading.Condition()

    def __call__(self, frm, to, reason):
        with self._cond:
            self.calls.append((frm, to, reason, time.monotonic()))
            self._cond.notify_all()

    def wait_for(self, pred, timeout=10.0):
        with self._cond:
            ok = self._cond.wait_for(lambda: any(pred(*c) for c in self.calls), timeout)
        assert ok, f"no matching switch within {timeout} s: {self.calls}"
        return next(c for c in self.calls if pred(*c))


class Player:
    """Reads 20 ms blocks at real-time pace like the player thread; tracks the dominant frequency heard."""

    def __init__(self, source):
        self.source = source
        self.freq = 0.0
        self.max_read_s = 0.0
        self.blocks = 0
        self._recent: collections.deque[np.ndarray] = collections.deque(maxlen=12)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-player", daemon=True)
        self.errors: list[BaseException] = []

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _run(self):
        while not self._stop.wait(BLOCK / RATE):
            t = time.monotonic()
            try:
                block = self.source.read(BLOCK)
            except BaseException as e:  # the test fails on any exception out of read()
                self.errors.append(e)
                return
            self.max_read_s = max(self.max_read_s, time.monotonic() - t)
            assert len(block) == BLOCK and block.dtype == np.float32
            self._recent.append(block)
            audio = np.concatenate(self._recent)
            with self._cond:
                self.freq = _dominant(audio)
                self.blocks += 1
                self._cond.notify_all()

    def wait_for_freq(self, hz, timeout=10.0):
        with self._cond:
            ok = self._cond.wait_for(lambda: abs(self.freq - hz) < 25, timeout)
        assert ok, f"never heard {hz} Hz within {timeout} s (last {self.freq:.0f} Hz); errors {self.errors}"

    def wait_for_silence(self, timeout=10.0):
        with self._cond:
            ok = self._cond.wait_for(lambda: self.freq == 0.0 and self.blocks > 10, timeout)
        assert ok, f"never silent within {timeout} s (last {self.freq:.0f} Hz)"


def _dominant(audio: np.ndarray) -> float:
    if len(audio) < 1024 or float(np.sqrt(np.mean(audio**2))) < 0.01:
        return 0.0
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spec) * RATE / len(audio))


def ffmpeg_children() -> list[int]:
    """Live (or zombie) ffmpeg processes whose parent is this test process."""
    me = os.getpid()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == me and comm.startswith("ffmpeg"):
            out.append(int(pid))
    return out
