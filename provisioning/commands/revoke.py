"""`loa-provision revoke`: revoke a station's certificate (CRL) and drop it from the broker ACL."""

from __future__ import annotations

from provisioning.commands._common import add_district_dir, open_district, reports_errors
from provisioning.station import revoke


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "revoke",
        help="revoke a station: its certificate goes on the CRL, its ACL block goes on the next broker-config",
        description="Revoke a station's certificate. Then run `broker-config` and restart (or HUP) mosquitto "
        "so the broker loads the new CRL and ACL. The station id can be provisioned again afterwards.",
    )
    p.add_argument("station", help="station id")
    add_district_dir(p)
    p.set_defaults(func=run)


@reports_errors
def run(args) -> int:
    district = open_district(args)
    with district.locked():
        moved = revoke(district, args.station)
    print(f"station {args.station}: certificate revoked; files kept in {moved}")
    print("next: loa-provision broker-config ... and restart mosquitto on the broker")
    return 0
