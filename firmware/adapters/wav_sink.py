"""A sink that writes a WAV file, paced in real time like a sound card (for a station with no sound device:
a server, CI, the demo). Streams to disk: memory does not grow with the length of the programme."""

from __future__ import annotations

import threading
import time

import numpy as np
import soundfile

from firmware.audio import SinkError


class WavFileSink:
    def __init__(self, path: str, *, rate: int = 48000, paced: bool = True, latency_s: float = 0.04,
                 max_gap_s: float = 10.0):
        self.path = path
        self.max_gap_s = max_gap_s  # idle time is written as silence, up to this much per gap
        self.rate = rate
        self.paced = paced
        self.latency_s = latency_s if paced else 0.0
        self._file: soundfile.SoundFile | None = None
        self._t0: float | None = None
        self._frames = 0
        self._wake = threading.Event()  # never set: Event.wait is an interruptible, precise pause

    def open(self) -> None:
        if self._file is None:
            try:
                self._file = soundfile.SoundFile(self.path, "w", samplerate=self.rate, channels=1, subtype="PCM_16")
            except (OSError, RuntimeError) as e:
                raise SinkError(f"cannot write {self.path}: {e}") from e

    def write(self, block: np.ndarray) -> None:
        if self._file is None:
            self.open()
        now = time.monotonic()
        try:
            if self.paced and self._t0 is not None:
                gap = now - (self._t0 + self._frames / self.rate)
                if gap > 0.05:
                    # the station was idle: keep the file's timeline close to the real one
                    self._file.write(np.zeros(int(min(gap, self.max_gap_s) * self.rate), dtype=np.int16))
            self._file.write(block)
        except (OSError, RuntimeError) as e:
            raise SinkError(f"writing {self.path} failed: {e}") from e
        if not self.paced:
            return
        if self._t0 is None or now - (self._t0 + self._frames / self.rate) > 0.5:
            # first block, or we were idle: the "card" starts again now
            self._t0, self._frames = now, 0
        self._frames += len(block)
        ahead = self._t0 + self._frames / self.rate - now - self.latency_s
        if ahead > 0:
            self._wake.wait(ahead)

    @property
    def frames_written(self) -> int:
        return self._file.frames if self._file is not None else 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
