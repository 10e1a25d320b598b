"""Loudness measurement of a 1 h MP3 as a ratio to decoding it alone (goal: measuring adds at most 30 %).

`district.library.measure` decodes the file once through ffmpeg with the BS.1770 meter (`ebur128=peak=true`)
in the same pass; the peer is the same ffmpeg decoding the same file to nothing. Both are timed here, in the
same run, best of 3 each. The MP3 (1 h of speech-like noise bursts, 44.1 kHz mono, 64 kb/s) is made first.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT = 1.30


def _best(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str]) -> int:
    from district.library import measure

    seconds = int(argv[0]) if argv else 3600
    with tempfile.TemporaryDirectory(prefix="loa-bench-") as tmp:
        mp3 = Path(tmp) / "hour.mp3"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                        f"anoisesrc=d={seconds}:c=pink:r=44100:a=0.2,volume='0.5+0.5*sin(2*PI*0.3*t)':eval=frame",
                        "-ac", "1", "-b:a", "64k", str(mp3)], check=True)
        decode = _best(lambda: subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(mp3), "-map", "0:a:0", "-f", "null", "-"], check=True))
        m = None

        def run() -> None:
            nonlocal m
            m = measure(mp3)

        measured = _best(run)
    ratio = measured / decode
    print(f"loudness of a {seconds / 3600:g} h MP3: measure {measured:.2f} s vs decode alone {decode:.2f} s: "
          f"ratio {ratio:.2f} (limit {LIMIT:.2f}); measured {m.integrated_lufs} LUFS, {m.duration_s:.0f} s")
    return 0 if ratio <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
