"""`loa-station check-config PATH`: every problem at once, or a one-screen summary."""

from __future__ import annotations

import sys

from firmware.config import ConfigError, config_hash, load_config
from firmware.core.policy import WEEKDAYS


def register(sub) -> None:
    p = sub.add_parser("check-config", help="validate a station config; print every problem at once")
    p.add_argument("path", help="station.toml")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        cfg = load_config(args.path)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    s, pol = cfg.station, cfg.policy
    print(f"{args.path}: OK (config hash {config_hash(cfg)})")
    print(f"  station   {s.scope}  {s.name}  [{s.timezone}]")
    print(f"  broker    {cfg.broker.url or '(none: offline station)'}")
    print(
        f"  limits    {pol.max_sessions_per_day} sessions/day, {pol.max_session_minutes:g} min/session, "
        f"{pol.max_minutes_per_day:g} min/day; alerts at {pol.alert_gain_db:+.1f} dB"
    )
    for day in WEEKDAYS:
        windows = [f"{w.label()} (cap {w.cap_db:+.1f} dB)" for w in pol.windows if day in w.days]
        print(f"  {day}       {', '.join(windows) or 'no allowed window'}")
    dev = cfg.audio.wav_out or cfg.audio.device or "default device"
    print(f"  audio     {dev}, {cfg.audio.rate_hz} Hz, {cfg.audio.block_ms} ms blocks")
    g = cfg.gpio
    print(
        f"  gpio      amp {g.amp_pin} (warm-up {g.amp_warmup_s:g} s, hang {g.amp_hang_s:g} s), "
        f"led {g.led_pin}, button {g.button_pin}, mains {g.mains_pin}"
        if g.enabled
        else "  gpio      disabled"
    )
    print(f"  trust     {len(cfg.trust.key_files)} district key file(s)")
    return 0
