"""Helpers shared by the loa-provision commands: error reporting and the --district-dir argument."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from provisioning.district import District
from provisioning.errors import ProvisionError


def add_district_dir(parser) -> None:
    parser.add_argument(
        "--district-dir", required=True, metavar="DIR", help="district directory made by `init-district`"
    )


def open_district(args) -> District:
    return District.open(args.district_dir)


def reports_errors(run: Callable[..., int]) -> Callable[..., int]:
    """ProvisionError -> one clear message on stderr and exit 1 (never a traceback)."""

    @functools.wraps(run)
    def wrapper(args) -> int:
        try:
            return run(args)
        except ProvisionError as e:
            print(f"loa-provision: error: {e}", file=sys.stderr)
            return 1

    return wrapper
