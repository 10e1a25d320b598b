"""Peak RSS of a process playing a 1-minute vs a 3-hour programme through the real player.

Each run is a fresh subprocess: Player + FileSource (44.1 kHz stereo MP3: decode, downmix, resample) + DSP
into a non-paced CountingSink, so three hours take seconds. The child reports its own peak RSS
(getrusage ru_maxrss). Memory must not grow with the programme's length. Goals: <= 60 MB, 3 h / 1 min <= 1.1.

    python -m benchmarks memory [--hours 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks._common import cache_dir, row
from benchmarks.audio_pipeline import _ffmpeg, make_mp3

LIMIT_MB = 60.0

CHILD = r"""
import json, resource, sys, threading
from firmware.audio.player import Player
from firmware.core.commands import Play
from firmware.core.sources import FileSpec
from simulator.sinks import CountingSink

done, result = threading.Event(), {}
def emit(event):
    result[type(event).__name__] = getattr(event, "played_s", None)
    if type(event).__name__ != "PlaybackStarted":
        result["reason"] = getattr(event, "reason", "")
        done.set()
sink = CountingSink(48000, paced=False)
player = Player(sink, emit=emit)
player.start()
player.play(Play("bench", "programme", "memory", FileSpec(path=sys.argv[1]), -6.0, -1.0))
done.wait(3600)
player.close()
result["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result["frames"] = sink.frames
print(json.dumps(result))
"""


def long_mp3(hours: float) -> Path:
    """`hours` of MP3 made by concatenating the cached 1-hour file (stream copy: seconds, not minutes)."""
    path = cache_dir() / f"sine-noise-{hours:g}h-44k-stereo.mp3"
    if path.exists() and path.stat().st_size > 0:
        return path
    one = make_mp3(60)
    whole = int(hours)
    parts = [one] * whole
    if hours > whole:
        parts.append(make_mp3(round((hours - whole) * 60)))
    listing = cache_dir() / "concat.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    tmp = path.with_suffix(".part.mp3")
    cmd = [
        _ffmpeg(),
        "-v",
        "error",
        "-y",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        "-c",
        "copy",
        str(tmp),
    ]
    subprocess.run(cmd, check=True)
    tmp.rename(path)
    return path


def play_in_child(path: Path) -> dict:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], cwd=root, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"player child failed: {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "PlaybackEnded" not in result:
        raise SystemExit(f"{path} did not play to the end: {result}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks memory", description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=3.0)
    args = parser.parse_args(argv)
    short = play_in_child(make_mp3(1))
    long = play_in_child(long_mp3(args.hours))
    short_mb, long_mb = short["rss_kb"] / 1024, long["rss_kb"] / 1024
    played_h = long["PlaybackEnded"] / 3600
    r1 = row(
        f"memory: peak RSS, {played_h:.2f} h programme",
        long_mb,
        LIMIT_MB,
        unit="MB",
        peer_name="limit",
        goal=1.0,
    )
    r2 = row(
        f"memory: {played_h:.2f} h vs {short['PlaybackEnded'] / 60:.0f} min programme",
        long_mb,
        short_mb,
        unit="MB",
        peer_name="1 min",
        goal=1.1,
    )
    return 0 if r1 <= 1.0 and r2 <= 1.1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
