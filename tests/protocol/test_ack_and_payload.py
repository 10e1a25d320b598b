from __future__ import annotations

import json
from datetime import timedelta

import pytest

from firmware.core.commands import Ack
from firmware.protocol.ack import ack_bytes, ack_message, parse_ack
from firmware.protocol.alert import new_alert_payload, parse_alert_payload
from firmware.protocol.errors import Rejected
from firmware.protocol.topics import Scope
from tests.protocol.factory import NOW

STATION = Scope("hoa-vang", "hoa-bac", "tram-01")


def test_ack_from_a_core_command_goes_to_the_station_ack_topic():
    topic, payload = ack_message(
        Ack("a1", "rejected", "signature does not verify with key k"), station=STATION, at=NOW
    )
    assert topic == "loa/v1/hoa-vang/hoa-bac/tram-01/ack"
    assert json.loads(payload) == {
        "ref": "a1",
        "state": "rejected",
        "reason": "signature does not verify with key k",
        "at": "2026-11-26T11:00:00+07:00",
        "station": "hoa-vang/hoa-bac/tram-01",
    }
    assert parse_ack(payload).state == "rejected"


def test_ack_of_an_unreadable_message_has_an_empty_ref_and_a_bounded_reason():
    payload = ack_bytes(None, "rejected", station=STATION, at=NOW, reason="x" * 5000)
    doc = json.loads(payload)
    assert doc["ref"] == "" and len(doc["reason"]) == 500


@pytest.mark.parametrize(
    "raw",
    [
        b"{}",
        b'{"ref":"a","state":"maybe","at":"2026-11-26T11:00:00+07:00","station":"d/c/s"}',
        b'{"ref":"a","state":"done","at":"2026-11-26T11:00:00+07:00","station":"d/c"}',
        b"nope",
    ],
)
def test_malformed_acks_are_refused(raw):
    with pytest.raises(Rejected):
        parse_ack(raw)


def test_payload_bytes_round_trip_in_utf8():
    p = new_alert_payload(
        id="a1",
        issued=NOW,
        expires=NOW + timedelta(minutes=5),
        status="test",
        target="hoa-vang",
        text="Bão số 9",
    )
    raw = p.to_bytes()
    assert "Bão số 9".encode() in raw  # not \\u-escaped: smaller, and readable in a hex dump
    assert parse_alert_payload(raw) == p
