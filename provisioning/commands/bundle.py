"""`loa-provision bundle`: the files to copy onto a fresh Raspberry Pi OS card's boot partition, for one station
(`--station`) or for every station of an inventory CSV (`--inventory`, one `OUT/<station>/` each)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from firmware.cli_support import UsageError
from provisioning.bundle import (
    DEFAULT_ADMIN,
    DEFAULT_NTP,
    build_bundle,
    build_wheel,
    bundle_id,
    check_options,
    out_problem,
    read_ssh_keys,
)
from provisioning.commands._common import add_district_dir, open_district, reports_errors
from provisioning.district import District
from provisioning.errors import InputErrors
from provisioning.inventory import Row, compare_with_district, for_each_row, read_inventory
from provisioning.station import CREATED, UNCHANGED

UPDATED = "updated"
COPY_HINT = "on the Pi: sudo bash /boot/firmware/loa/firstboot.sh"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bundle",
        help="write the SD-card bundle of one station, or of every station of an inventory CSV "
        "(config, keys, first-boot script, wheel)",
        description="Write OUT/loa/ (with --inventory: OUT/<station>/loa/ for every station): copy that `loa` "
        "folder onto the boot partition (bootfs) of a freshly written Raspberry Pi OS card, boot, then run "
        "`sudo bash /boot/firmware/loa/firstboot.sh`.",
    )
    add_district_dir(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--station", help="station id (provisioned with `station` or `bulk`)")
    which.add_argument("--inventory", type=Path, metavar="CSV",
                       help="every station of this inventory CSV (the one given to `bulk`; all rows are checked "
                       "before anything is written)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory, replaced if it is a bundle (with --inventory: one DIR/<station>/ each)")
    ssh = p.add_mutually_exclusive_group(required=True)
    ssh.add_argument("--ssh-key", type=Path, metavar="FILE",
                     help="public key(s) / authorized_keys for the admin user; password login is then turned off")
    ssh.add_argument("--no-ssh-key", action="store_true",
                     help="leave SSH as the image configured it (not for stations in the field)")
    p.add_argument("--admin-user", default=DEFAULT_ADMIN, help=f"admin login on the Pi (default {DEFAULT_ADMIN})")
    p.add_argument("--wheel", type=Path, help="the loa wheel to install (default: build one from this source tree)")
    p.add_argument("--ntp", default=DEFAULT_NTP, help="NTP servers, space separated")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.inventory is not None and not args.inventory.is_file():
        # a wrong argument (exit 2), before the district is even opened
        what = "not a file" if args.inventory.exists() else "no such file"
        raise UsageError(f"--inventory {args.inventory}: {what}")
    return _run(args)


@reports_errors
def _run(args) -> int:
    district = open_district(args)
    if args.inventory is not None:
        return _run_inventory(district, args)
    keys = None if args.no_ssh_key else read_ssh_keys(args.ssh_key)
    with district.locked():
        path = build_bundle(
            district, args.station, Path(args.out), wheel=args.wheel, ssh_keys=keys,
            admin_user=args.admin_user, ntp_servers=args.ntp,
        )
    print(f"bundle for station {args.station} written to {path}")
    print(f"copy that `loa` folder onto the card's boot partition; {COPY_HINT}")
    return 0


def _run_inventory(district: District, args) -> int:
    rows = read_inventory(args.inventory)  # the same parsing and checks as `bulk`
    keys = None if args.no_ssh_key else read_ssh_keys(args.ssh_key)
    check_options(wheel=args.wheel, admin_user=args.admin_user)
    out = Path(args.out)
    with district.locked():
        problems = _inventory_problems(district, rows, out)
        if problems:
            raise InputErrors(str(args.inventory), problems)
        with tempfile.TemporaryDirectory(prefix="loa-wheel-") as tmp:
            # one wheel for every bundle (building it takes seconds; it is the same source each time)
            wheel = args.wheel if args.wheel is not None else build_wheel(Path(tmp))

            def one(row: Row) -> str:
                dest = out / row.params.station
                before = bundle_id(dest)
                build_bundle(
                    district, row.params.station, dest, wheel=wheel, ssh_keys=keys,
                    admin_user=args.admin_user, ntp_servers=args.ntp,
                )
                return CREATED if before is None else UNCHANGED if before == bundle_id(dest) else UPDATED

            for_each_row(rows, one)
    print(f"bundles written to {out}/<station>/loa: copy each `loa` folder onto that station's card; {COPY_HINT}")
    return 0


def _inventory_problems(district: District, rows: list[Row], out: Path) -> list[str]:
    """Everything that would stop a bundle of this inventory, by line, so that none is written."""
    if out.exists() and not out.is_dir():
        return [f"--out {out} is a file, not a directory"]
    missing, changed = compare_with_district(district, rows)
    missing_lines = {row.line for row in missing}
    problems = []
    for row in rows:
        station = row.params.station
        if row.line in missing_lines:
            problems.append(f"line {row.line}: station {station!r} is not provisioned yet (no key or config): "
                            "run `loa-provision bulk` with this inventory first")
        elif row.line in changed:
            problems.append(f"line {row.line}: station {station!r} was provisioned with other settings "
                            f"({', '.join(changed[row.line])} differ): run `loa-provision bulk --rotate` with this "
                            "inventory first, or correct the line")
        problem = out_problem(out / station)
        if problem:
            problems.append(f"line {row.line}: {problem}")
    return problems
