"""`loa-provision presets`: the hardware presets a station can be provisioned with."""

from __future__ import annotations

from provisioning.station import DEFAULT_PRESET, presets


def register(subparsers) -> None:
    p = subparsers.add_parser("presets", help="list the hardware (GPIO/audio) presets")
    p.set_defaults(func=run)


def run(args) -> int:
    for name, preset in sorted(presets().items()):
        mark = " (default)" if name == DEFAULT_PRESET else ""
        print(f"{name}{mark}: {preset['description']}")
    return 0
