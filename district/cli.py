"""`loa-district`: District tools: alerts, schedules, reports, console."""

from __future__ import annotations

import sys

from firmware.cli_support import run_main


def main(argv: list[str] | None = None) -> int:
    return run_main("loa-district", "District tools: alerts, schedules, reports, console.", "district.commands", argv)


if __name__ == "__main__":
    sys.exit(main())
