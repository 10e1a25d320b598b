"""`loa-station selftest --config PATH`: the technician's on-site check."""

from __future__ import annotations

import sys

from firmware.config import ConfigError, load_config
from firmware.selftest import format_table, run_selftest


def register(sub) -> None:
    p = sub.add_parser("selftest", help="test tone, amplifier, LED, audio device, disk, clock, broker")
    p.add_argument("--config", required=True, help="station.toml")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    checks = run_selftest(cfg)
    print(format_table(checks))
    return 1 if any(c.ok is False for c in checks) else 0
