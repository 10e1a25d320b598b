"""Text spoken offline by espeak-ng (`-v vi`), streamed from its stdout like a file.

espeak-ng writes a WAV header with placeholder sizes when its output is a pipe, then raw s16 PCM; we parse
the header and decode the PCM as it arrives, so the first block plays before the whole text is synthesised.
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
import tempfile

import numpy as np

from firmware.audio import SourceError
from firmware.audio.filesource import PcmBuffer, Resampled

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 20000
CHUNK_BYTES = 8192
_LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]+)*$")


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SourceError(
            "text-to-speech unavailable: espeak-ng is not installed (apt-get install espeak-ng)"
        )
    return exe


class SpeechSource:
    def __init__(self, text: str, rate: int, *, lang: str = "vi", speed_wpm: int = 150):
        if not text or not text.strip():
            raise SourceError("speech text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise SourceError(f"speech text is {len(text)} characters, more than {MAX_TEXT_CHARS}")
        lang = lang.lower()
        if not _LANG.match(lang):
            raise SourceError(f'speech language "{lang}" is not a language code like "vi"')
        self.rate = rate
        self._buf = PcmBuffer()
        self._eof = False
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process it captures)
        cmd = [_espeak(), "-v", lang, "-s", str(speed_wpm), "-b", "1", "--stdin", "--stdout"]
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err
            )
        except OSError as e:
            self._err.close()
            raise SourceError(f"cannot start espeak-ng: {e}") from e
        try:
            # --stdin makes espeak read the whole text before it speaks, so writing it all first cannot
            # deadlock against a full stdout pipe.
            self._proc.stdin.write(text.encode("utf-8"))
            self._proc.stdin.close()
            in_rate = self._read_header()
        except (OSError, SourceError) as e:
            self.close()
            if isinstance(e, SourceError):
                raise
            raise SourceError(f"espeak-ng failed: {e}") from e
        self._resampler = Resampled(in_rate, rate)

    def _stderr(self) -> str:
        try:
            self._err.seek(0)
            return self._err.read().decode("utf-8", "replace").strip()[-300:]
        except (OSError, ValueError):
            return ""

    def _read_header(self) -> int:
        head = self._proc.stdout.read(44)
        if len(head) < 44 or head[:4] != b"RIFF" or head[8:12] != b"WAVE" or head[36:40] != b"data":
            self._proc.wait(timeout=10)
            why = self._stderr() or f"exit code {self._proc.returncode}"
            raise SourceError(f"espeak-ng produced no audio: {why}")
        channels, in_rate, _, _, bits = struct.unpack("<HIIHH", head[22:36])
        if channels != 1 or bits != 16:
            raise SourceError(f"espeak-ng output is {channels} ch / {bits} bit, expected mono 16-bit")
        return in_rate

    @property
    def peak_bound(self) -> float:
        return self._buf.peak

    def read(self, frames: int) -> np.ndarray:
        while len(self._buf) < frames and not self._eof:
            data = self._proc.stdout.read(CHUNK_BYTES) if self._proc.stdout else b""
            last = len(data) == 0
            if len(data) % 2:
                data = data[:-1]
            pcm = np.frombuffer(data, dtype="<i2").astype(np.float32)
            pcm *= np.float32(1.0 / 32768.0)
            self._buf.append(self._resampler.push(pcm, last=last))
            if last:
                self._eof = True
                code = self._proc.wait(timeout=10)
                if code != 0:
                    raise SourceError(f"espeak-ng exited with code {code}: {self._stderr()}")
        return self._buf.take(frames)

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
        self._eof = True
        if not self._err.closed:
            self._err.close()
