"""`loa-provision list`: what a district directory holds (stations, revoked certificates, accounts, keys)."""

from __future__ import annotations

from provisioning.commands._common import add_district_dir, open_district, reports_errors
from provisioning.station import stations


def register(subparsers) -> None:
    p = subparsers.add_parser("list", help="list the district's stations, revoked certificates, accounts and keys")
    add_district_dir(p)
    p.set_defaults(func=run)


@reports_errors
def run(args) -> int:
    d = open_district(args)
    recs = stations(d)
    print(f"district {d.id}: broker {d.broker_url} ({', '.join(d.broker_hosts)})")
    print(f"stations ({len(recs)}):")
    for r in recs:
        name = f"  {r['name']}" if r.get("name") else ""
        print(f"  {r['commune']}/{r['station']}  preset {r['preset']}  serial {int(r['serial']):x}  issued {r['issued']}{name}")
    revoked = d.revoked()
    print(f"revoked certificates ({len(revoked)}):")
    for e in revoked:
        print(f"  {e['cn']}  serial {int(e['serial']):x}  {e['reason']}  {e['revoked_at']}")
    print("tool accounts: " + ", ".join(f"{cn} ({kind})" for kind, cn in d.tool_accounts()))
    print("signing keys: " + ", ".join(f"{k.kid} ({k.state})" for k in d.signing_keys()))
    return 0
