"""One simulated station: the real daemon (`firmware.app.App`) with simulated GPIO and sink."""

from __future__ import annotations

import tempfile

from gpiozero.pins.mock import MockFactory

from firmware.app import App
from firmware.config import StationConfig
from simulator.clock import HostClock


def simulated_config(cfg: StationConfig, *, state_dir: str | None = None, broker_url: str | None = None,
                     wav_out: str | None = None) -> StationConfig:
    """The same config with a private state dir (never /var/lib/loa on a laptop) and optional overrides."""
    paths = cfg.paths.model_copy(update={"state_dir": state_dir or tempfile.mkdtemp(prefix="loa-sim-")})
    update: dict = {"paths": paths}
    if broker_url is not None:
        update["broker"] = cfg.broker.model_copy(update={"url": broker_url, "ca_file": None, "cert_file": None,
                                                        "key_file": None})
    if wav_out is not None:
        update["audio"] = cfg.audio.model_copy(update={"wav_out": wav_out})
    return cfg.model_copy(update=update)


def sim_app(cfg: StationConfig, *, sink=None, clock=None, pin_factory=None, **kwargs) -> App:
    """An App on gpiozero's MockFactory (a fresh one per station: pins are not shared) and the host clock."""
    return App(cfg, sink=sink, clock=clock or HostClock(cfg.tz), pin_factory=pin_factory or MockFactory(),
               **kwargs)
