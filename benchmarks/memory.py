"""Peak RSS of the station daemon playing a 1-minute vs a 3-hour programme (issue 3).

Each run is a fresh child process holding the real daemon composition, built the way the simulator builds it
(`simulator.station.sim_app`): `firmware.app.App` with its Runtime and Station, the Player, the content cache
and prefetcher, the MQTT link (paho) to a private mosquitto, the Reporter and its SQLite outbox, and GPIO on
gpiozero's MockFactory. Its schedule holds one file programme starting a few seconds after boot, inside a
whole-day window with caps that allow a session of that length. The file is a 44.1 kHz stereo MP3, so
decode, downmix and resample all run. The sink is `CountingSink(paced=False)`: it keeps no samples and never
waits, so three hours of audio take seconds of CPU. The station's clock still runs in real time, so the
programme is planned a minute longer than the file. The limit never cuts it: the source running out ends
it (`PlaybackEnded(completed=True)`), and the sink's frame count shows the whole file went through. The child
waits for the station's play-log report of the programme, reads its own peak RSS (getrusage ru_maxrss),
stops the App and prints one JSON line.

Goals: <= 60 MB, 3 h / 1 min <= 1.1.

    python -m benchmarks memory [--hours 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._common import cache_dir, row

LIMIT_MB = 60.0
RATE = 48000
BOOT_LEAD_S = 3.0  # boot this long before the programme's start: App.start() must be done by then
PLAN_MARGIN_S = 60.0  # planned beyond the file, so that the file running out ends the play, not max_s
RUN_TIMEOUT_S = 1800.0

# The child imports nothing from here at module level but `_common`: its memory is the daemon's, not ours.
CHILD = "import sys; from benchmarks.memory import child; child(*sys.argv[1:])"


def station_config(workdir: Path, broker_url: str, hours: float):
    """A station in a whole-day window whose session and day caps allow `hours` of one programme."""
    from firmware.config import parse_config_text

    minutes = min(1440, int(hours * 60 + PLAN_MARGIN_S / 60) + 5)
    return parse_config_text(f"""
[station]
district = "bd"
commune = "bc"
id = "mem"
[policy]
max_sessions_per_day = 4
max_session_minutes = {minutes}
max_minutes_per_day = {minutes}
[[policy.windows]]
start = "00:00"
end = "24:00"
cap_db = -6.0
[gpio]
amp_warmup_s = 0.2
[broker]
url = "{broker_url}"
keepalive_s = 30
[trust]
key_files = ["{workdir / 'trust.json'}"]
[paths]
state_dir = "{workdir / 'state'}"
""", "memory-bench.toml")


def child(mp3: str, duration_s: str, broker_url: str, workdir: str) -> None:
    """In a fresh process: the daemon plays `mp3` once; print peak RSS, frames and what the station said."""
    import resource
    import threading
    import time
    from datetime import datetime, timedelta

    from firmware.core import commands as C
    from firmware.core.schedule import ScheduleDoc
    from simulator.clock import SteppableClock
    from simulator.sinks import CountingSink
    from simulator.station import sim_app

    seconds = float(duration_s)
    cfg = station_config(Path(workdir), broker_url, seconds / 3600)
    doc = ScheduleDoc.model_validate({"version": 1, "programmes": [{
        "id": "memory", "title": "Memory benchmark", "start": "00:01", "recurrence": {"days": "daily"},
        "source": {"type": "file", "path": mp3, "duration_s": seconds + PLAN_MARGIN_S}}]})
    cond = threading.Condition()
    seen: dict = {}

    def on_command(when, cmd) -> None:  # the runtime's thread: note and wake, nothing more
        with cond:
            if isinstance(cmd, C.Play) and cmd.kind == "programme":
                seen["play"] = cmd
            elif isinstance(cmd, C.Report) and cmd.entry.kind == "programme":
                seen["report"] = cmd.entry
            cond.notify_all()  # also on Led/StateChanged: the link coming up shows as the LED going "online"

    start = datetime.now(cfg.tz).replace(hour=0, minute=1, second=0, microsecond=0)
    clock = SteppableClock(cfg.tz, offset_s=(start - timedelta(seconds=BOOT_LEAD_S) - datetime.now(cfg.tz))
                           .total_seconds())
    sink = CountingSink(RATE, paced=False)
    app = sim_app(cfg, sink=sink, clock=clock, schedule=doc, on_command=on_command)
    app.start()
    # Before the programme's start (BOOT_LEAD_S away): what the daemon costs before it plays anything.
    result: dict = {"boot_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    try:
        link = app.parts.link
        t0 = time.monotonic()
        with cond:
            result["link_connected"] = cond.wait_for(lambda: link.connected, 15)
            if not cond.wait_for(lambda: "report" in seen, RUN_TIMEOUT_S):
                result["error"] = f"no play-log report of the programme within {RUN_TIMEOUT_S:.0f} s"
            t1 = time.monotonic()
        result["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["frames"] = sink.frames
        result["cpu_s"] = time.process_time()
        result["waited_s"] = t1 - t0
        if "play" in seen:
            result["offset_s"] = seen["play"].offset_s
        if "report" in seen:
            entry = seen["report"]
            result.update(report=entry.result, played_s=entry.played_s, reason=entry.reason)
    finally:
        t = time.monotonic()
        app.stop()
        result["stop_s"] = time.monotonic() - t
    print(json.dumps(result))


def long_mp3(hours: float) -> Path:
    """`hours` of MP3 made by concatenating the cached 1-hour file (stream copy: seconds, not minutes)."""
    from benchmarks.audio_pipeline import _ffmpeg, make_mp3

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


def play_in_child(path: Path, seconds: float, broker_url: str) -> dict:
    from firmware.protocol.keys import generate, trust_anchor_json

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="loa-bench-mem-") as work:
        (Path(work) / "trust.json").write_bytes(trust_anchor_json([generate("bd").anchor()]))
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(seconds), broker_url, work],
            cwd=root, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT_S + 120,
        )
    if proc.returncode != 0:
        raise SystemExit(f"daemon child failed: {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = seconds * RATE
    problems = [result["error"]] if "error" in result else []
    if not result["link_connected"]:
        problems.append("the station never connected to the broker")
    if result.get("report") != "played":
        problems.append(f"the programme was reported {result.get('report')!r}: {result.get('reason')}")
    if abs(result["frames"] - expected) > 0.001 * expected:
        problems.append(f"the sink got {result['frames']} frames, expected ~{expected:.0f}")
    if problems:
        raise SystemExit(f"{path.name}: " + "; ".join(problems))
    print(
        f"memory: {seconds / 60:g} min programme: {result['frames']} frames at the sink "
        f"({result['frames'] / expected:.5f} of {seconds:g} s x {RATE} Hz), reported {result['report']}, "
        f"joined at {result['offset_s'] * 1000:.0f} ms, boot to report {result['waited_s']:.1f} s "
        f"(lead {BOOT_LEAD_S:g} s), child CPU {result['cpu_s']:.1f} s, stop {result['stop_s']:.2f} s; "
        f"peak RSS {result['rss_kb'] / 1024:.1f} MB ({result['boot_rss_kb'] / 1024:.1f} MB once booted, "
        "before playing)",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks memory", description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=3.0)
    args = parser.parse_args(argv)
    from benchmarks.audio_pipeline import make_mp3
    from simulator.broker import Mosquitto

    short_path, long_path = make_mp3(1), long_mp3(args.hours)
    with Mosquitto() as broker:
        short = play_in_child(short_path, 60.0, broker.url)
        long = play_in_child(long_path, args.hours * 3600, broker.url)
    short_mb, long_mb = short["rss_kb"] / 1024, long["rss_kb"] / 1024
    r1 = row(
        f"memory: daemon peak RSS, {args.hours:g} h programme",
        long_mb,
        LIMIT_MB,
        unit="MB",
        peer_name="limit",
        goal=1.0,
    )
    r2 = row(
        f"memory: daemon, {args.hours:g} h vs 1 min programme",
        long_mb,
        short_mb,
        unit="MB",
        peer_name="1 min",
        goal=1.1,
    )
    return 0 if r1 <= 1.0 and r2 <= 1.1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
