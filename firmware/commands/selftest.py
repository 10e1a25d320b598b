"""`loa-station selftest --config PATH`: the technician's on-site check."""

from __future__ import annotations

from firmware.config import load_config_or_report
from firmware.selftest import format_table, run_selftest


def register(sub) -> None:
    p = sub.add_parser("selftest", help="test tone, amplifier, LED, audio device, disk, clock, broker")
    p.add_argument("--config", required=True, help="station.toml")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 1
    checks = run_selftest(cfg)
    print(format_table(checks))
    return 1 if any(c.ok is False for c in checks) else 0
