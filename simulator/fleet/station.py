"""One fleet station: the daemon's own parts (Station, InboundHandler, Runtime, MqttLink, replay cache, state
store) composed like `firmware.app.App` does, minus what a fleet cannot afford per station: the player
thread and its sink (a `VirtualPlayer` keeps time instead), GPIO (disabled, as `gpio.enabled = false`), the
content cache and prefetcher (fleet alerts and programmes are tones and speech, which need no files), and,
by default, the outbox (see `simulator.fleet.reporting`).

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
from pathlib import Path

from firmware import __version__
from firmware.adapters.mqtt import SharedLoop, station_link
from firmware.adapters.statefile import StateStore
from firmware.config import StationConfig, config_hash
from firmware.core import commands as C
from firmware.core.events import LinkChanged
from firmware.core.schedule import ScheduleDoc
from firmware.core.station import Station, StationSettings
from firmware.inbound import InboundHandler, load_active_policy
from firmware.protocol.keys import load_trust_anchors
from firmware.protocol.replay import ReplayCache
from firmware.protocol.reports import StationIds
from firmware.protocol.topics import Scope, station_subscriptions
from firmware.runtime import Inbound, Runtime
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
        state_dir = Path(cfg.paths.state_dir)
        self.store = StateStore(state_dir)
        self.replay = ReplayCache(state_dir / "replay.json")
        if trusted is None:
            trusted = load_trust_anchors(*cfg.trust.key_files) if cfg.trust.key_files else {}
        pushed = load_active_policy(self.store, self.scope, cfg.policy_bounds)  # None: the config's [policy]
        self.station = Station(pushed.policy if pushed else cfg.policy, schedule, cfg.tz, StationSettings(
            amp_warmup_s=0.0, amp_hang_s=cfg.gpio.amp_hang_s, fade_s=cfg.audio.fade_ms / 1000,
            id_prefix=f"{ident.id}.{self.boot_id}"))
        first = None
        if on_first_block is not None:
            def first(fb: FirstBlock) -> None:
                on_first_block(dataclasses.replace(fb, t_inbound=self.last_inbound_t))
        self.player = VirtualPlayer(ident.id, timers, self.events.put, on_first_block=first)
        self.link = None
        self.reporter = None
        self.outbox = None
        if cfg.broker.url:
            self.link = station_link(
                cfg.broker.url, self.ids, fw=__version__, boot_id=self.boot_id, config_hash=config_hash(cfg),
                wall=clock.wall, subscriptions=station_subscriptions(self.scope),
                on_message=self._message, on_link=self._link_changed, keepalive_s=cfg.broker.keepalive_s, loop=loop)
            self._hook_suback()
            if reporting == "outbox":
                from firmware.reporting.outbox import Outbox
                from firmware.reporting.reporter import Reporter

                self.outbox = Outbox(state_dir / "outbox.sqlite",
                                     max_bytes=int(cfg.reporting.outbox_max_mb * 1e6))
                self.reporter = Reporter(self.link, self.outbox, self.ids, clock, boot_id=self.boot_id,
                                         telemetry_interval_s=cfg.reporting.telemetry_interval_s)
            else:
                self.reporter = LightReporter(self.link, self.ids)

        def publish(topic: str, payload: bytes) -> None:
            if self.link is not None:
                self.link.publish(topic, payload, qos=1)

        self.inbound = InboundHandler(
            self.scope, trusted_keys=trusted, replay=self.replay, publish=publish,
            policy=pushed.policy if pushed else cfg.policy, bounds=cfg.policy_bounds, policy_doc=pushed,
            schedule=schedule, timezone=ident.timezone, state=self.store,
            schedule_version=schedule.version if schedule else None,
            skew_s=cfg.trust.max_skew_s)
        self.runtime = Runtime(
            self.station, clock=clock, player=self.player, reporter=self.reporter, link=self.link,
            inbound=self.inbound, state=self.store, on_command=self._on_command, name=f"loa-rt-{ident.id}")
        self.runtime.queue = self.events
        self.runtime.housekeeping.every(1).hours.do(self.replay.prune, clock.wall)

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
        self.events.put(LinkChanged(up))
        self.online = up
        if self.reporter is not None:
            self.reporter.on_link(up)
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
