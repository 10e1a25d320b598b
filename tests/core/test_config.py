import json
from pathlib import Path

import pytest

from firmware.cli import main as station_main
from firmware.config import ConfigError, load_config, parse_config_text

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "station.example.toml"

MINIMAL = """
[station]
district = "hoa-vang"
commune = "hoa-bac"
id = "thon-1"
[[policy.windows]]
start = "05:30"
end = "07:00"
"""


def test_example_config_is_valid():
    cfg = load_config(EXAMPLE)
    assert cfg.station.scope == "hoa-vang/hoa-bac/thon-1"
    assert cfg.station.timezone == "Asia/Ho_Chi_Minh"


def test_minimal_config_gets_safe_defaults():
    cfg = parse_config_text(MINIMAL)
    assert cfg.gpio.amp_warmup_s == 1.5 and cfg.gpio.amp_hang_s == 30
    assert cfg.audio.block_ms == 20 and cfg.policy.hold_on_untrusted_clock


BROKEN = """
[station]
district = "Hoa Vang"
commune = "hoa-bac"
timezone = "Asia/Saigon2"
[policy]
max_sesions_per_day = 2
[[policy.windows]]
start = "7h"
end = "25:00"
cap_db = 6
[audio]
block_ms = 1
[broker]
url = "http://broker"
"""


def test_every_problem_is_reported_at_once_with_its_key_path():
    with pytest.raises(ConfigError) as e:
        parse_config_text(BROKEN, "station.toml")
    problems = "\n".join(e.value.problems)
    for where in [
        "station.district",
        "station.id: missing",
        "station.timezone",
        "policy.max_sesions_per_day: unknown key (did you mean \"max_sessions_per_day\"?)",
        "policy.windows[0].start",
        "policy.windows[0].end",
        "policy.windows[0].cap_db",
        "audio.block_ms",
        "broker.url",
    ]:
        assert where in problems, where
    assert 'did you mean "Asia/Saigon"' in problems or "Asia/Saigon2" in problems
    assert len(e.value.problems) == 9


def test_malformed_toml_is_one_clear_problem():
    with pytest.raises(ConfigError) as e:
        parse_config_text("[station\nid=", "x.toml")
    assert e.value.problems[0].startswith("not valid TOML")


def test_check_config_cli_exit_codes(tmp_path, capsys):
    assert station_main(["check-config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "05:30-07:00" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN)
    assert station_main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "9 problem(s)" in err and "policy.windows[0].start" in err
    assert station_main(["check-config", str(tmp_path / "missing.toml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    assert station_main(["check-config", str(tmp_path / "bin.toml")]) == 1
    assert "UTF-8" in capsys.readouterr().err


def test_config_schema_is_json_schema(capsys):
    assert station_main(["config-schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert "policy" in schema["properties"]
