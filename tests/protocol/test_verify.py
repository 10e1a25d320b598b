"""What a station accepts: the positive side of verification (the corpus covers the refusals)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from firmware.core.alerts import Alert
from firmware.protocol.errors import Rejection
from firmware.protocol.verify import verify_alert
from tests.protocol.factory import COMMUNE_TOPIC, DISTRICT_TOPIC, NOW, STATION_TOPIC, signed


def verify(keys, raw, topic=COMMUNE_TOPIC, **ctx):
    args = dict(trusted_keys=keys.trusted, seen=set(), now=NOW, clock_trusted=True, last_trusted=None)
    args.update(ctx)
    return verify_alert(raw, topic, **args)


def test_a_valid_alert_becomes_the_core_alert(keys):
    audio = {"url": "https://loa.example/content/" + "ab" * 32 + ".ogg", "sha256": "ab" * 32}
    alert = verify(keys, signed(keys.district, audio=audio, repeat=2, tone=False))
    assert isinstance(alert, Alert)
    assert alert.id == "hv-2026-0001"
    assert alert.status == "exercise" and alert.msg_type == "alert" and alert.severity == "severe"
    assert alert.issued == NOW and alert.expires == NOW + timedelta(minutes=30)
    assert alert.audio_url == audio["url"] and alert.audio_sha256 == audio["sha256"]
    assert alert.repeat == 2 and alert.tone is False
    assert alert.text.startswith("Diễn tập")


@pytest.mark.parametrize(
    ("target", "topic"),
    [
        ("hoa-vang", DISTRICT_TOPIC),
        ("hoa-vang/hoa-bac", COMMUNE_TOPIC),
        ("hoa-vang/hoa-bac/tram-01", STATION_TOPIC),
    ],
)
def test_an_alert_is_accepted_on_the_topic_of_its_own_scope(keys, target, topic):
    assert isinstance(verify(keys, signed(keys.district, target=target), topic), Alert)


def test_cancel_and_update_of_an_unknown_alert_are_accepted_the_core_decides(keys):
    cancel = verify(
        keys, signed(keys.district, id="c1", msg_type="cancel", references=["never-seen"], text="")
    )
    update = verify(keys, signed(keys.district, id="u1", msg_type="update", references=["never-seen"]))
    assert isinstance(cancel, Alert) and cancel.references == ("never-seen",)
    assert isinstance(update, Alert) and update.msg_type == "update"


def test_issued_within_the_allowed_skew_is_accepted_beyond_is_not(keys):
    raw = signed(keys.district)
    assert isinstance(verify(keys, raw, now=NOW - timedelta(seconds=300)), Alert)
    assert verify(keys, raw, now=NOW - timedelta(seconds=301)).code == "future"
    assert isinstance(verify(keys, raw, now=NOW - timedelta(seconds=30), skew_s=60), Alert)


def test_untrusted_clock_accepts_alerts_issued_after_the_last_trusted_time(keys):
    raw = signed(keys.district)
    # A Pi after a power cut: the clock says last week, but the alert is newer than what we last trusted.
    stale_now = NOW - timedelta(days=7)
    ok = verify(keys, raw, now=stale_now, clock_trusted=False, last_trusted=NOW - timedelta(hours=1))
    assert isinstance(ok, Alert)
    late = verify(keys, raw, now=stale_now, clock_trusted=False, last_trusted=NOW + timedelta(minutes=31))
    assert isinstance(late, Rejection) and late.code == "clock-untrusted"


def test_untrusted_clock_still_refuses_alerts_expired_by_its_own_reading(keys):
    raw = signed(keys.district)
    before = NOW - timedelta(minutes=1)
    result = verify(keys, raw, now=NOW + timedelta(hours=2), clock_trusted=False, last_trusted=before)
    assert isinstance(result, Rejection) and result.code == "expired"
    # ... but never calls an alert "future" on an untrusted clock: a stale clock is behind.
    assert isinstance(
        verify(keys, raw, now=NOW - timedelta(days=7), clock_trusted=False, last_trusted=before), Alert
    )


def test_rejection_after_the_signature_carries_the_trusted_alert_id(keys):
    result = verify(keys, signed(keys.district), seen={"hv-2026-0001"})
    assert result == Rejection("replayed", "alert hv-2026-0001 was already received", "hv-2026-0001", True)


def test_wrong_target_reason_says_both_scopes(keys):
    result = verify(keys, signed(keys.district, target="hoa-vang"), STATION_TOPIC)
    assert result.code == "wrong-target"
    assert "district hoa-vang" in result.reason and STATION_TOPIC in result.reason
