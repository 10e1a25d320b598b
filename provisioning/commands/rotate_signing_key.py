"""`loa-provision rotate-signing-key`: add, activate, then retire a district signing key, with an overlap."""

from __future__ import annotations

from collections import Counter

from provisioning.commands._common import add_district_dir, open_district, reports_errors
from provisioning.rotation import activate_next_key, add_next_key, refresh_all, retire_previous_keys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rotate-signing-key",
        help="rotate the district's Ed25519 signing key in three steps (add, --activate, --retire)",
        description="Step 1 (no option): add a new key that stations trust alongside the active one; re-bundle "
        "or re-install every station's config. Step 2 (--activate): sign with the new key. Step 3 (--retire): "
        "stop trusting the old key. Station configs in the district directory are refreshed at each step.",
    )
    add_district_dir(p)
    step = p.add_mutually_exclusive_group()
    step.add_argument("--activate", action="store_true", help="step 2: the new key becomes the signing key")
    step.add_argument("--retire", action="store_true", help="step 3: stations stop trusting the old key")
    p.set_defaults(func=run)


@reports_errors
def run(args) -> int:
    district = open_district(args)
    with district.locked():
        if args.activate:
            old, new = activate_next_key(district)
            print(f"signing with {new} from now on; {old} stays trusted until `--retire`")
            print(f"district tools: sign with {district.private_key_path(new)}")
        elif args.retire:
            kids = retire_previous_keys(district)
            print(f"retired {', '.join(kids)}: private key deleted; stations stop trusting it once re-installed")
        else:
            kid = add_next_key(district)
            print(f"new signing key {kid} added (not signing yet); trust anchor {district.public_key_path(kid)}")
            print("next: re-bundle and re-install every station (both keys trusted), then --activate")
        changed = Counter(refresh_all(district).values())
    print("station configs: " + (", ".join(f"{n} {k}" for k, n in sorted(changed.items())) or "none provisioned"))
    return 0
