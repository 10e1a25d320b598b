"""Audio files decoded as streams: soundfile (libsndfile: WAV, FLAC, OGG, MP3) in blocks, downmix, soxr.

Memory stays flat whatever the file's length: we hold one decoded chunk and what the resampler returned.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import soundfile as sf
import soxr

from firmware.audio import SourceError

log = logging.getLogger(__name__)

# Decode in chunks of this many input frames (~3 s at 44.1 kHz, 1 MB of stereo float32): large enough that
# per-call overhead (soundfile/mpg123, soxr, numpy) is amortised. Measured on a 10 min MP3, decode alone:
# 8192: 0.67 s, 32768: 0.48-0.52 s, 65536: 0.44-0.48 s, 131072: 0.42 s, 262144: 0.43-0.45 s; peak RSS of a
# 3 h programme 37.6 MB (limit 60 MB).
CHUNK_FRAMES = 131072
# soxr quality, measured 44.1 -> 48 kHz on sines of 1-15 kHz: LQ's worst spurious tone is -121 dB (MQ -118 dB,
# QQ -16 dB) with the same flat response to 15 kHz, far past what a horn speaker reproduces, for ~10 % less CPU
# over the whole pipeline than MQ (audio_pipeline: ratio to ffmpeg 1.13 vs 1.21). "HQ" costs about twice "MQ".
RESAMPLE_QUALITY = "LQ"


class PcmBuffer:
    """A FIFO of float32 samples: producers append chunks, `take(n)` returns up to n samples.

    `peak` is an upper bound of |sample| over everything queued (one reduction per decoded chunk), which
    lets the DSP skip its per-block peak search when the whole chunk is known to be under the cap.
    """

    def __init__(self):
        self._buf = np.zeros(0, dtype=np.float32)
        self._pos = 0
        self._end = 0  # len(self._buf), kept as an int: the per-block path reads it 50 times a second
        self.peak = 0.0

    def __len__(self) -> int:
        return self._end - self._pos

    def append(self, chunk: np.ndarray) -> None:
        if len(chunk) == 0:
            return
        peak = max(float(chunk.max()), -float(chunk.min()))
        if not math.isfinite(peak):
            peak = math.inf  # NaN/inf in the data: no bound, the limiter will look at every block
        if self._pos >= self._end:
            self._buf, self._pos = chunk, 0
            self.peak = peak
        else:
            self._buf = np.concatenate((self._buf[self._pos :], chunk))
            self._pos = 0
            self.peak = max(self.peak, peak)
        self._end = len(self._buf)

    def take(self, n: int) -> np.ndarray:
        """Up to n samples. A view, not a copy: what is taken is consumed, so the caller may process it in
        place (the player does) without touching samples still queued."""
        pos = self._pos
        end = min(pos + n, self._end)
        self._pos = end
        return self._buf[pos:end]


class Resampled:
    """Wraps a chunk producer at `in_rate`, yields chunks at `out_rate` (or passes through when equal)."""

    def __init__(self, in_rate: int, out_rate: int):
        self._stream = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(
                in_rate, out_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY
            )

    @property
    def active(self) -> bool:
        return self._stream is not None

    def push(self, chunk: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return chunk
        return self._stream.resample_chunk(chunk, last=last)


def downmix(data: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(frames, channels) -> mono float32 (mean of the channels: never louder than the loudest channel).

    `out`, when given, receives the result (it must hold len(data) samples; a view of it is returned)."""
    if data.ndim == 1:
        return np.ascontiguousarray(data, dtype=np.float32)
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    if data.shape[1] == 2:
        mono = np.add(data[:, 0], data[:, 1], out=None if out is None else out[: len(data)])
        mono *= np.float32(0.5)
        return mono
    return data.mean(axis=1, dtype=np.float32)


class FileSource:
    """A local file as a `firmware.ports.Source` at `rate`."""

    def __init__(
        self, path: str | os.PathLike, rate: int, *, offset_s: float = 0.0, chunk_frames: int = CHUNK_FRAMES
    ):
        self.path = os.fspath(path)
        self.rate = rate
        self._chunk = chunk_frames
        self._buf = PcmBuffer()
        self._eof = False
        self._sf: sf.SoundFile | None = None
        if not os.path.exists(self.path):
            raise SourceError(f"audio file not found: {self.path}")
        if os.path.isdir(self.path):
            raise SourceError(f"audio path is a directory, not a file: {self.path}")
        try:
            self._sf = sf.SoundFile(self.path)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise SourceError(
                f"cannot decode {self.path}: {_reason(e)} (supported: WAV, FLAC, OGG, MP3)"
            ) from e
        except OSError as e:
            raise SourceError(f"cannot open {self.path}: {e.strerror or e}") from e
        self.in_rate = self._sf.samplerate
        self.channels = self._sf.channels
        self.format = self._sf.format
        if self.in_rate <= 0 or self.channels <= 0:
            self.close()
            raise SourceError(f"{self.path}: bad header ({self.in_rate} Hz, {self.channels} channels)")
        self._resampler = Resampled(self.in_rate, rate)
        self._in_pos = 0
        self._error: SourceError | None = None  # raised once what was decoded before it has been read
        # Reused for every chunk: fresh 256 kB arrays per chunk cost page faults (measured: ~5% of the CPU).
        self._scratch = np.empty((chunk_frames, self.channels), dtype=np.float32)
        self._mono = np.empty(chunk_frames, dtype=np.float32)
        if offset_s > 0:
            self.seek(offset_s)
        log.debug("opened %s (%s, %d Hz, %d ch)", self.path, self.format, self.in_rate, self.channels)

    @property
    def peak_bound(self) -> float:
        """An upper bound of |sample| for the block just read (see `PcmBuffer.peak`)."""
        return self._buf.peak

    def seek(self, seconds: float) -> None:
        """Join in progress: position the decoder `seconds` in (before the first read)."""
        assert self._sf is not None
        frame = int(seconds * self.in_rate)
        if self._sf.frames > 0 and frame >= self._sf.frames:
            self._eof = True  # joined after the end: nothing left to play
            return
        try:
            self._in_pos = self._sf.seek(frame)
        except (sf.LibsndfileError, RuntimeError) as e:
            # Some streams (MP3 without a seek table) cannot seek; decoding and discarding always works.
            log.debug("%s: seek failed (%s), skipping by decoding", self.path, e)
            _discard(self, int(seconds * self.rate))

    def _decode_more(self) -> None:
        assert self._sf is not None
        try:
            data = self._sf.read(self._chunk, dtype="float32", always_2d=True, out=self._scratch)
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise SourceError(f"decoding {self.path} failed at {self._sf_pos_s():.1f} s: {_reason(e)}") from e
        last = len(data) < self._chunk
        self._in_pos += len(data)
        if last:
            try:
                self._check_complete()
            except SourceError as e:
                # Play what could be decoded first, then fail: the listener hears the start of the item and
                # the play log says how far it got.
                self._error = e
        if len(data):
            mono = downmix(data, self._mono)
            # Without resampling the chunk is queued as is, so it must not be our reused scratch buffer.
            self._buf.append(self._resampler.push(mono, last=last) if self._resampler.active else mono.copy())
        elif last:
            self._buf.append(self._resampler.push(np.zeros(0, dtype=np.float32), last=True))
        if last:
            self._eof = True

    def _check_complete(self) -> None:
        """A truncated or corrupt MP3 decodes "successfully" to fewer frames than its header promises; an
        item that stops half-way must be reported failed, not completed."""
        expected = self._sf.frames if self._sf is not None else 0
        slack = max(int(0.01 * expected), int(0.2 * self.in_rate))  # MP3 encoder delay/padding, rounding
        if 0 < expected < 2**62 and self._in_pos + slack < expected:
            raise SourceError(
                f"{self.path} is truncated or corrupt: decoding stopped at {self._in_pos / self.in_rate:.1f} s "
                f"of {expected / self.in_rate:.1f} s"
            )

    def _sf_pos_s(self) -> float:
        try:
            return self._sf.tell() / self.in_rate if self._sf is not None else 0.0
        except Exception:  # tell() on a broken stream: the position is only for the message
            return 0.0

    def read(self, frames: int) -> np.ndarray:
        if self._sf is None:
            return np.zeros(0, dtype=np.float32)
        buf = self._buf
        pos = buf._pos
        end = pos + frames
        if end <= buf._end:  # the common case, inlined: 50 calls a second for hours
            buf._pos = end
            return buf._buf[pos:end]
        while len(self._buf) < frames and not self._eof:
            self._decode_more()
        out = self._buf.take(frames)
        if len(out) == 0 and self._error is not None:
            raise self._error
        return out

    def close(self) -> None:
        if self._sf is not None:
            try:
                self._sf.close()
            finally:
                self._sf = None


def _discard(source, frames: int) -> None:
    left = frames
    while left > 0:
        got = source.read(min(left, 65536))
        if len(got) == 0:
            return
        left -= len(got)


def _reason(e: Exception) -> str:
    text = str(e).strip()
    # libsndfile says "Error opening '/x.mp3': Format not recognised." – keep the part after the path.
    if ": " in text and text.startswith("Error opening"):
        text = text.split(": ", 1)[1]
    return text or type(e).__name__
