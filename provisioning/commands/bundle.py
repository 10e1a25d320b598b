"""`loa-provision bundle`: the files to copy onto a fresh Raspberry Pi OS card's boot partition."""

from __future__ import annotations

from pathlib import Path

from provisioning.bundle import DEFAULT_ADMIN, DEFAULT_NTP, build_bundle, read_ssh_keys
from provisioning.commands._common import add_district_dir, open_district, reports_errors


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bundle",
        help="write the SD-card bundle for one station (config, keys, first-boot script, wheel)",
        description="Write OUT/loa/: copy that folder onto the boot partition (bootfs) of a freshly written "
        "Raspberry Pi OS card, boot, then run `sudo bash /boot/firmware/loa/firstboot.sh`.",
    )
    add_district_dir(p)
    p.add_argument("--station", required=True, help="station id (provisioned with `station` or `bulk`)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (replaced if it is a bundle)")
    ssh = p.add_mutually_exclusive_group(required=True)
    ssh.add_argument("--ssh-key", type=Path, metavar="FILE",
                     help="public key(s) / authorized_keys for the admin user; password login is then turned off")
    ssh.add_argument("--no-ssh-key", action="store_true",
                     help="leave SSH as the image configured it (not for stations in the field)")
    p.add_argument("--admin-user", default=DEFAULT_ADMIN, help=f"admin login on the Pi (default {DEFAULT_ADMIN})")
    p.add_argument("--wheel", type=Path, help="the loa wheel to install (default: build one from this source tree)")
    p.add_argument("--ntp", default=DEFAULT_NTP, help="NTP servers, space separated")
    p.set_defaults(func=run)


@reports_errors
def run(args) -> int:
    district = open_district(args)
    keys = None if args.no_ssh_key else read_ssh_keys(args.ssh_key)
    with district.locked():
        path = build_bundle(
            district, args.station, Path(args.out), wheel=args.wheel, ssh_keys=keys,
            admin_user=args.admin_user, ntp_servers=args.ntp,
        )
    print(f"bundle for station {args.station} written to {path}")
    print("copy that `loa` folder onto the card's boot partition; on the Pi: sudo bash /boot/firmware/loa/firstboot.sh")
    return 0
