"""`station`: key, certificate, config and trust anchors; idempotent; `--rotate` re-issues and revokes."""

from __future__ import annotations

import json
import stat

import pytest
from cryptography import x509

from provisioning.fsutil import tree_snapshot
from tests.provisioning.conftest import cli


def _station(district_dir, *extra, commune="c1", station="s1"):
    return cli("station", "--district-dir", district_dir, "--commune", commune, f"--station={station}", *extra)


def test_station_gets_a_client_certificate_named_by_its_id(district_dir):
    assert _station(district_dir, "--name", "Loa thôn 1", "--preset", "relay-board-gpio17") == 0
    s = district_dir / "stations/s1"
    cert = x509.load_pem_x509_certificate((s / "tls/station.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "s1"
    ca = x509.load_pem_x509_certificate((district_dir / "ca/ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert stat.S_IMODE((s / "tls/station.key").stat().st_mode) == 0o600


def test_station_config_is_accepted_by_the_firmware_and_points_at_the_installed_files(district_dir):
    config = pytest.importorskip("firmware.config")
    assert _station(district_dir, "--name", "Loa thôn 1", "--location", "Nhà văn hóa", "--preset",
                    "relay-board-gpio17", "--audio-device", "USB Audio") == 0
    text = (district_dir / "stations/s1/station.toml").read_text()
    cfg = config.parse_config_text(text, "station.toml")
    assert (cfg.station.district, cfg.station.commune, cfg.station.id) == ("lx", "c1", "s1")
    assert cfg.station.name == "Loa thôn 1" and cfg.station.location == "Nhà văn hóa"
    assert cfg.gpio.amp_pin == 17 and cfg.gpio.amp_active_high is False  # the preset
    assert cfg.audio.device == "USB Audio"
    assert cfg.broker.url == "mqtts://localhost:8883"
    assert cfg.broker.cert_file == "/etc/loa/tls/station.crt" and cfg.broker.key_file == "/etc/loa/tls/station.key"
    kid = json.loads((district_dir / "district.json").read_text())["signing_keys"][0]["kid"]
    assert cfg.trust.key_files == (f"/etc/loa/trust/{kid}.pub",)
    assert (district_dir / f"stations/s1/trust/{kid}.pub").read_bytes() == (
        district_dir / f"signing/{kid}.pub"
    ).read_bytes()


def test_running_it_again_changes_nothing(district_dir, capsys):
    assert _station(district_dir) == 0
    before = tree_snapshot(district_dir)
    assert _station(district_dir) == 0
    assert "unchanged" in capsys.readouterr().out
    assert tree_snapshot(district_dir) == before


def test_existing_station_with_other_settings_needs_rotate_and_nothing_is_written(district_dir, capsys):
    assert _station(district_dir) == 0
    before = tree_snapshot(district_dir)
    assert _station(district_dir, commune="c2") == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--rotate" in err and "'c1' -> 'c2'" in err
    assert tree_snapshot(district_dir) == before


def test_rotate_issues_a_new_key_and_revokes_the_old_certificate(district_dir):
    assert _station(district_dir) == 0
    old = json.loads((district_dir / "stations/s1/station.json").read_text())
    old_key = (district_dir / "stations/s1/tls/station.key").read_bytes()
    assert _station(district_dir, "--rotate", commune="c2") == 0
    new = json.loads((district_dir / "stations/s1/station.json").read_text())
    assert new["serial"] != old["serial"] and new["commune"] == "c2"
    assert (district_dir / "stations/s1/tls/station.key").read_bytes() != old_key
    crl = x509.load_pem_x509_crl((district_dir / "ca/crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(old["serial"])) is not None
    assert crl.get_revoked_certificate_by_serial_number(int(new["serial"])) is None


@pytest.mark.parametrize(
    "extra, station, message",
    [
        ((), "S1", "lowercase"),
        ((), "-s1", "lowercase"),
        ((), "s" * 41, "longer than"),
        (("--preset", "pi-hat-v9"), "s1", "unknown preset"),
    ],
)
def test_invalid_station_input_is_a_usage_error(district_dir, capsys, extra, station, message):
    before = tree_snapshot(district_dir)
    with pytest.raises(SystemExit) as e:
        _station(district_dir, *extra, station=station)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert tree_snapshot(district_dir) == before


def test_a_district_tool_account_name_cannot_be_taken_by_a_station(district_dir):
    # accounts are `collector.lx` / `sender.lx`: the dot is not allowed in a station id
    with pytest.raises(SystemExit):
        _station(district_dir, station="collector.lx")


def test_revoke_unknown_station_is_an_error(district_dir, capsys):
    assert cli("revoke", "nope", "--district-dir", district_dir) == 1
    assert "not provisioned" in capsys.readouterr().err


def test_list_shows_stations_revocations_accounts_and_keys(district_dir, capsys):
    assert _station(district_dir, "--name", "Loa thôn 1") == 0
    assert _station(district_dir, station="s2") == 0
    assert cli("revoke", "s2", "--district-dir", district_dir) == 0
    capsys.readouterr()
    assert cli("list", "--district-dir", district_dir) == 0
    out = capsys.readouterr().out
    assert "stations (1):" in out and "c1/s1  preset pi-hat-v1" in out and "Loa thôn 1" in out
    assert "revoked certificates (1):" in out and "  s2  serial" in out
    assert "collector.lx (collector)" in out and "sender.lx (sender)" in out
    assert "(active)" in out


def test_the_district_policy_bounds_go_into_the_station_config(district_dir, capsys):
    config = pytest.importorskip("firmware.config")
    assert _station(district_dir) == 0  # init-district's policy_bounds.toml is all comments: no bounds
    cfg = config.parse_config_text((district_dir / "stations/s1/station.toml").read_text())
    assert cfg.policy_bounds.empty
    (district_dir / "policy_bounds.toml").write_text(
        'earliest_start = "05:00"\nlatest_end = "22:00"\nmax_gain_db = -6.0\n')
    assert _station(district_dir, station="s2") == 0
    cfg = config.parse_config_text((district_dir / "stations/s2/station.toml").read_text())
    assert cfg.policy_bounds.describe() == "earliest start 05:00, latest end 22:00, loudest cap -6 dB"
    # the district's default policy (05:30-07:00 at -6 dB) does not fit a stricter bound: nothing is written
    (district_dir / "policy_bounds.toml").write_text('earliest_start = "06:00"\n')
    assert _station(district_dir, station="s3") == 1
    assert "window 05:30-07:00 starts before the earliest start 06:00 set by the district" in capsys.readouterr().err
    assert not (district_dir / "stations/s3").exists()
