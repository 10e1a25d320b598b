"""The on-site self-test: everything between the config file and the horn, one check per line.

`loa-station selftest` runs it before the daemon is started (a technician on the hillside), with the real
sink and pins; `loa-sim station --selftest` and the tests run it on simulated parts. Each check says what it
looked at and what it found; the exit code is 0 only when every check passed.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.config import StationConfig
from firmware.core.commands import Play
from firmware.core.events import PlaybackEnded, PlaybackFailed
from firmware.core.sources import ToneSpec

MIN_FREE_MB = 200
TEST_TONE_DB = -12.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: skipped (not configured here)
    detail: str


def run_selftest(cfg: StationConfig, *, sink=None, pin_factory=None, clock=None, tone_s: float = 1.0) -> list[Check]:
    checks = [_disk(cfg), _clock(cfg, clock), _trust(cfg)]
    amp = led = None
    try:
        amp, led, gpio_checks = _gpio(cfg, pin_factory)
        checks += gpio_checks
        checks += _audio(cfg, sink, amp, tone_s)
    finally:
        for dev in (amp, led):
            if dev is not None:
                dev.close()
    checks.append(_broker(cfg))
    return checks


def format_table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  result  detail"]
    for c in checks:
        res = "PASS" if c.ok else "skip" if c.ok is None else "FAIL"
        lines.append(f"{c.name:<{width}}  {res:<6}  {c.detail}")
    failed = sum(1 for c in checks if c.ok is False)
    lines.append(f"{len(checks)} checks: {sum(1 for c in checks if c.ok)} passed, {failed} failed, "
                 f"{sum(1 for c in checks if c.ok is None)} skipped")
    return "\n".join(lines)


def _disk(cfg: StationConfig) -> Check:
    d = Path(cfg.paths.state_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".selftest"
        probe.write_bytes(b"ok")
        probe.unlink()
        free = shutil.disk_usage(d).free / 1e6
    except OSError as e:
        return Check("disk", False, f"{d} not writable: {e.strerror or e}")
    return Check("disk", free >= MIN_FREE_MB, f"{d} writable, {free:.0f} MB free (need {MIN_FREE_MB})")


def _clock(cfg: StationConfig, clock) -> Check:
    from firmware.adapters.clock import SystemClock
    from firmware.adapters.statefile import StateStore

    clock = clock or SystemClock(cfg.tz)
    now = clock.wall()
    synced = clock.synced()
    try:
        last = StateStore(cfg.paths.state_dir).last_trusted
    except OSError:
        last = None
    if synced:
        return Check("clock", True, f"{now:%Y-%m-%d %H:%M:%S %Z}, NTP synchronised")
    if last is not None and now >= last:
        return Check("clock", True, f"{now:%Y-%m-%d %H:%M:%S %Z}, not synced but not behind last trusted {last:%F %T}")
    return Check("clock", False, f"{now:%Y-%m-%d %H:%M:%S %Z}, NOT synchronised (check network/NTP): "
                                 "scheduled programmes will be held")


def _trust(cfg: StationConfig) -> Check:
    from firmware.protocol.keys import load_trust_anchors

    if not cfg.trust.key_files:
        return Check("trust anchors", False, "no district key configured: alerts would be refused")
    try:
        keys = load_trust_anchors(*cfg.trust.key_files)
    except Exception as e:
        return Check("trust anchors", False, str(e))
    return Check("trust anchors", bool(keys), f"{len(keys)} district key(s): {', '.join(sorted(keys))}")


def _gpio(cfg: StationConfig, pin_factory):
    g = cfg.gpio
    if not g.enabled:
        return None, None, [Check("amplifier", None, "GPIO disabled in config"), Check("led", None, "GPIO disabled")]
    from firmware.adapters.gpio import AmplifierRelay, StatusLed

    checks = []
    amp = led = None
    try:
        amp = AmplifierRelay(g.amp_pin, active_high=g.amp_active_high, warmup_s=g.amp_warmup_s,
                             hang_s=g.amp_hang_s, pin_factory=pin_factory) if g.amp_pin is not None else None
        if amp is not None:
            amp.on()
            on = amp.wait_state(True, 1.0)
            amp.off()
            off = amp.wait_state(False, 1.0)
            checks.append(Check("amplifier", on and off, f"relay on GPIO{g.amp_pin} switched on and off"))
        else:
            checks.append(Check("amplifier", None, "no amp_pin configured"))
    except Exception as e:
        checks.append(Check("amplifier", False, f"GPIO{g.amp_pin}: {e}"))
    try:
        if g.led_pin is not None:
            led = StatusLed(g.led_pin, pin_factory=pin_factory)
            for pattern in ("fault", "playing", "online"):
                led.show(pattern)
            checks.append(Check("led", True, f"LED on GPIO{g.led_pin} cycled through its patterns"))
        else:
            checks.append(Check("led", None, "no led_pin configured"))
    except Exception as e:
        checks.append(Check("led", False, f"GPIO{g.led_pin}: {e}"))
    return amp, led, checks


def _audio(cfg: StationConfig, sink, amp, tone_s: float) -> list[Check]:
    from firmware.audio.player import Player

    a = cfg.audio
    if sink is None:
        if a.wav_out:
            from firmware.adapters.wav_sink import WavFileSink

            sink = WavFileSink(a.wav_out, rate=a.rate_hz, paced=False)
        else:
            from firmware.adapters.pyaudio_sink import PyAudioSink

            sink = PyAudioSink(a.device, rate=a.rate_hz, block_frames=a.rate_hz * a.block_ms // 1000,
                               buffer_blocks=a.buffer_blocks)
    try:
        sink.open()
    except Exception as e:
        return [Check("audio device", False, f"{a.device or 'default device'}: {e}"),
                Check("test tone", False, "no audio device")]
    checks = [Check("audio device", True, f"{a.device or 'default device'} open at {a.rate_hz} Hz")]
    done = threading.Event()
    result: list = []

    def emit(ev) -> None:
        if isinstance(ev, PlaybackEnded | PlaybackFailed):
            result.append(ev)
            done.set()

    player = Player(sink, amplifier=amp, emit=emit, block_ms=a.block_ms, rate=a.rate_hz)
    player.start()
    t0 = time.monotonic()
    player.play(Play("selftest", "test-tone", "selftest", ToneSpec("test", tone_s), TEST_TONE_DB, TEST_TONE_DB))
    finished = done.wait(tone_s + (cfg.gpio.amp_warmup_s if amp else 0) + 10)
    player.close()
    if not finished:
        checks.append(Check("test tone", False, "the player did not finish a 1 s tone within 10 s"))
    elif isinstance(result[0], PlaybackFailed):
        checks.append(Check("test tone", False, result[0].reason))
    else:
        detail = f"{result[0].played_s:.1f} s of 1 kHz at {TEST_TONE_DB:+.0f} dBFS in {time.monotonic() - t0:.1f} s"
        samples = getattr(sink, "samples", None)
        if callable(samples):
            s = samples()
            peak = 20 * np.log10(max(1e-9, float(np.max(np.abs(s))) / 32767)) if len(s) else -120
            ok = abs(peak - TEST_TONE_DB) < 1.5
            checks.append(Check("test tone", ok, f"{detail}; measured peak {peak:+.1f} dBFS"))
        else:
            checks.append(Check("test tone", result[0].completed, detail + " (listen to the horn)"))
    return checks


def _broker(cfg: StationConfig) -> Check:
    b = cfg.broker
    if not b.url:
        return Check("broker", None, "no broker configured (offline station)")
    from firmware.adapters.mqtt import parse_url

    addr = parse_url(b.url)
    try:
        with socket.create_connection((addr.host, addr.port), timeout=5):
            pass
    except OSError as e:
        return Check("broker", False, f"{addr.host}:{addr.port} unreachable: {e.strerror or e}")
    return _mqtt_connect(cfg, addr)


def _mqtt_connect(cfg: StationConfig, addr) -> Check:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    b = cfg.broker
    got = threading.Event()
    rc_box: list = []
    c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"{cfg.station.id}-selftest",
                    protocol=paho.MQTTv5)

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        rc_box.append(reason_code)
        got.set()

    c.on_connect = on_connect
    try:
        if addr.tls:
            c.tls_set(ca_certs=b.ca_file, certfile=b.cert_file, keyfile=b.key_file)
        c.connect(addr.host, addr.port, keepalive=10)
        c.loop_start()
        ok = got.wait(10)
    except Exception as e:
        return Check("broker", False, f"{b.url}: {e}")
    finally:
        try:
            c.disconnect()
            c.loop_stop()
        except Exception:
            pass
    if not ok:
        return Check("broker", False, f"{b.url}: no CONNACK within 10 s")
    rc = rc_box[0]
    if rc.is_failure:
        return Check("broker", False, f"{b.url}: refused: {rc}")
    return Check("broker", True, f"{b.url}: connected{' with TLS client certificate' if addr.tls else ''}")


def quick_selftest(app) -> str:
    """The silent subset for the remote `selftest` command: no tone over the village."""
    p = app.parts
    items = [_disk(app.cfg), _clock(app.cfg, app.clock)]
    items.append(Check("player", bool(p.player and p.player.alive), "player thread alive"))
    items.append(Check("link", bool(p.link and p.link.connected), "MQTT connected"))
    failed = [c for c in items if c.ok is False]
    summary = "; ".join(f"{c.name} {'ok' if c.ok else 'FAIL'}: {c.detail}" for c in items)
    return ("FAILED: " if failed else "passed: ") + summary
