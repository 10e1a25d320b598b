"""`loa-provision account`: a further client certificate for a district tool instance (collector, sender)."""

from __future__ import annotations

from firmware.cli_support import UsageError
from provisioning.commands._common import add_district_dir, open_district, reports_errors
from provisioning.ids import ACCOUNT_KINDS, account_cn, id_problem


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "account",
        help="issue a client certificate for one more district tool instance (e.g. a second collector)",
        description="The broker forces client id = certificate CN, so every running instance of a tool needs "
        "its own certificate: `--kind collector --instance 2` makes accounts/collector-2.{crt,key} with CN "
        "collector-2.<district>. Then re-run broker-config.",
    )
    add_district_dir(p)
    p.add_argument("--kind", required=True, choices=ACCOUNT_KINDS)
    p.add_argument("--instance", required=True, help="instance name, e.g. 2 or the operator's name ([a-z0-9-])")
    p.set_defaults(func=run)


@reports_errors
def run(args) -> int:
    problem = id_problem("instance", args.instance)
    if problem:
        raise UsageError(problem)
    district = open_district(args)
    with district.locked():
        crt, key = district.issue_account(args.kind, args.instance)
    print(f"account {account_cn(args.kind, district.id, args.instance)}: {crt} and {key} (0600)")
    print("next: loa-provision broker-config ... and restart mosquitto")
    return 0
