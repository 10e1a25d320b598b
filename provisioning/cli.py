"""`loa-provision`: Technician tools: district keys, station configs, broker config, SD-card bundles."""

from __future__ import annotations

import sys

from firmware.cli_support import run_main


def main(argv: list[str] | None = None) -> int:
    return run_main("loa-provision", "Technician tools: district keys, station configs, broker config, SD-card bundles.", "provisioning.commands", argv)


if __name__ == "__main__":
    sys.exit(main())
