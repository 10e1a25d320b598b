import json
import struct
from pathlib import Path

from simulator.cli import main as sim_main

CONFIG = Path(__file__).resolve().parents[2] / "config"
EX_CFG = str(CONFIG / "station.example.toml")
EX_SCHED = str(CONFIG / "schedule.example.json")


def test_day_prints_the_timeline_and_a_summary(capsys):
    assert sim_main(["day", "--config", EX_CFG, "--schedule", EX_SCHED, "--from", "2026-12-21", "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert "2026-12-21 (Mon)" in out and "2026-12-27 (Sun)" in out
    assert "inserted at 05:46 after \"tin-sang\"" in out  # Monday's priority bulletin
    assert "tiep-song-tinh" in out and "-12.0 dB" in out
    assert "sessions  minutes  max gain" in out


def test_day_json_segments_have_the_documented_keys(capsys):
    assert sim_main(["day", "--config", EX_CFG, "--schedule", EX_SCHED, "--from", "2026-12-02", "--json"]) == 0
    segs = json.loads(capsys.readouterr().out)
    assert segs and set(segs[0]) == {"start", "end", "programme", "level", "gain_db", "reason"}
    khuyen = [s for s in segs if s["programme"] == "khuyen-nong"]
    assert khuyen[0]["start"].startswith("2026-12-02T17:05:00+07:00") and khuyen[0]["gain_db"] == -12.0


def test_day_plot_writes_a_png(tmp_path):
    out = tmp_path / "week.png"
    assert sim_main(["day", "--config", EX_CFG, "--schedule", EX_SCHED, "--from", "2026-12-21", "--days", "7",
                     "--plot", str(out)]) == 0
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert width > 800 and height > 300


def test_bad_inputs_are_reported_together_and_exit_1(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[station]\ndistrict="x"\ncommune="y"\nid="Z"\n[[policy.windows]]\nstart="05:00"\nend="06:00"\n')
    sched = tmp_path / "s.json"
    sched.write_text('{"version": 1, "programmes": [{"id": "a"}]}')
    assert sim_main(["day", "--config", str(cfg), "--schedule", str(sched), "--from", "2026-12-01"]) == 1
    err = capsys.readouterr().err
    assert "station.id" in err and 'programmes[0] ("a").title: missing' in err


def test_schedule_for_another_station_is_refused(tmp_path, capsys):
    doc = json.loads(Path(EX_SCHED).read_text())
    doc["target"] = "hoa-vang/hoa-ninh"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    assert sim_main(["day", "--config", EX_CFG, "--schedule", str(other), "--from", "2026-12-01"]) == 1
    assert 'target "hoa-vang/hoa-ninh" is not this station' in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys):
    import pytest

    for bad in (["--from", "2026-13-01"], ["--from", "2026-12-01", "--days", "0"]):
        with pytest.raises(SystemExit) as e:
            sim_main(["day", "--config", EX_CFG, "--schedule", EX_SCHED, *bad])
        assert e.value.code == 2
    assert "is not a date" in capsys.readouterr().err


def test_a_late_boot_and_an_untrusted_clock_show_in_the_timeline(capsys):
    base = ["day", "--config", EX_CFG, "--schedule", EX_SCHED, "--from", "2026-12-21"]
    assert sim_main([*base, "--boot", "05:35"]) == 0  # power back in the middle of the morning session
    out = capsys.readouterr().out
    assert "nhac-hieu-sang         normal        -      missed: station was off" in out
    assert "05:35:00-05:46:00  tin-sang" in out and "joined late by 240 s (station was off)" in out
    # on at 05:20 with no NTP until 05:33: the 05:30 programme is not played on an untrusted clock
    assert sim_main([*base, "--boot", "05:20", "--ntp-at", "05:33", "--json"]) == 0
    segs = {s["programme"]: s for s in json.loads(capsys.readouterr().out) if s["start"].startswith("2026-12-21T05")}
    assert "held: clock untrusted" in segs["nhac-hieu-sang"]["reason"]
    assert segs["tin-sang"]["start"].startswith("2026-12-21T05:33:00")  # joined once NTP synced


def test_bad_boot_and_ntp_times_exit_2(capsys):
    import pytest

    base = ["day", "--config", EX_CFG, "--schedule", EX_SCHED, "--from", "2026-12-21"]
    for bad, says in ((["--boot", "7h"], '--boot "7h" is not a time of day'),
                      (["--ntp-at", "24:00"], '--ntp-at "24:00" is not a time of day'),
                      (["--boot", "06:00", "--ntp-at", "05:00"], "--ntp-at 05:00 is before --boot 06:00")):
        with pytest.raises(SystemExit) as e:
            sim_main([*base, *bad])
        assert e.value.code == 2 and says in capsys.readouterr().err
