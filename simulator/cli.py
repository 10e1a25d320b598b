"""`loa-sim`: Simulated stations, days and fleets (no hardware needed)."""

from __future__ import annotations

import sys

from firmware.cli_support import run_main


def main(argv: list[str] | None = None) -> int:
    return run_main("loa-sim", "Simulated stations, days and fleets (no hardware needed).", "simulator.commands", argv)


if __name__ == "__main__":
    sys.exit(main())
