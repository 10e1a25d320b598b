"""The sound card, through PortAudio (PyAudio), in blocking mode.

Blocking rather than callback mode (measured in `benchmarks/sink_modes.py`, argued in docs/audio.md): the
player thread already produces blocks at the device's pace, so a blocking write is one copy with the device
doing the pacing; callback mode would add a ring buffer, a lock and a PortAudio thread that needs the GIL in
real time, for no gain in latency.

`open()` re-initialises PortAudio every time, so a USB DAC that was unplugged and plugged back in is found
again (PortAudio only enumerates devices at initialisation).
"""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np

from firmware.audio import SinkError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_stderr():
    """ALSA and JACK print probing noise to fd 2 during PortAudio initialisation; keep journald readable."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def list_output_devices(pa) -> list[tuple[int, str]]:
    out = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if int(info.get("maxOutputChannels", 0)) > 0:
            out.append((i, str(info.get("name", ""))))
    return out


def choose_device(devices: list[tuple[int, str]], want: str | int | None) -> int | None:
    """`want`: None (the default device), an index, or a case-insensitive substring of the name ("USB")."""
    if want is None or want == "":
        return None
    if isinstance(want, int) or (isinstance(want, str) and want.isdigit()):
        idx = int(want)
        if any(i == idx for i, _ in devices):
            return idx
        raise SinkError(f"no output device with index {idx} (have: {_names(devices)})")
    for i, name in devices:
        if want.lower() in name.lower():
            return i
    raise SinkError(f'no output device matching "{want}" (have: {_names(devices)})')


def _names(devices) -> str:
    return ", ".join(f"{i}: {n}" for i, n in devices) or "none"


class PyAudioSink:
    """`firmware.ports.Sink` on PortAudio: int16 mono at `rate`, `block_frames` per write, PortAudio buffer
    of `buffer_blocks` blocks (the latency beyond the block being written)."""

    def __init__(
        self,
        device: str | int | None = None,
        *,
        rate: int = 48000,
        block_frames: int = 960,
        buffer_blocks: int = 2,
    ):
        self.device = device
        self.rate = rate
        self.block_frames = block_frames
        self.buffer_blocks = max(1, buffer_blocks)
        self.latency_s = self.buffer_blocks * block_frames / rate
        self.device_name: str | None = None
        self._pa = None
        self._stream = None

    def open(self) -> None:
        self.close()
        try:
            import pyaudio
        except ImportError as e:
            raise SinkError(f"PyAudio is not installed: {e}") from e
        with _quiet_stderr():
            try:
                self._pa = pyaudio.PyAudio()
                devices = list_output_devices(self._pa)
                index = choose_device(devices, self.device)
                if not devices:
                    raise SinkError("no audio output device (is the sound card or USB DAC connected?)")
                self._stream = self._pa.open(
                    format=pyaudio.paInt16,
                    channels=1,
                    rate=self.rate,
                    output=True,
                    output_device_index=index,
                    frames_per_buffer=self.block_frames,
                    start=True,
                )
                info = self._pa.get_device_info_by_index(index) if index is not None else None
                self.device_name = str(info["name"]) if info else "default"
            except SinkError:
                self.close()
                raise
            except (OSError, ValueError) as e:
                self.close()
                raise SinkError(f"cannot open audio device {self.device or 'default'!s}: {e}") from e
        reported = self._stream.get_output_latency()
        # PortAudio reports its real buffer; trust it when it says more than we asked for.
        self.latency_s = max(self.latency_s, float(reported or 0.0))
        log.info(
            "audio device %s open: %d Hz, %d-frame blocks, latency %.0f ms",
            self.device_name,
            self.rate,
            self.block_frames,
            self.latency_s * 1000,
        )

    def write(self, block: np.ndarray) -> None:
        if self._stream is None:
            raise SinkError("audio device is not open")
        data = np.ascontiguousarray(block, dtype=np.int16).tobytes()
        try:
            # Underflow after an idle gap is expected (the player writes nothing when idle): not an error.
            self._stream.write(data, len(block), exception_on_underflow=False)
        except (OSError, ValueError) as e:
            raise SinkError(f"audio device {self.device_name} write failed: {e}") from e

    def close(self) -> None:
        stream, self._stream = self._stream, None
        pa, self._pa = self._pa, None
        if stream is not None:
            try:
                stream.stop_stream()
                stream.close()
            except (OSError, ValueError) as e:
                log.debug("closing the audio stream: %s", e)
        if pa is not None:
            pa.terminate()
