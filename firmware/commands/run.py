"""`loa-station run --config PATH`: the daemon (under systemd on a Pi)."""

from __future__ import annotations

import logging
import signal
import threading

from firmware.config import load_config_or_report

log = logging.getLogger("loa.station")


def register(sub) -> None:
    p = sub.add_parser("run", help="run the station daemon (systemd Type=notify)")
    p.add_argument("--config", required=True, help="station.toml")
    p.set_defaults(func=run)


def run(args) -> int:
    from firmware.adapters.systemd import Notifier
    from firmware.app import App

    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 1
    if args.verbose == 0:
        logging.getLogger().setLevel(logging.INFO)  # a daemon's journal wants its one-line events
    return serve(App(cfg, notifier=Notifier()))


def serve(app) -> int:
    """Start the app, wait for SIGTERM/SIGINT, stop cleanly (fade, amplifier off, offline status)."""
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        app.start()
        s = app.cfg.station
        log.info("station %s running (%s)", s.scope, s.name or "unnamed")
        runtime = app.parts.runtime
        while not stop.wait(1.0):
            if not runtime.alive:
                log.error("runtime thread died: exiting for systemd to restart us")
                return 1
        return 0
    except Exception as e:
        log.exception("station failed to start: %s", e)
        return 1
    finally:
        app.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
