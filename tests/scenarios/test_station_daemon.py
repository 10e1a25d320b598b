"""The real daemon on simulated hardware: programmes, gains, amplifier, watchdog, SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import datetime

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from firmware.adapters.systemd import Notifier
from firmware.audio.tones import TEST_LEVEL
from firmware.commands.run import serve
from firmware.core import commands as C
from firmware.runtime import Call
from simulator.sinks import PacedSink
from simulator.station import sim_app
from tests.scenarios.harness import (
    TZ,
    Recorder,
    clock_at,
    config,
    peak_db,
    schedule,
    start_station,
    write_key,
)
from tests.waiting import wait_until


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


def _sigterm_mid_programme(tmp_path, caplog, notifier=None):
    """`loa-station run`'s own `serve()` on the in-process App (GPIO on MockFactory, paced sink), sent a real
    SIGTERM half a second into a 5-minute programme. Returns what a technician could observe afterwards."""
    caplog.set_level(logging.INFO, logger="firmware.runtime")
    write_key(tmp_path)
    # hang_s far beyond the test: if the relay is off afterwards, it was switched off, not timed out
    cfg = config(tmp_path, warmup_s=0.2, hang_s=60.0)
    factory = MockFactory()
    rec = Recorder()
    sink = PacedSink(cfg.audio.rate_hz, latency_s=0.02)
    app = sim_app(cfg, sink=sink, clock=clock_at(datetime(2026, 12, 1, 6, 0, 2, tzinfo=TZ)),
                  schedule=schedule(tone("long", "06:00", 300, -6.0)), on_command=rec, pin_factory=factory,
                  notifier=notifier)
    before = signal.getsignal(signal.SIGTERM)
    heard = threading.Event()

    def terminate() -> None:
        if sink.wait_for(lambda: len(sink.accepted) >= 25, 20):  # 0.5 s of the programme has sounded
            heard.set()
        if signal.getsignal(signal.SIGTERM) is not before:  # serve()'s handler is in place: it is running
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate, name="test-sigterm", daemon=True)
    killer.start()
    try:
        code = serve(app)
    finally:
        killer.join(25)
    assert heard.is_set(), f"the programme never played: {rec.commands}"
    return code, cfg, factory.pin(cfg.gpio.amp_pin), sink, rec, caplog.text


def test_sigterm_with_gpio_leaves_the_amplifier_off_the_audio_faded_and_the_play_logged(tmp_path, caplog):
    code, cfg, pin, sink, rec, log_text = _sigterm_mid_programme(tmp_path, caplog)
    assert code == 0  # a clean exit: systemd does not count it as a failure
    assert [s.state for s in pin.states] == [False, True, False]  # switched on once, and off again
    assert pin.state is False
    # Faded, not cut: the tone goes from its full level to silence over the fade, not within one period.
    level = 0.5 * 10 ** (-6.0 / 20) * 32767  # the test tone at -6 dB
    audio = sink.samples().astype(np.float64)
    ms = cfg.audio.rate_hz // 1000
    envelope = np.abs(audio[: len(audio) // ms * ms]).reshape(-1, ms).max(axis=1)  # peak of each 1 ms
    assert envelope[-1] < 0.02 * level, envelope[-40:]
    last_loud = np.flatnonzero(envelope > 0.9 * level)[-1]
    first_quiet = last_loud + np.flatnonzero(envelope[last_loud:] < 0.05 * level)[0]
    assert first_quiet - last_loud >= cfg.audio.fade_ms // 2, envelope[last_loud - 5:]
    # The play log says what happened to the programme, and why.
    [entry] = rec.reports()
    assert (entry.ref, entry.result) == ("long", "partial")
    assert entry.reason.endswith("station stopping")
    assert "play log: programme long partial" in log_text and "station stopping" in log_text


def test_sigterm_switches_the_amplifier_off_only_after_the_fade_was_played(tmp_path, caplog):
    """The fade exists so the speakers do not click; a relay opened before it sounds makes it pointless."""
    _, _, pin, sink, _, _ = _sigterm_mid_programme(tmp_path, caplog)
    off_at = _absolute_pin_history(pin)[-1][0]
    last_write = sink.accepted[-1].t_write
    assert off_at >= last_write, f"relay off {1000 * (last_write - off_at):.0f} ms before the last block was written"


def _notify_socket(tmp_path) -> tuple[socket.socket, Notifier]:
    """systemd's end of sd_notify: a datagram socket the station's Notifier sends to."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(tmp_path / "notify.sock"))
    srv.settimeout(5)
    return srv, Notifier(str(tmp_path / "notify.sock"))


def _pending(srv: socket.socket) -> list[str]:
    """The datagrams already delivered (a local datagram is in the buffer when the sender's sendto returns)."""
    out = []
    srv.setblocking(False)
    try:
        while True:
            out.append(srv.recv(1024).decode())
    except BlockingIOError:
        return out
    finally:
        srv.settimeout(5)


def _pings_in_two_turns(app, srv: socket.socket) -> int:
    """WATCHDOG=1 datagrams sent while the runtime loop goes round twice. Each turn ends by feeding the
    watchdog if everything is alive; once the second turn has begun, the first one has fed it (or not)."""
    _pending(srv)
    for _ in range(2):
        turned = threading.Event()
        app.parts.runtime.put(Call(lambda rt, turned=turned: turned.set()))
        assert turned.wait(10), "the runtime loop is not turning"
    return _pending(srv).count("WATCHDOG=1")


@pytest.fixture
def watchdog_every_turn(monkeypatch):
    """A watchdog period so short that a healthy station feeds it on every turn of its loop: whether it is
    fed then depends only on what is alive, not on timing."""
    monkeypatch.setenv("WATCHDOG_USEC", "3")


def test_systemd_is_told_stopping_on_sigterm(tmp_path, caplog):
    srv, notifier = _notify_socket(tmp_path)
    try:
        _sigterm_mid_programme(tmp_path, caplog, notifier=notifier)
        msgs = _pending(srv)
    finally:
        srv.close()
    assert msgs[0].startswith("READY=1")
    assert "STOPPING=1" in msgs, msgs
    assert not any(m.startswith("READY=1") for m in msgs[msgs.index("STOPPING=1"):])


def test_watchdog_is_fed_only_while_player_is_alive(tmp_path, watchdog_every_turn):
    """A player wedged in a source call (here: opening a FIFO nobody writes, as a hung network mount would
    hold it) reports itself not alive after 50 blocks; the watchdog must then starve so systemd restarts us."""
    srv, notifier = _notify_socket(tmp_path)
    write_key(tmp_path)
    fifo = tmp_path / "hung.wav"
    os.mkfifo(fifo)
    wedged = {"id": "wedged", "title": "wedged", "start": "12:00", "recurrence": {"days": "daily"},
              "source": {"type": "file", "path": str(fifo), "duration_s": 60}}
    app, _, _ = start_station(config(tmp_path, windows=(("05:30", "21:00", -6.0),)),
                              at=datetime(2026, 12, 1, 11, 59, 59, tzinfo=TZ), doc=schedule(wedged),
                              notifier=notifier)
    try:
        assert _pings_in_two_turns(app, srv) >= 1  # healthy: fed
        assert wait_until(lambda: not app.parts.player.alive, 15), "the player never noticed it was stuck"
        _pings_in_two_turns(app, srv)  # a turn that began before it counted as stuck may still have fed it
        assert _pings_in_two_turns(app, srv) == 0
    finally:
        try:  # a writer that closes at once: the player's open() returns and the file fails to decode
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            fifo.unlink()  # first, so that a retry finds no file rather than a FIFO to hang on again
            os.close(writer)
        except OSError:
            pass
        app.stop()
        srv.close()


def test_watchdog_is_not_fed_while_the_network_thread_is_dead(tmp_path, watchdog_every_turn, broker):
    srv, notifier = _notify_socket(tmp_path)
    write_key(tmp_path)
    cfg = config(tmp_path, broker_url=broker.url)
    app, _, _ = start_station(cfg, at=datetime(2026, 12, 1, 12, 0, tzinfo=TZ), doc=schedule(), notifier=notifier)
    try:
        link = app.parts.link
        assert wait_until(lambda: link.connected, 10)
        assert _pings_in_two_turns(app, srv) >= 1  # healthy: fed
        # paho's network thread ends, as it does when an exception escapes it: no alert can reach us now
        link.client.loop_stop()
        assert not any(t.name == f"paho-mqtt-client-{cfg.station.id}" for t in threading.enumerate())
        assert app.parts.player.alive  # only the network half is dead
        _pings_in_two_turns(app, srv)
        assert _pings_in_two_turns(app, srv) == 0
    finally:
        app.stop()
        srv.close()
