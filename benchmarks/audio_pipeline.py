"""CPU to turn an hour of 44.1 kHz stereo MP3 into 48 kHz mono s16 with gain and limiter, against ffmpeg.

Ours: the player's real code path - `FileSource` (libsndfile/mpg123 decode in chunks, downmix, soxr) and the
DSP `Chain` (gain, fade, limiter, int16) - in the player's 20 ms blocks, into a sink that discards, without
the player thread's pacing. Peer: `ffmpeg -threads 1 -i in.mp3 -ac 1 -ar 48000 -af volume=-6dB -f s16le -`
to /dev/null, run in the same process tree and timed with getrusage(RUSAGE_CHILDREN). Runs alternate and the
minimum of each is kept (a shared machine only ever adds time). Goal: ratio <= 1.2.

    python -m benchmarks audio_pipeline [--minutes 60] [--repeat 1] [--block-ms 20]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import time
from pathlib import Path

from benchmarks._common import cache_dir, row
from firmware.audio.dsp import Chain
from firmware.audio.filesource import FileSource

RATE = 48000


def make_mp3(minutes: float) -> Path:
    """A 44.1 kHz stereo MP3: a 440 Hz sine on the left, pink noise on the right (so the channels differ and
    the encoder has real work), 128 kb/s. Cached: encoding an hour takes a while."""
    path = cache_dir() / f"sine-noise-{minutes:g}m-44k-stereo.mp3"
    if path.exists() and path.stat().st_size > 0:
        return path
    seconds = minutes * 60
    tmp = path.with_suffix(".part.mp3")
    subprocess.run(
        [
            _ffmpeg(), "-v", "error", "-y",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
            "-f", "lavfi", "-i", f"anoisesrc=color=pink:amplitude=0.2:sample_rate=44100:duration={seconds}",
            "-filter_complex", "[0][1]amerge=inputs=2", "-c:a", "libmp3lame", "-b:a", "128k", str(tmp),
        ],
        check=True,
    )  # fmt: skip
    tmp.rename(path)
    return path


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise SystemExit(
            "ffmpeg is not installed: it makes the input and is the peer (apt-get install ffmpeg)"
        )
    return exe


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_ffmpeg(path: Path) -> float:
    before = children_cpu()
    subprocess.run(
        [_ffmpeg(), "-v", "error", "-threads", "1", "-i", str(path), "-ac", "1", "-ar", str(RATE),
         "-af", "volume=-6dB", "-f", "s16le", "-"],
        stdout=subprocess.DEVNULL,
        check=True,
    )  # fmt: skip
    return children_cpu() - before


def run_ours(path: Path, block_frames: int, dsp: bool = True) -> tuple[float, int]:
    """CPU seconds of this process (decode runs in-process through libsndfile) and frames produced."""
    start = time.process_time()
    source = FileSource(path, RATE)
    chain = Chain(RATE, -6.0, -1.0)
    frames = 0
    try:
        while len(block := source.read(block_frames)):
            if dsp:
                block = chain.process(block, source.peak_bound)
            frames += len(block)  # the null sink
    finally:
        source.close()
    return time.process_time() - start, frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks audio_pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--block-ms", type=int, default=20)
    args = parser.parse_args(argv)
    path = make_mp3(args.minutes)
    block = RATE * args.block_ms // 1000
    ffmpeg_s, ours_s, decode_s = [], [], []
    for _ in range(max(1, args.repeat)):
        ffmpeg_s.append(run_ffmpeg(path))
        cpu, frames = run_ours(path, block)
        ours_s.append(cpu)
        decode_s.append(run_ours(path, block, dsp=False)[0])
    expected = args.minutes * 60 * RATE
    if abs(frames - expected) > RATE:
        print(f"warning: produced {frames / RATE:.1f} s of audio, expected {expected / RATE:.1f} s")
    label = f"audio_pipeline {args.minutes:g} min MP3 -> 48k s16"
    ratio = row(f"{label} (CPU)", min(ours_s), min(ffmpeg_s), unit="s", peer_name="ffmpeg", goal=1.2)
    row("  of which decode+resample, no DSP", min(decode_s), min(ffmpeg_s), unit="s", peer_name="ffmpeg")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
