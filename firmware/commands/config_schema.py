"""`loa-station config-schema`: the JSON Schema of station.toml (for editors and provisioning tools)."""

from __future__ import annotations

import json

from firmware.config import StationConfig


def register(sub) -> None:
    p = sub.add_parser("config-schema", help="print the JSON Schema of the station config")
    p.set_defaults(func=run)


def run(args) -> int:
    print(json.dumps(StationConfig.model_json_schema(), indent=2, ensure_ascii=False))
    return 0
