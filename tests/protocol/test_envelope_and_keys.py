from __future__ import annotations

import json
import os
import stat

import pytest

from firmware.protocol.b64 import b64url_decode, b64url_encode
from firmware.protocol.envelope import open_envelope, seal
from firmware.protocol.errors import Rejected
from firmware.protocol.keys import (
    KeyFileError,
    load_signing_key,
    load_trust_anchors,
    make_kid,
    public_key_pem,
    signing_key_pem,
    trust_anchor_json,
    write_new_file,
)
from firmware.protocol.topics import Scope


@pytest.mark.parametrize("data", [b"", b"f", b"fo", b"foo", bytes(range(256)), "Lũ quét".encode()])
def test_base64url_round_trips_without_padding(data):
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data


@pytest.mark.parametrize("text", ["Zm9v=", "Zm+v", "Zm/v", "Z", "Zm9v\n", "Zh", "Zm9vYh"])
def test_base64url_refuses_padding_other_alphabets_and_non_canonical_forms(text):
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_seal_then_open_returns_the_exact_payload_bytes(keys):
    payload = '{"z":1,  "a":"Lũ"}'.encode()  # odd spacing and order survive: bytes are signed, not JSON
    assert open_envelope(seal(payload, keys.district), keys.trusted) == payload


def test_open_envelope_serves_schedules_and_commands_too(keys):
    raw = seal(b'{"kind":"selftest"}', keys.district)
    assert (
        open_envelope(raw, keys.trusted, scope=Scope("hoa-vang", "hoa-bac", "tram-01"))
        == b'{"kind":"selftest"}'
    )


def test_a_key_restricted_to_another_district_cannot_sign_here(keys):
    raw = seal(b"{}", keys.other_district)
    with pytest.raises(Rejected) as e:
        open_envelope(raw, keys.trusted, scope=Scope("hoa-vang"))
    assert e.value.code == "key-not-for-scope"
    assert open_envelope(raw, keys.trusted, scope=Scope("dai-loc")) == b"{}"


def test_bad_signature_reason_names_the_key(keys):
    env = json.loads(seal(b"{}", keys.district))
    env["payload"] = b64url_encode(b"{ }")
    with pytest.raises(Rejected) as e:
        open_envelope(json.dumps(env).encode(), keys.trusted)
    assert e.value.rejection.reason == f"signature does not verify with key {keys.district.kid}"


def test_signing_key_file_is_private_and_loads_back(keys, tmp_path):
    path = tmp_path / f"{keys.district.kid}.key"
    write_new_file(path, signing_key_pem(keys.district), 0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = load_signing_key(path)
    assert loaded.kid == keys.district.kid
    assert loaded.sign(b"x") == keys.district.sign(b"x")  # Ed25519 is deterministic
    with pytest.raises(FileExistsError):
        write_new_file(path, b"other", 0o600)


def test_trust_anchors_load_from_json_and_from_pem(keys, tmp_path):
    (tmp_path / "a.json").write_bytes(trust_anchor_json([keys.district.anchor()]))
    (tmp_path / "b.pub").write_bytes(public_key_pem(keys.other_district.anchor()))
    anchors = load_trust_anchors(tmp_path / "a.json", tmp_path / "b.pub")
    assert set(anchors) == {keys.district.kid, keys.other_district.kid}
    assert anchors[keys.district.kid].district == "hoa-vang"
    assert anchors[keys.other_district.kid].district is None  # a PEM anchor is not restricted
    assert make_kid(keys.district.private_key.public_key()).startswith("ed25519-")


def test_trust_anchor_with_a_kid_that_does_not_match_its_key_is_refused(keys, tmp_path):
    doc = json.loads(trust_anchor_json([keys.district.anchor()]))
    doc["keys"][0]["kid"] = keys.other_district.kid
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="does not match"):
        load_trust_anchors(tmp_path / "a.json")


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"v": 2, "keys": []}',
        b'{"v":1,"keys":[{"kid":"x","alg":"RSA","public_key":"AA"}]}',
        b"[]",
    ],
)
def test_broken_trust_anchor_files_are_refused_with_the_file_name(tmp_path, content):
    (tmp_path / "t.json").write_bytes(content)
    with pytest.raises(KeyFileError, match="t.json"):
        load_trust_anchors(tmp_path / "t.json")
