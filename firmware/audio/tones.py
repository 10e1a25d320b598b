"""Generated signals: the 1 kHz test tone, the attention signal that precedes an alert, the daily chime.

Each is computed block by block from the sample index (no buffer of the whole signal), with short raised-
cosine edges so a tone never starts or stops with a click.
"""

from __future__ import annotations

import numpy as np

from firmware.audio import SourceError

EDGE_S = 0.010
# The attention signal: two simultaneous sines at 853 and 960 Hz, the pair the US Emergency Alert System
# chose because it is unpleasant and unmistakable; each at -7 dBFS so the sum peaks below -1 dBFS.
ATTENTION_HZ = (853.0, 960.0)
ATTENTION_LEVEL = 0.45
# The chime: four descending notes (G5 E5 C5 G4), the classic public-address "ding-dong-ding-dong",
# each a decaying sine with a soft second harmonic.
CHIME_HZ = (783.99, 659.25, 523.25, 392.0)
TEST_LEVEL = 0.5  # -6 dBFS: loud enough to check a speaker, leaves headroom for the gain

KINDS = ("test", "attention", "chime")


class ToneSource:
    def __init__(self, kind: str, duration_s: float, rate: int, freq_hz: float = 1000.0):
        if kind not in KINDS:
            raise SourceError(f'unknown tone kind "{kind}" (expected one of: {", ".join(KINDS)})')
        if not (0 < duration_s <= 3600):
            raise SourceError(f"tone duration {duration_s} s is out of range (0, 3600]")
        if kind == "test" and not (20 <= freq_hz <= min(20000, rate / 2)):
            raise SourceError(
                f"test tone frequency {freq_hz} Hz is out of range [20, {min(20000, rate // 2)}]"
            )
        self.kind = kind
        self.rate = rate
        self.freq_hz = freq_hz
        self.total = int(round(duration_s * rate))
        self.pos = 0

    def seek(self, seconds: float) -> None:
        self.pos = min(self.total, max(0, int(seconds * self.rate)))

    def read(self, frames: int) -> np.ndarray:
        n = min(frames, self.total - self.pos)
        if n <= 0:
            return np.zeros(0, dtype=np.float32)
        idx = np.arange(self.pos, self.pos + n, dtype=np.float64)
        t = idx / self.rate
        if self.kind == "test":
            out = TEST_LEVEL * np.sin(2 * np.pi * self.freq_hz * t)
        elif self.kind == "attention":
            out = ATTENTION_LEVEL * (
                np.sin(2 * np.pi * ATTENTION_HZ[0] * t) + np.sin(2 * np.pi * ATTENTION_HZ[1] * t)
            )
        else:
            out = self._chime(idx)
        out *= self._edges(idx)
        self.pos += n
        return out.astype(np.float32)

    def _chime(self, idx: np.ndarray) -> np.ndarray:
        note_len = max(1, self.total // len(CHIME_HZ))
        note = np.minimum(idx // note_len, len(CHIME_HZ) - 1).astype(np.int64)
        freq = np.asarray(CHIME_HZ)[note]
        local = (idx - note * note_len) / self.rate
        frac = local * self.rate / note_len
        # Decay like a struck bar, with a 5 ms attack and a taper to zero at the note's end: no clicks where
        # one note hands over to the next.
        decay = np.exp(-local * 3.0) * np.minimum(1.0, local / 0.005) * (1.0 - np.minimum(frac, 1.0))
        phase = 2 * np.pi * freq * local
        return 0.5 * decay * (np.sin(phase) + 0.25 * np.sin(2 * phase))

    def _edges(self, idx: np.ndarray) -> np.ndarray:
        edge = max(1, int(EDGE_S * self.rate))
        up = np.clip(idx / edge, 0.0, 1.0)
        down = np.clip((self.total - 1 - idx) / edge, 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))

    def close(self) -> None:
        self.pos = self.total


class SilenceSource:
    def __init__(self, duration_s: float, rate: int):
        if not (0 <= duration_s <= 24 * 3600):
            raise SourceError(f"silence duration {duration_s} s is out of range [0, 86400]")
        self.rate = rate
        self.left = int(round(duration_s * rate))

    def seek(self, seconds: float) -> None:
        self.left = max(0, self.left - int(seconds * self.rate))

    def read(self, frames: int) -> np.ndarray:
        n = min(frames, self.left)
        self.left -= n
        return np.zeros(n, dtype=np.float32)

    def close(self) -> None:
        self.left = 0
