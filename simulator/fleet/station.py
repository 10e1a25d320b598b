"""One fleet station: the daemon's own parts (Station, InboundHandler, Runtime, MqttLink, replay cache, state
store) built by the daemon's own composition function, `firmware.app.compose`, with the fleet's light parts
passed in instead of what a fleet cannot afford per station: the player thread and its sink (a
`VirtualPlayer` keeps time instead), GPIO (none, as `gpio.enabled = false`), the content cache and
prefetcher (fleet alerts and programmes are tones and speech, which need no files), and, by default, the
outbox (a `LightReporter`, see `simulator.fleet.reporting`).

The runtime is the real `firmware.runtime.Runtime`, one thread per station: measured at 1,000 stations it
costs about 4 % of one core while idle (each wakes every 2 s for its clock-trust check), see docs/scaling.md.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import time
import uuid
from collections.abc import Callable

from firmware.adapters.mqtt import SharedLoop
from firmware.app import compose
from firmware.config import StationConfig
from firmware.core import commands as C
from firmware.core.schedule import ScheduleDoc
from firmware.protocol.reports import StationIds
from firmware.protocol.topics import Scope
from firmware.runtime import Inbound
from simulator.fleet.player import FirstBlock, VirtualPlayer
from simulator.fleet.reporting import LightReporter
from simulator.fleet.timers import Timers

log = logging.getLogger(__name__)


class FleetStation:
    def __init__(
        self,
        cfg: StationConfig,
        *,
        timers: Timers,
        loop: SharedLoop | None,
        clock,
        schedule: ScheduleDoc | None = None,
        trusted: dict | None = None,
        reporting: str = "light",
        on_first_block: Callable[[FirstBlock], None] | None = None,
        on_change: Callable[[FleetStation], None] | None = None,
        on_command: Callable | None = None,
    ):
        self.cfg = cfg
        ident = cfg.station
        self.id = ident.id
        self.scope = Scope(ident.district, ident.commune, ident.id)
        self.ids = StationIds(ident.district, ident.commune, ident.id)
        self.boot_id = uuid.uuid4().hex[:12]
        self.state = "booting"
        self.online = False
        self.subscribed = False
        self.last_inbound_t: float | None = None
        self._on_change = on_change
        self._on_command_extra = on_command
        self.events: queue.Queue = queue.Queue()
        first = None
        if on_first_block is not None:
            def first(fb: FirstBlock) -> None:
                on_first_block(dataclasses.replace(fb, t_inbound=self.last_inbound_t))
        self.player = VirtualPlayer(ident.id, timers, self.events.put, on_first_block=first)
        w = compose(
            cfg, events=self.events, clock=clock, player=self.player, boot_id=self.boot_id, schedule=schedule,
            trusted=trusted, gpio=False, link_loop=loop,
            make_reporter=None if reporting == "outbox" else LightReporter,
            on_message=self._message, on_link=self._link_changed, on_command=self._on_command,
            runtime_name=f"loa-rt-{ident.id}")
        self.station, self.runtime, self.inbound = w.station, w.runtime, w.inbound
        self.store, self.replay = w.state, w.replay
        self.link, self.reporter, self.outbox = w.link, w.reporter, w.outbox
        if self.link is not None:
            self._hook_suback()

    def _message(self, topic: str, payload: bytes, retained: bool) -> None:
        """Network thread: note when the message reached this station (for the fan-out's breakdown), enqueue."""
        self.last_inbound_t = time.monotonic()
        self.events.put(Inbound(topic, payload, retained))

    def _hook_suback(self) -> None:
        """Know when the subscriptions are in place (the fan-out benchmark publishes only after that)."""
        client = self.link.client
        original = client.on_subscribe

        def on_subscribe(*args) -> None:
            original(*args)
            self.subscribed = True
            if self._on_change:
                self._on_change(self)

        client.on_subscribe = on_subscribe

    def _link_changed(self, up: bool) -> None:
        """Network thread, after the station and the reporter were told (by `compose`)."""
        self.online = up
        if self._on_change:
            self._on_change(self)

    def _on_command(self, now, cmd) -> None:
        if isinstance(cmd, C.StateChanged):
            self.state = cmd.state
            if self._on_change:
                self._on_change(self)
        if self._on_command_extra is not None:
            self._on_command_extra(self, now, cmd)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start_runtime(self) -> None:
        if self.reporter is not None:
            self.reporter.start()
        self.runtime.start()

    def start_link(self) -> None:
        if self.link is not None:
            self.link.start()

    @property
    def healthy(self) -> bool:
        return self.runtime.alive and self.runtime.error is None

    def stop(self) -> None:
        for step in (self.runtime.stop, self.player.close,
                     self.link.stop if self.link else None, self.reporter.stop if self.reporter else None,
                     self.outbox.close if self.outbox else None):
            if step is None:
                continue
            try:
                step()
            except Exception:
                log.exception("%s: stopping failed", self.id)
