"""Rotating the district signing key without a moment in which stations reject genuine alerts.

    1. add       a new key in state "next": stations are given both anchors (re-bundle / re-install config);
                 the district keeps signing with the active key.
    2. activate  once every station trusts the new key: it becomes "active", the old one "previous" (still
                 trusted, so retained alerts and schedules signed with it keep verifying).
    3. retire    once everything retained has been re-published with the new key: the old key is no longer
                 trusted; its private key is deleted, its public key kept for the record.

Each step refreshes every station's config and trust anchors in the district directory.
"""

from __future__ import annotations

from provisioning import signing
from provisioning.district import ACTIVE, NEXT, PREVIOUS, RETIRED, District, utc_now
from provisioning.errors import ProvisionError
from provisioning.station import StationParams, params_of, refresh, station_dir, stations


def add_next_key(district: District) -> str:
    keys = district.signing_keys()
    pending = [k.kid for k in keys if k.state == NEXT]
    if pending:
        raise ProvisionError(
            f"key {pending[0]} is already waiting to become active; run `rotate-signing-key --activate` "
            "once every station trusts it"
        )
    kid = signing.write_signing_key(signing.generate(), district.root / "signing")
    district.meta["signing_keys"].append({"kid": kid, "state": NEXT, "created": utc_now()})
    district.save_meta()
    return kid


def activate_next_key(district: District) -> tuple[str, str]:
    entries = district.meta["signing_keys"]
    nxt = [e for e in entries if e["state"] == NEXT]
    if not nxt:
        raise ProvisionError("no new key to activate; run `rotate-signing-key` first to add one")
    prev = [e for e in entries if e["state"] == PREVIOUS]
    if prev:
        raise ProvisionError(
            f"key {prev[0]['kid']} is still in its overlap; run `rotate-signing-key --retire` first"
        )
    old = next(e for e in entries if e["state"] == ACTIVE)
    old["state"], nxt[0]["state"] = PREVIOUS, ACTIVE
    nxt[0]["activated"] = utc_now()
    district.save_meta()
    return old["kid"], nxt[0]["kid"]


def retire_previous_keys(district: District) -> list[str]:
    retired = []
    for e in district.meta["signing_keys"]:
        if e["state"] == PREVIOUS:
            e["state"], e["retired"] = RETIRED, utc_now()
            retired.append(e["kid"])
    if not retired:
        raise ProvisionError("no key in its overlap to retire (activate a new key first)")
    district.save_meta()
    for kid in retired:
        district.private_key_path(kid).unlink(missing_ok=True)
    return retired


def refresh_all(district: District) -> dict[str, str]:
    """Re-render every station's config and trust anchors (keys and certificates unchanged)."""
    out = {}
    for rec in stations(district):
        p: StationParams = params_of(rec)
        out[p.station] = refresh(district, p, station_dir(district, p.station))
    return out
