"""Station-side verification of an inbound alert: pure (no clock reads, no I/O), so it is tested exhaustively.

    result = verify_alert(raw, topic, trusted_keys=keys, seen=replay_cache, now=wall_now,
                          clock_trusted=synced, last_trusted=last_trusted_time)
    if isinstance(result, Rejection): ack "rejected" with result.reason
    else: replay_cache.remember(result.id, result.expires, wall_now); hand `result` (a core Alert) to the core

Checks, in order (the first failure is returned): topic, size, JSON, envelope shape, version, trusted key id,
base64url, signature, key scope, payload model, target == topic scope, replay, clock trust, expiry, future.
"""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime, timedelta

from firmware.core.alerts import Alert
from firmware.protocol.alert import parse_alert_payload
from firmware.protocol.envelope import MAX_MESSAGE_BYTES, open_verified
from firmware.protocol.errors import Rejected, Rejection
from firmware.protocol.keys import TrustedKeys
from firmware.protocol.topics import TopicError, parse_topic

DEFAULT_SKEW_S = 300.0


def verify_alert(
    raw: bytes,
    topic: str,
    *,
    trusted_keys: TrustedKeys,
    seen: Container[str],
    now: datetime,
    clock_trusted: bool,
    last_trusted: datetime | None = None,
    skew_s: float = DEFAULT_SKEW_S,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> Alert | Rejection:
    """Return the verified Alert, or the Rejection of the first check that failed. Never raises on bad input.

    `seen`: ids already accepted (a `ReplayCache`); this function does not record the id, the caller does once
    it accepts the alert. `now`: the station's aware wall time. When `clock_trusted` is False, `now` may be
    anything: only alerts issued after `last_trusted` (the last time the clock was known good) are accepted,
    the future check is skipped (a stale clock is behind) and expiry is judged against max(now, last_trusted).
    """
    try:
        return _verify(raw, topic, trusted_keys, seen, now, clock_trusted, last_trusted, skew_s, max_bytes)
    except Rejected as e:
        return e.rejection


def _verify(raw, topic, trusted_keys, seen, now, clock_trusted, last_trusted, skew_s, max_bytes) -> Alert:
    try:
        parsed = parse_topic(topic)
    except TopicError as e:
        raise Rejected("bad-topic", str(e)) from None
    if parsed.kind != "alert":
        raise Rejected("bad-topic", f"topic {topic} is a {parsed.kind} topic, not an alert topic")
    payload_bytes, anchor = open_verified(raw, trusted_keys, scope=parsed.scope, max_bytes=max_bytes)
    payload = parse_alert_payload(payload_bytes, signed=True)
    ref = payload.id

    def reject(code: str, reason: str) -> Rejected:
        return Rejected(code, reason, ref=ref, signed=True)

    if payload.scope != parsed.scope:
        raise reject(
            "wrong-target",
            f"alert {ref} targets {payload.scope.level} {payload.target} but arrived on {topic} "
            f"({parsed.scope.level} {parsed.scope})",
        )
    if ref in seen:
        raise reject("replayed", f"alert {ref} was already received")
    reference_time = now
    if not clock_trusted:
        if last_trusted is None:
            raise reject(
                "clock-untrusted", f"clock not synchronised and no last trusted time: cannot judge {ref}"
            )
        if payload.issued <= last_trusted:
            raise reject(
                "clock-untrusted",
                f"clock not synchronised and alert {ref} was issued {payload.issued.isoformat()}, "
                f"not after the last trusted time {last_trusted.isoformat()}",
            )
        reference_time = max(now, last_trusted)
    if payload.expires <= reference_time:
        raise reject(
            "expired",
            f"alert {ref} expired at {payload.expires.isoformat()} (now {reference_time.isoformat()})",
        )
    if clock_trusted and payload.issued > now + timedelta(seconds=skew_s):
        raise reject(
            "future",
            f"alert {ref} issued {payload.issued.isoformat()}, more than {skew_s:g} s after now {now.isoformat()}",
        )
    return payload.to_alert()
