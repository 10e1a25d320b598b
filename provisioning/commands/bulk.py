"""`loa-provision bulk`: provision every station of an inventory CSV."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from provisioning.commands._common import add_district_dir, open_district, reports_errors
from provisioning.errors import InputErrors
from provisioning.inventory import COLUMNS, read_inventory
from provisioning.progress import Progress
from provisioning.station import load_record, params_of, provision


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
    started = time.monotonic()
    counts: Counter[str] = Counter()
    with district.locked():
        if not args.rotate:
            conflicts = []
            for row in rows:
                record = load_record(district, row.params.station)
                if record is not None and params_of(record) != row.params:
                    conflicts.append(
                        f"line {row.line}: station {row.params.station!r} already exists with other settings "
                        "(use --rotate to re-issue it)"
                    )
            if conflicts:
                raise InputErrors(str(args.inventory), conflicts)
        bar = Progress(len(rows))
        try:
            for row in rows:
                outcome = provision(district, row.params, rotate=args.rotate)
                counts[outcome] += 1
                bar.step(f"{row.params.commune}/{row.params.station} {outcome}")
        except BaseException:
            bar.abort()
            raise
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"{len(rows)} station(s) in {time.monotonic() - started:.1f} s: {summary}", file=sys.stdout)
    return 0
