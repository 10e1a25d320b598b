"""`loa-sim station`: the real daemon with simulated GPIO and a simulated (or WAV) sink, in real time."""

from __future__ import annotations

from firmware.cli_support import load_schedule_or_report
from firmware.commands.run import serve
from firmware.config import load_config_or_report
from simulator.station import sim_app, simulated_config


def register(sub) -> None:
    p = sub.add_parser("station", help="run one station with simulated GPIO and sink (real time)")
    p.add_argument("--config", required=True, help="station.toml")
    p.add_argument("--schedule", help="schedule.json (default: the config's, or the last accepted one)")
    p.add_argument("--wav", help="write the audio to this WAV file (default: a paced silent sink)")
    p.add_argument("--broker", help="override the config's broker URL (e.g. mqtt://127.0.0.1:1883)")
    p.add_argument("--state-dir", help="state directory (default: a new temporary one)")
    p.add_argument("--speed", default="realtime", choices=["realtime"],
                   help="only real time: accelerated days are `loa-sim day`'s job")
    p.add_argument("--selftest", action="store_true", help="run the self-test on the simulated parts and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 1
    doc = None
    if args.schedule:
        doc = load_schedule_or_report(args.schedule)
        if doc is None:
            return 1
    cfg = simulated_config(cfg, state_dir=args.state_dir, broker_url=args.broker, wav_out=args.wav)
    if args.selftest:
        from gpiozero.pins.mock import MockFactory

        from firmware.selftest import format_table, run_selftest
        from simulator.clock import HostClock
        from simulator.sinks import RecordingSink

        checks = run_selftest(cfg, sink=RecordingSink(cfg.audio.rate_hz), pin_factory=MockFactory(),
                              clock=HostClock(cfg.tz))
        print(format_table(checks))
        return 1 if any(c.ok is False for c in checks) else 0
    sink = None
    if not args.wav:
        from simulator.sinks import PacedSink

        sink = PacedSink(cfg.audio.rate_hz, keep=False)
    return serve(sim_app(cfg, sink=sink, schedule=doc))
