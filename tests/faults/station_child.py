"""One station in its own process, for kill -9: what `loa-sim station` runs (the real App on simulated GPIO
and a paced silent sink), plus a clock anchored to a simulated instant that keeps running across restarts.

    python -m tests.faults.station_child --config station.toml --schedule s.json --origin 2026-12-01T05:59:58+07:00 \
        --origin-epoch 1764560000.0

The wall clock reads `origin` at host time `origin_epoch` and runs on in real time, so a restarted child
continues where the killed one was. Prints `ready`, then one line per decision: `play REF OFFSET` and
`report ID REF RESULT` (printed as the runtime carries the command out; not a durability claim).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from firmware.commands.run import serve
from firmware.config import load_config
from firmware.core import commands as C
from firmware.core.schedule import parse_schedule
from simulator.clock import SteppableClock
from simulator.sinks import PacedSink
from simulator.station import sim_app, simulated_config


class _ReadyApp:
    """Wraps the App so that `ready` is printed once it has started (serve() starts it)."""

    def __init__(self, app):
        self._app = app

    def start(self):
        self._app.start()
        print("ready", flush=True)
        return self

    def __getattr__(self, name):
        return getattr(self._app, name)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--schedule", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--origin", required=True, type=datetime.fromisoformat)
    p.add_argument("--origin-epoch", required=True, type=float)
    args = p.parse_args()
    cfg = simulated_config(load_config(args.config), state_dir=args.state_dir)
    clock = SteppableClock(cfg.tz, offset_s=args.origin.timestamp() - args.origin_epoch)
    doc = parse_schedule(Path(args.schedule).read_bytes(), args.schedule)

    def on_command(now, cmd) -> None:
        if isinstance(cmd, C.Play):
            print(f"play {cmd.ref} {cmd.offset_s:.3f}", flush=True)
        elif isinstance(cmd, C.Report):
            e = cmd.entry
            print(f"report {e.entry_id} {e.ref} {e.result}", flush=True)

    app = sim_app(cfg, sink=PacedSink(cfg.audio.rate_hz, keep=False), clock=clock, schedule=doc,
                  on_command=on_command)
    return serve(_ReadyApp(app))


if __name__ == "__main__":
    sys.exit(main())
