"""Every message of the bad-input corpus is refused with its expected code: directly, and after crossing a real
mosquitto (the bytes a station receives are the bytes that were published)."""

from __future__ import annotations

import queue

import pytest

from district.mqtt import DistrictClient
from firmware.protocol.errors import CODES, Rejection
from firmware.protocol.verify import verify_alert
from tests.protocol import corpus
from tests.protocol.factory import COMMUNE_TOPIC, NOW, Keys, signed

KEYS = Keys()
CASES = corpus.build(KEYS)


def check(case: corpus.Case, raw: bytes):
    return verify_alert(
        raw,
        case.topic,
        trusted_keys=KEYS.trusted,
        seen=case.seen,
        now=case.now,
        clock_trusted=case.clock_trusted,
        last_trusted=case.last_trusted,
    )


def test_corpus_has_at_least_fifty_cases_with_known_codes():
    assert len(CASES) >= 50
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.code for c in CASES} <= set(CODES)
    assert set(CODES) <= {c.code for c in CASES}, "every rejection code is exercised"


def test_the_valid_message_the_corpus_is_built_from_is_accepted():
    result = verify_alert(
        signed(KEYS.district),
        COMMUNE_TOPIC,
        trusted_keys=KEYS.trusted,
        seen=set(),
        now=NOW,
        clock_trusted=True,
    )
    assert not isinstance(result, Rejection), result


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_message_is_rejected_with_its_code(case):
    result = check(case, case.raw)
    assert isinstance(result, Rejection), f"{case.name} was accepted"
    assert result.code == case.code, f"{case.name}: {result}"
    assert result.reason


def test_whole_corpus_rejected_after_crossing_a_real_broker(broker):
    received: queue.Queue = queue.Queue()
    with DistrictClient.from_url(broker.url) as station, DistrictClient.from_url(broker.url) as sender:
        station.subscribe(["loa/#"], lambda m: received.put(m))
        for case in CASES:
            sender.publish(case.topic, case.raw, qos=1)
            msg = received.get(timeout=5)
            assert msg.topic == case.topic
            assert msg.payload == case.raw, f"{case.name}: bytes changed on the wire"
            result = check(case, msg.payload)
            assert isinstance(result, Rejection) and result.code == case.code, f"{case.name}: {result}"
