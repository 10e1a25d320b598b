"""The real daemon on simulated hardware: programmes, gains, amplifier, watchdog, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime

import numpy as np
import pytest

from firmware.adapters.systemd import Notifier
from firmware.audio.tones import TEST_LEVEL
from firmware.core import commands as C
from tests.scenarios.harness import TZ, config, peak_db, schedule, start_station, write_key


def tone(pid, start, seconds, gain, level="normal"):
    return {"id": pid, "title": pid, "level": level, "start": start, "gain_db": gain,
            "recurrence": {"days": "daily"}, "source": {"type": "tone", "kind": "test", "duration_s": seconds}}


def test_three_short_programmes_play_in_order_at_the_right_gains(tmp_path):
    write_key(tmp_path)
    cfg = config(tmp_path)
    doc = schedule(tone("a", "06:00", 1.0, 0.0), tone("b", "06:00", 1.0, -14.0), tone("c", "06:00", 1.0, -20.0))
    app, sink, rec = start_station(cfg, at=datetime(2026, 12, 1, 5, 59, 58, 500000, tzinfo=TZ), doc=doc)
    try:
        assert rec.wait_for(lambda r: len(r.reports()) == 3, 20), rec.commands
    finally:
        app.stop()
    assert [(e.ref, e.result) for e in rec.reports()] == [("a", "played"), ("b", "played"), ("c", "played")]
    plays = rec.of(C.Play)
    assert [(p.ref, p.gain_db) for p in plays] == [("a", -6.0), ("b", -14.0), ("c", -20.0)]  # a capped at -6
    # what reached the sink: three 1 s stretches at those levels, in that order
    audio = sink.samples()
    loud = np.flatnonzero(np.abs(audio) > 30)
    assert len(loud) > 2.5 * cfg.audio.rate_hz
    first, last = loud[0], loud[-1]
    thirds = np.array_split(audio[first:last], 3)
    peaks = [peak_db(t) for t in thirds]
    tone_db = 20 * np.log10(TEST_LEVEL)  # the test tone itself sits at -6 dBFS
    assert peaks[0] == pytest.approx(-6.0 + tone_db, abs=0.6)
    assert peaks[1] == pytest.approx(-14.0 + tone_db, abs=0.6)
    assert peaks[2] == pytest.approx(-20.0 + tone_db, abs=0.6)


def _absolute_pin_history(pin) -> list[tuple[float, bool]]:
    """MockPin keeps (seconds since the previous change, state); rebuild monotonic times from the last one."""
    out, t = [], pin._last_change
    for st in reversed(pin.states):
        out.append((t, bool(st.state)))
        t -= st.timestamp
    return list(reversed(out))


def test_amplifier_is_warm_before_the_first_sample_and_off_after_the_hang_time(tmp_path):
    write_key(tmp_path)
    cfg = config(tmp_path, warmup_s=0.5, hang_s=1.0)
    doc = schedule(tone("a", "06:00", 0.5, -6.0))
    app, sink, rec = start_station(cfg, at=datetime(2026, 12, 1, 5, 59, 57, tzinfo=TZ), doc=doc)
    pin = app.parts.amplifier._dev.pin
    try:
        assert rec.wait_for(lambda r: len(r.reports()) == 1, 15)
        assert rec.wait_for(lambda r: any(not c.on for c in r.of(C.Amplifier)), 10), "amp never went off"
        history = _absolute_pin_history(pin)
        first_block = sink.accepted[0].t_write
        last_block = sink.accepted[-1].t_write
    finally:
        app.stop()
    assert [s for _, s in history] == [False, True, False]  # exactly one on, one off: no relay chatter
    on_at, off_at = history[1][0], history[2][0]
    assert first_block - on_at >= 0.5 - 0.01  # warmed up before the first sample
    assert off_at - last_block >= 1.0 - 0.1  # and kept on for the hang time after the last one


def test_watchdog_is_fed_only_while_player_is_alive(tmp_path, monkeypatch):
    sock_path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(sock_path)
    srv.settimeout(5)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")  # pings every 0.1 s
    write_key(tmp_path)
    cfg = config(tmp_path)
    notifier = Notifier(sock_path)
    app, sink, rec = start_station(cfg, at=datetime(2026, 12, 1, 12, 0, tzinfo=TZ), doc=schedule(), notifier=notifier)
    try:
        msgs = []
        while len([m for m in msgs if m == "WATCHDOG=1"]) < 2:
            msgs.append(srv.recv(1024).decode())
        assert msgs[0].startswith("READY=1")
        # the player thread wedges (stuck in a source/sink call): the watchdog must starve
        app.parts.player._busy_since = time.monotonic() - 3600
        assert not app.parts.player.alive
        srv.settimeout(1.0)
        late = []
        try:
            while True:
                late.append(srv.recv(1024).decode())
        except TimeoutError:
            pass
        assert late.count("WATCHDOG=1") <= 1  # at most one already in flight
    finally:
        app.parts.player._busy_since = None
        app.stop()
        srv.close()


def test_sigterm_fades_out_switches_amplifier_off_and_exits_cleanly(tmp_path):
    write_key(tmp_path)
    cfg_path = tmp_path / "station.toml"
    cfg_path.write_text(f"""
[station]
district = "hv"
commune = "hb"
id = "s1"
[[policy.windows]]
start = "00:00"
end = "24:00"
cap_db = -6
[gpio]
enabled = false
[trust]
key_files = ["{tmp_path / 'trust.json'}"]
[paths]
state_dir = "{tmp_path / 'state'}"
""")
    minute = datetime.now(TZ).strftime("%H:%M")
    doc = {"version": 1, "programmes": [{"id": "long", "title": "Long", "start": minute,
                                          "recurrence": {"days": "daily"},
                                          "source": {"type": "tone", "kind": "chime", "duration_s": 300}}]}
    (tmp_path / "s.json").write_text(json.dumps(doc))
    wav = tmp_path / "out.wav"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "-v", "station", "--config", str(cfg_path), "--schedule",
         str(tmp_path / "s.json"), "--wav", str(wav), "--state-dir", str(tmp_path / "state")],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "play programme long" in line:
                ready.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        assert ready.wait(30), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    t.join(5)
    text = "".join(lines)
    assert "signal 15: stopping" in text
    assert "station stopping" in text  # the programme's play-log entry says why it ended
    import soundfile

    data, rate = soundfile.read(str(wav), dtype="int16")
    assert len(data) > 0 and abs(int(data[-1])) < 200  # faded out, not cut mid-wave
