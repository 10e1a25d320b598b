"""`loa-station selftest` on simulated parts: passes on a good station, names what is broken otherwise."""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory

from firmware.selftest import format_table, run_selftest
from simulator.cli import main as sim_main
from simulator.clock import SteppableClock
from simulator.sinks import RecordingSink
from tests.scenarios.harness import TZ, config, write_key


def test_selftest_passes_in_the_simulator(tmp_path, capsys):
    write_key(tmp_path)
    cfg_path = tmp_path / "station.toml"
    cfg_path.write_text(f"""
[station]
district = "hv"
commune = "hb"
id = "s1"
[[policy.windows]]
start = "05:30"
end = "07:00"
[gpio]
amp_warmup_s = 0.2
[trust]
key_files = ["{tmp_path / 'trust.json'}"]
[paths]
state_dir = "{tmp_path / 'state'}"
""")
    assert sim_main(["station", "--config", str(cfg_path), "--selftest", "--state-dir", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    for name in ("disk", "clock", "trust anchors", "amplifier", "led", "audio device", "test tone"):
        assert f"\n{name}" in "\n" + out, name
    assert "measured peak -18" in out or "measured peak -1" in out  # -12 dB of a -6 dBFS test tone
    assert "0 failed" in out and "broker" in out and "skip" in out


def test_selftest_names_each_failure(tmp_path):
    write_key(tmp_path)
    cfg = config(tmp_path, broker_url="mqtt://127.0.0.1:9", key_files=("missing.json",))
    sink = RecordingSink(cfg.audio.rate_hz)
    sink.unplug()  # the USB sound card is not there
    clock = SteppableClock(TZ, synced=False)  # no NTP, and no trusted time remembered
    checks = {c.name: c for c in run_selftest(cfg, sink=sink, pin_factory=MockFactory(), clock=clock)}
    assert checks["audio device"].ok is False and checks["test tone"].ok is False
    assert checks["clock"].ok is False and "NOT synchronised" in checks["clock"].detail
    assert checks["trust anchors"].ok is False and "missing.json" in checks["trust anchors"].detail
    assert checks["broker"].ok is False and "127.0.0.1:9" in checks["broker"].detail
    assert checks["amplifier"].ok and checks["disk"].ok
    table = format_table(list(checks.values()))
    assert "FAIL" in table and "failed" in table.splitlines()[-1]
