"""Test media made on the fly: numpy -> soundfile (WAV/FLAC/OGG), MP3 through ffmpeg, and broken files."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf


def sine(freq_hz: float, seconds: float, rate: int, amp: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return mono if channels == 1 else np.repeat(mono[:, None], channels, axis=1)


@pytest.fixture
def make_file(tmp_path):
    """make_file(ext, seconds=1.0, rate=44100, channels=2, freq_hz=440, amp=0.5) -> path of a sine file."""

    def make(
        ext: str, seconds: float = 1.0, rate: int = 44100, channels: int = 2, freq_hz: float = 440.0, amp=0.5
    ):
        path = tmp_path / f"tone-{freq_hz:g}-{seconds:g}s-{rate}-{channels}ch.{ext}"
        data = sine(freq_hz, seconds, rate, amp, channels)
        if ext == "mp3":
            wav = path.with_suffix(".wav")
            sf.write(wav, data, rate)
            subprocess.run(
                [ffmpeg(), "-v", "error", "-y", "-i", str(wav), "-b:a", "128k", str(path)], check=True
            )
        else:
            sf.write(path, data, rate)
        return path

    return make


def ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        pytest.skip("ffmpeg is not installed: cannot make MP3 test media (apt-get install ffmpeg)")
    return exe
