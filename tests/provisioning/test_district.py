"""`init-district`: the district's root of trust, written completely or not at all."""

from __future__ import annotations

import ipaddress
import json
import stat

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from provisioning.fsutil import tree_snapshot
from tests.provisioning.conftest import cli


def _mode(p) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_init_district_writes_ca_signing_key_broker_and_tool_certificates(tmp_path, capsys):
    d = tmp_path / "d"
    assert cli("init-district", "--district", "hoa-vang", "--out", d) == 0
    meta = json.loads((d / "district.json").read_text())
    assert meta["kind"] == "loa-district" and meta["district"] == "hoa-vang"
    assert [k["state"] for k in meta["signing_keys"]] == ["active"]
    private = [p for p in d.rglob("*.key")]
    assert {p.relative_to(d).as_posix() for p in private} == {
        "ca/ca.key", "broker/server.key", "accounts/collector.key", "accounts/sender.key",
        f"signing/{meta['signing_keys'][0]['kid']}.key",
    }
    assert all(_mode(p) == 0o600 for p in private)
    out = capsys.readouterr()
    assert "PRIVATE KEY" not in out.out + out.err  # never printed
    ca = x509.load_pem_x509_certificate((d / "ca/ca.crt").read_bytes())
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp256r1"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_broker_certificate_names_default_to_localhost_and_follow_broker_host(tmp_path):
    def sans(d):
        cert = x509.load_pem_x509_certificate((d / "broker/server.crt").read_bytes())
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return set(ext.get_values_for_type(x509.DNSName)), set(ext.get_values_for_type(x509.IPAddress))

    assert cli("init-district", "--district", "a", "--out", tmp_path / "a") == 0
    assert sans(tmp_path / "a") == ({"localhost"}, {ipaddress.ip_address("127.0.0.1")})
    assert cli("init-district", "--district", "b", "--out", tmp_path / "b", "--broker-host", "mqtt.hv.example",
               "--broker-host", "10.8.0.1") == 0
    assert sans(tmp_path / "b") == ({"mqtt.hv.example"}, {ipaddress.ip_address("10.8.0.1")})


def test_init_district_refuses_a_non_empty_directory_and_leaves_it_alone(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    before = tree_snapshot(d)
    assert cli("init-district", "--district", "lx", "--out", d) == 1
    assert "not empty" in capsys.readouterr().err
    assert tree_snapshot(d) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no leftover staging directory


def test_invalid_district_id_is_a_usage_error(tmp_path):
    import pytest

    with pytest.raises(SystemExit) as e:
        cli("init-district", "--district", "Hoa Vang", "--out", tmp_path / "d")
    assert e.value.code == 2
    assert not (tmp_path / "d").exists()


def test_commands_refuse_a_directory_that_is_not_a_district(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    for args in (
        ("station", "--commune", "c", "--station", "s"),
        ("broker-config", "--out", tmp_path / "b"),
        ("revoke", "s"),
        ("rotate-signing-key",),
        ("bundle", "--station", "s", "--out", tmp_path / "o", "--no-ssh-key"),
    ):
        assert cli(*args, "--district-dir", tmp_path / "x") == 1, args
        assert "not a loa district directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]
    assert list((tmp_path / "x").iterdir()) == []


def test_broker_host_must_be_a_name_or_an_address(tmp_path, capsys):
    import pytest

    for bad in ("mqtt server", "-x.example", "http://mqtt.example"):
        with pytest.raises(SystemExit) as e:
            cli("init-district", "--district", "lx", "--out", tmp_path / "d", f"--broker-host={bad}")
        assert e.value.code == 2
        assert "neither an IP address nor a DNS name" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
