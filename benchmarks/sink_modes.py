"""PortAudio blocking writes vs callback mode, through the default output device: CPU per hour of audio and
how evenly the producer is paced. Decides `firmware.adapters.pyaudio_sink` (see docs/audio.md).

Blocking: the producer writes 20 ms int16 blocks; PortAudio blocks it when its buffer is full.
Callback: the producer puts the same blocks on a queue of `buffer_blocks`; PortAudio's thread takes the GIL
in every callback to copy one out (silence, and an underrun counted, when the queue is empty).

    python -m benchmarks sink_modes [--seconds 20]

On a machine without a real sound card, point ALSA at a file PCM first (tests/adapters/test_sinks.py shows
the `.asoundrc`); a `null` slave does not pace, so the figures are then CPU cost only.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time

import numpy as np

from benchmarks._common import row
from firmware.adapters.pyaudio_sink import _quiet_stderr

RATE, BLOCK, BUFFER_BLOCKS = 48000, 960, 2


def _block(i: int) -> bytes:
    t = (np.arange(BLOCK) + i * BLOCK) / RATE
    return (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16).tobytes()


def blocking(pa, pyaudio, blocks: list[bytes]) -> tuple[float, float, float]:
    stream = pa.open(format=pyaudio.paInt16, channels=1, rate=RATE, output=True, frames_per_buffer=BLOCK)
    gaps, last = [], time.monotonic()
    cpu, wall = time.process_time(), time.monotonic()
    for data in blocks:
        stream.write(data, BLOCK, exception_on_underflow=False)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    stream.stop_stream()
    stream.close()
    return cpu, wall, float(np.std(gaps[BUFFER_BLOCKS + 1 :]))


def callback(pa, pyaudio, blocks: list[bytes]) -> tuple[float, float, float, int]:
    q: queue.Queue[bytes] = queue.Queue(maxsize=BUFFER_BLOCKS)
    silence = bytes(2 * BLOCK)
    underruns = [0]
    finished = threading.Event()
    remaining = [len(blocks)]

    def cb(_in, frames, _time, _status):
        try:
            data = q.get_nowait()
            remaining[0] -= 1
        except queue.Empty:
            underruns[0] += 1
            data = silence
        if remaining[0] <= 0:
            finished.set()
            return data, pyaudio.paComplete
        return data, pyaudio.paContinue

    stream = pa.open(
        format=pyaudio.paInt16,
        channels=1,
        rate=RATE,
        output=True,
        frames_per_buffer=BLOCK,
        stream_callback=cb,
    )
    gaps, last = [], time.monotonic()
    cpu, wall = time.process_time(), time.monotonic()
    for data in blocks:
        q.put(data)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    finished.wait(30)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    stream.stop_stream()
    stream.close()
    return cpu, wall, float(np.std(gaps[BUFFER_BLOCKS + 1 :])), underruns[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks sink_modes", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    try:
        import pyaudio
    except ImportError:
        print("sink_modes: PyAudio is not installed; skipped")
        return 0
    with _quiet_stderr():
        pa = pyaudio.PyAudio()
    try:
        if pa.get_device_count() == 0:
            print("sink_modes: no audio output device; skipped")
            return 0
        n = int(args.seconds * RATE / BLOCK)
        blocks = [_block(i) for i in range(n)]
        b_cpu, b_wall, b_jit = blocking(pa, pyaudio, blocks)
        c_cpu, c_wall, c_jit, underruns = callback(pa, pyaudio, blocks)
    finally:
        pa.terminate()
    audio_h = args.seconds / 3600
    paced = b_wall > 0.9 * args.seconds
    print(
        f"device {'paces in real time' if paced else 'does NOT pace (null/file PCM): CPU figures only'}; "
        f"callback underruns: {underruns}"
    )
    row(
        "sink: blocking, CPU s per audio hour",
        b_cpu / audio_h,
        c_cpu / audio_h,
        unit="s",
        peer_name="callback",
    )
    if paced:
        row("sink: blocking, producer jitter", b_jit * 1000, c_jit * 1000, unit="ms", peer_name="callback")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
