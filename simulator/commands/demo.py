"""`loa-sim demo`: a whole station story in about a minute and a half, with nothing but this machine.

A private mosquitto, a district signing key, a station (the real daemon, simulated GPIO) with a demo schedule
whose first programme is already under way (the station joins it at its offset), an *exercise* alert from the
district that breaks in, its cancellation, the programme resuming, then the next programme. Audio goes to the
default sound device, or to a WAV file where there is none.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import soundfile

log = logging.getLogger("loa.demo")

RATE = 48000


def register(sub) -> None:
    p = sub.add_parser("demo", help="a simulated station, a local mosquitto, a demo schedule and an alert")
    p.add_argument("--workdir", default="out/demo", help="where keys, config, audio and the WAV go (out/demo)")
    p.add_argument("--wav", help="write the audio to this WAV file even if there is a sound device")
    p.add_argument("--no-alert", action="store_true", help="just the schedule")
    p.set_defaults(func=run)


def _say(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", flush=True)


def _music(path: Path, seconds: float) -> None:
    """A calm demo 'programme': a few soft chords, generated (no copyrighted audio in the repo)."""
    t = np.arange(int(seconds * RATE)) / RATE
    chords = [(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7)]
    out = np.zeros_like(t, dtype=np.float32)
    for i, chord in enumerate(chords * int(seconds // 8 + 1)):
        a, b = i * 2.0, (i + 1) * 2.0
        sel = (t >= a) & (t < b)
        env = np.minimum(1.0, np.minimum((t[sel] - a) * 8, (b - t[sel]) * 8))
        out[sel] = sum(np.sin(2 * np.pi * f * t[sel]) for f in chord) / 3 * 0.5 * env
    soundfile.write(path, out, RATE, subtype="PCM_16")


def _has_sound_device() -> bool:
    """Ask PortAudio for a default output device in a child process: ALSA/JACK print pages of probing
    noise on a machine without sound, and that noise would bury the demo's own story."""
    import subprocess

    probe = "import pyaudio; p = pyaudio.PyAudio(); p.get_default_output_device_info()"
    try:
        return subprocess.run([sys.executable, "-c", probe], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _write_files(work: Path, broker_url: str, now: datetime):
    from firmware.protocol.keys import generate, signing_key_pem, trust_anchor_json

    work.mkdir(parents=True, exist_ok=True)
    key = generate("demo")
    (work / "district.key").write_bytes(signing_key_pem(key))
    (work / "district.key").chmod(0o600)
    (work / "trust.json").write_bytes(trust_anchor_json([key.anchor()]))
    # The first programme started at the top of this minute and runs until a minute boundary at least
    # 40 s away: the station, just booted, joins it in progress.
    start = now.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=1)
    while (end - now).total_seconds() < 40:
        end += timedelta(minutes=1)
    length = (end - start).total_seconds()
    _music(work / "nhac-mo-dau.wav", length)
    win_start = (start - timedelta(minutes=10)).strftime("%H:%M")
    win_end = (end + timedelta(minutes=10)).strftime("%H:%M")
    (work / "station.toml").write_text(f"""
[station]
district = "demo"
commune = "xa-mau"
id = "thon-1"
name = "Loa thôn 1 (demo)"

[policy]
alert_gain_db = -3.0

[[policy.windows]]
start = "{win_start}"
end = "{win_end}"
cap_db = -9.0

[gpio]
amp_warmup_s = 0.5
amp_hang_s = 5

[broker]
url = "{broker_url}"
keepalive_s = 10

[trust]
key_files = ["{work / 'trust.json'}"]

[paths]
state_dir = "{work / 'state'}"
""")
    schedule = {
        "version": 1, "timezone": "Asia/Ho_Chi_Minh", "target": "demo/xa-mau",
        "programmes": [
            {"id": "nhac-mo-dau", "title": "Nhạc mở đầu", "level": "normal",
             "source": {"type": "file", "path": str(work / "nhac-mo-dau.wav"), "duration_s": length},
             "recurrence": {"dates": [start.date().isoformat()]}, "start": start.strftime("%H:%M"), "gain_db": -3},
            {"id": "ban-tin", "title": "Bản tin của xã", "level": "priority",
             "source": {"type": "tts", "lang": "vi", "text": "Xin chào bà con. Đây là bản tin thử nghiệm của "
                        "hệ thống loa thông minh. Chúc bà con một ngày tốt lành.", "duration_s": 9},
             "recurrence": {"dates": [end.date().isoformat()]}, "start": end.strftime("%H:%M")},
        ],
    }
    (work / "schedule.json").write_text(json.dumps(schedule, ensure_ascii=False, indent=1))
    return key, start, end


def run(args) -> int:
    from district.alerts import build_alert, build_cancel, publish_alert
    from district.mqtt import DistrictClient
    from firmware.config import load_config
    from firmware.core import commands as C
    from firmware.core.schedule import parse_schedule
    from firmware.protocol.ack import parse_ack
    from firmware.protocol.topics import Scope
    from simulator.broker import Mosquitto
    from simulator.station import sim_app

    logging.getLogger().setLevel(logging.WARNING)
    work = Path(args.workdir).resolve()
    wav = args.wav or (None if _has_sound_device() else str(work / "demo.wav"))
    with Mosquitto() as broker:
        _say(f"mosquitto started on {broker.url}")
        from zoneinfo import ZoneInfo

        now = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))
        key, start, end = _write_files(work, broker.url, now)
        cfg = load_config(work / "station.toml")
        if wav:
            cfg = cfg.model_copy(update={"audio": cfg.audio.model_copy(update={"wav_out": wav})})
        doc = parse_schedule((work / "schedule.json").read_bytes())
        _say(f"schedule: 'Nhạc mở đầu' {start:%H:%M:%S}-{end:%H:%M:%S} (already started), "
             f"'Bản tin của xã' at {end:%H:%M}; allowed window cap -9 dB")
        _say(f"audio -> {wav or 'the default sound device'}")

        finished = threading.Event()
        log_entries: list = []

        def on_command(when, cmd) -> None:
            if isinstance(cmd, C.Play):
                _say(f"station: PLAY {cmd.kind} '{cmd.ref}' at {cmd.gain_db:+.1f} dB"
                     + (f", joined at {cmd.offset_s:.0f} s" if cmd.offset_s > 1 else ""))
            elif isinstance(cmd, C.Stop):
                _say(f"station: stop ({cmd.reason})")
            elif isinstance(cmd, C.Amplifier):
                _say(f"station: amplifier {'ON' if cmd.on else 'off'}")
            elif isinstance(cmd, C.Report):
                e = cmd.entry
                log_entries.append(e)
                _say(f"station: play log '{e.ref}' {e.result}, {e.played_s:.1f} s{': ' + e.reason if e.reason else ''}")
                if e.ref == "ban-tin":
                    finished.set()

        app = sim_app(cfg, schedule=doc, on_command=on_command)
        scope = Scope("demo", "xa-mau")
        acks: list = []
        with DistrictClient.from_url(broker.url, client_id="demo-district") as district:
            def on_ack(msg) -> None:
                try:
                    a = parse_ack(msg.payload)
                except Exception:
                    return
                acks.append(a)
                _say(f"district: ack from {a.station}: {a.ref} {a.state} {a.reason}".rstrip())

            district.subscribe(["loa/v1/demo/+/+/ack"], on_ack)
            app.start()
            try:
                _say("station started (simulated GPIO, real daemon)")
                if not args.no_alert:
                    time.sleep(6)  # the demo's own pacing: let the joined programme be heard first
                    t = datetime.now(cfg.tz)
                    alert = build_alert(scope=scope, status="exercise", now=t, expires_in=timedelta(minutes=10),
                                        severity="severe", headline="Diễn tập phòng chống lụt bão",
                                        text="Nước sông đang lên. Đây chỉ là tin diễn tập.", repeat=2)
                    publish_alert(district, alert, key, t)
                    _say(f"district: EXERCISE alert {alert.id} sent to {scope}")
                    time.sleep(14)
                    t = datetime.now(cfg.tz)
                    cancel = build_cancel(alert.id, scope=scope, status="exercise", now=t,
                                          expires_in=timedelta(minutes=10))
                    t0 = time.monotonic()
                    publish_alert(district, cancel, key, t)
                    _say(f"district: cancel {cancel.id} sent ({(time.monotonic() - t0) * 1000:.0f} ms to PUBACK)")
                wait_s = (end - datetime.now(cfg.tz)).total_seconds() + 40
                if not finished.wait(max(5.0, wait_s)):
                    _say("the bulletin did not finish in time (see the log above)")
            finally:
                app.stop()
        _say(f"done: {len(log_entries)} play-log entries, {len(acks)} acks")
        if wav and Path(wav).exists():
            info = soundfile.info(wav)
            _say(f"wrote {wav} ({info.duration:.1f} s)")
    return 0 if finished.is_set() else 1


