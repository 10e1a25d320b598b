"""`loa-provision bulk`: provision every station of an inventory CSV."""

from __future__ import annotations

from pathlib import Path

from provisioning.commands._common import add_district_dir, open_district, reports_errors
from provisioning.errors import InputErrors
from provisioning.inventory import COLUMNS, compare_with_district, for_each_row, read_inventory
from provisioning.station import provision


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bulk",
        help="provision every station of an inventory CSV (all rows are checked before anything is written)",
        description=f"Columns: {', '.join(COLUMNS)} (commune and station required). Rows already provisioned "
        "with the same settings are left unchanged; changed rows need --rotate.",
    )
    p.add_argument("inventory", type=Path, help="inventory CSV (UTF-8)")
    add_district_dir(p)
    p.add_argument("--rotate", action="store_true", help="re-issue every listed station (new keys; old revoked)")
    p.set_defaults(func=run)


@reports_errors
def run(args) -> int:
    district = open_district(args)
    rows = read_inventory(args.inventory)
    with district.locked():
        if not args.rotate:
            _, changed = compare_with_district(district, rows)
            conflicts = [
                f"line {row.line}: station {row.params.station!r} already exists with other settings "
                "(use --rotate to re-issue it)"
                for row in rows if row.line in changed
            ]
            if conflicts:
                raise InputErrors(str(args.inventory), conflicts)
        for_each_row(rows, lambda row: provision(district, row.params, rotate=args.rotate))
    return 0
