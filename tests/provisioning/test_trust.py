"""Trust anchors as provisioned: a station acts only on alerts signed by its own district's keys, across a
signing-key rotation.

Verification goes through the station's own code (`firmware.protocol.verify.verify_alert`) when it is
importable; otherwise the Ed25519 signature is checked against the provisioned anchors directly."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from provisioning import signing
from tests.provisioning.conftest import cli

try:
    from firmware.protocol import envelope as protocol_envelope
    from firmware.protocol import keys as protocol_keys
    from firmware.protocol.alert import new_alert_payload
    from firmware.protocol.verify import verify_alert
except ImportError:  # the protocol helper has not landed: direct signature checks below
    verify_alert = None

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TOPIC = "loa/v1/lx/c1/s1/alert"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _active_key(district_dir: Path):
    meta = json.loads((district_dir / "district.json").read_text())
    kid = next(k["kid"] for k in meta["signing_keys"] if k["state"] == "active")
    return kid, signing.load_private(district_dir / f"signing/{kid}.key")


def _sealed_alert(district_dir: Path, alert_id: str) -> bytes:
    kid, key = _active_key(district_dir)
    if verify_alert is None:
        payload = json.dumps({"id": alert_id, "target": "lx/c1/s1"}).encode()
        return json.dumps({"v": 1, "kid": kid, "payload": _b64(payload), "sig": _b64(key.sign(payload))}).encode()
    payload = new_alert_payload(
        id=alert_id, issued=NOW, expires=NOW + timedelta(hours=1), status="test", target="lx/c1/s1",
        headline="Diễn tập", text="Đây là tin thử nghiệm.",
    )
    return protocol_envelope.seal(payload.to_bytes(), protocol_keys.SigningKey(kid, key))


def _station_accepts(district_dir: Path, raw: bytes) -> tuple[bool, str]:
    anchors = sorted((district_dir / "stations/s1/trust").glob("*.pub"))
    if verify_alert is None:
        env = json.loads(raw)
        pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
        for path in anchors:
            if signing.key_id(load_pem_public_key(path.read_bytes())) != env["kid"]:
                continue
            try:
                load_pem_public_key(path.read_bytes()).verify(
                    base64.urlsafe_b64decode(pad(env["sig"])), base64.urlsafe_b64decode(pad(env["payload"]))
                )
                return True, ""
            except InvalidSignature:
                return False, "bad-signature"
        return False, "unknown-key"
    trusted = protocol_keys.load_trust_anchors(*anchors)
    result = verify_alert(raw, TOPIC, trusted_keys=trusted, seen=set(), now=NOW, clock_trusted=True)
    code = getattr(result, "code", "")
    return not code, code


@pytest.fixture
def station(district_dir):
    assert cli("station", "--district-dir", district_dir, "--commune", "c1", "--station", "s1") == 0
    return district_dir


def test_alert_signed_by_the_district_is_accepted(station):
    assert _station_accepts(station, _sealed_alert(station, "a-1")) == (True, "")


def test_alert_signed_by_another_districts_key_is_refused(station, tmp_path):
    # an attacker sets up a "district" with the very same id and signs with its own key
    other = tmp_path / "impostor"
    assert cli("init-district", "--district", "lx", "--out", other) == 0
    accepted, code = _station_accepts(station, _sealed_alert(other, "a-2"))
    assert not accepted and code == "unknown-key", code


def test_rotation_keeps_alerts_verifying_through_the_overlap(station):
    old_alert = _sealed_alert(station, "a-old")
    assert cli("rotate-signing-key", "--district-dir", station) == 0  # add: both trusted, old still signs
    assert len(list((station / "stations/s1/trust").glob("*.pub"))) == 2
    assert _station_accepts(station, old_alert)[0]
    assert cli("rotate-signing-key", "--district-dir", station, "--activate") == 0
    new_alert = _sealed_alert(station, "a-new")
    assert _station_accepts(station, new_alert)[0] and _station_accepts(station, old_alert)[0]
    assert cli("rotate-signing-key", "--district-dir", station, "--retire") == 0
    assert _station_accepts(station, new_alert)[0]
    assert not _station_accepts(station, old_alert)[0]  # the retired key is no longer trusted


def test_rotation_steps_out_of_order_are_refused(station, capsys):
    assert cli("rotate-signing-key", "--district-dir", station, "--activate") == 1
    assert "no new key to activate" in capsys.readouterr().err
    assert cli("rotate-signing-key", "--district-dir", station, "--retire") == 1
    assert cli("rotate-signing-key", "--district-dir", station) == 0
    assert cli("rotate-signing-key", "--district-dir", station) == 1
    assert "already waiting" in capsys.readouterr().err
