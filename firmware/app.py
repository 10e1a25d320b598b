"""The composition root: builds every part of a station in order and stops them in reverse.

`compose()` is the one place the station's core is wired: the `Station`, its inbound handler, the MQTT link,
the reporter and the `Runtime`, typed against `firmware.ports`. Both the daemon (`App`, below) and a fleet
station (`simulator.fleet.station.FleetStation`) are built through it; they differ only in the parts they
pass in. `App` adds what a Pi has around that core: GPIO, the content cache and prefetcher, the player
thread on a sink, the remote-command actions and the systemd notifier.

The same `App` runs on a Raspberry Pi (`loa-station run`: PyAudio sink, real GPIO pins, system clock) and in
the simulator (`loa-sim station`, `loa-sim demo`, tests: a simulated sink, gpiozero's MockFactory, any
clock): only the parts passed in differ.
"""

from __future__ import annotations

import logging
import queue
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from firmware import __version__
from firmware.config import StationConfig, config_hash
from firmware.core.events import SourceNote
from firmware.core.schedule import ScheduleDoc
from firmware.core.sources import FileSpec
from firmware.core.station import Station, StationSettings
from firmware.inbound import InboundHandler, load_active_policy, load_active_schedule
from firmware.ports import Amplifier, Clock, Link, Notifier, Player, Reporter, StateStore, StatusLed
from firmware.protocol.reports import StationIds
from firmware.runtime import Call, Inbound, Runtime

log = logging.getLogger(__name__)

PLAY_TIME_FETCH_S = 5.0


@dataclass
class Parts:
    """What the app built, for tests and the self-test to look at."""

    runtime: Runtime | None = None
    player: object | None = None
    sink: object | None = None
    amplifier: object | None = None
    led: object | None = None
    button: object | None = None
    mains: object | None = None
    link: object | None = None
    reporter: object | None = None
    outbox: object | None = None
    cache: object | None = None
    prefetcher: object | None = None
    fetcher: object | None = None
    inbound: InboundHandler | None = None
    stoppers: list = field(default_factory=list)


@dataclass
class Wiring:
    """What `compose()` built around the player it was given."""

    station: Station
    runtime: Runtime
    inbound: InboundHandler
    state: StateStore
    replay: object
    link: Link | None = None
    reporter: Reporter | None = None
    outbox: object | None = None  # the daemon's reporter's SQLite outbox (None with a light reporter)


ReporterFactory = Callable[[Link, StationIds], Reporter]


def compose(
    cfg: StationConfig,
    *,
    events: queue.Queue,
    clock: Clock,
    player: Player,
    boot_id: str,
    schedule: ScheduleDoc | None,
    state: StateStore | None = None,
    trusted: dict | None = None,
    gpio: bool = True,
    amplifier: Amplifier | None = None,
    led: StatusLed | None = None,
    notifier: Notifier | None = None,
    link_loop=None,
    make_reporter: ReporterFactory | None = None,
    on_message: Callable[[str, bytes, bool], None] | None = None,
    on_link: Callable[[bool], None] | None = None,
    actions: dict[str, Callable[[], str]] | None = None,
    on_schedule: Callable[[ScheduleDoc], None] | None = None,
    on_command=None,
    runtime_name: str = "loa-runtime",
) -> Wiring:
    """Wire one station's core: Station, link, reporter, inbound handler and Runtime, on `events`.

    Nothing is started (the caller starts reporter, link, player and runtime in its own order). Parts passed
    in: `player` (it already emits on `events`), GPIO (`gpio=False`: no amplifier warm-up is planned),
    `notifier`, `make_reporter(link, ids)` (default: the daemon's `Reporter` on an SQLite outbox),
    `on_message` (default: enqueue `Inbound`), `on_link` (called after the station and the reporter heard).
    """
    from firmware.adapters.mqtt import TlsFiles, station_link
    from firmware.adapters.statefile import StateStore as FileStateStore
    from firmware.core.events import LinkChanged
    from firmware.protocol.keys import load_trust_anchors
    from firmware.protocol.replay import ReplayCache
    from firmware.protocol.topics import Scope, station_subscriptions

    ident = cfg.station
    state_dir = Path(cfg.paths.state_dir)
    state = state if state is not None else FileStateStore(state_dir)
    if trusted is None:
        trusted = load_trust_anchors(*cfg.trust.key_files) if cfg.trust.key_files else {}
        if not trusted:
            log.warning("no district trust anchors configured: every alert, schedule and command will be refused")
    replay = ReplayCache(state_dir / "replay.json")
    scope = Scope(ident.district, ident.commune, ident.id)
    pushed = load_active_policy(state, scope, cfg.policy_bounds)  # None: station.toml's [policy]
    policy = pushed.policy if pushed else cfg.policy
    log.info("%s: policy %s", ident.scope, f"v{pushed.version} (pushed)" if pushed else "from station.toml")
    station = Station(policy, schedule, cfg.tz, StationSettings(
        amp_warmup_s=cfg.gpio.amp_warmup_s if gpio and cfg.gpio.enabled else 0.0,
        amp_hang_s=cfg.gpio.amp_hang_s, fade_s=cfg.audio.fade_ms / 1000,
        id_prefix=f"{ident.id}.{boot_id}", content_fallback=cfg.content.fallback, station_id=ident.id))
    link: Link | None = None
    reporter: Reporter | None = None
    outbox = None

    b = cfg.broker
    if b.url:
        ids = StationIds(scope.district, scope.commune, scope.station)

        def link_changed(up: bool) -> None:
            events.put(LinkChanged(up))
            if reporter is not None:
                reporter.on_link(up)
            if on_link is not None:
                on_link(up)

        tls = TlsFiles(ca=b.ca_file, cert=b.cert_file, key=b.key_file) if b.url.startswith("mqtts") else None
        link = station_link(
            b.url, ids, fw=__version__, boot_id=boot_id, config_hash=config_hash(cfg), wall=clock.wall,
            subscriptions=station_subscriptions(scope),
            on_message=on_message or (lambda topic, payload, retained: events.put(Inbound(topic, payload, retained))),
            on_link=link_changed, keepalive_s=b.keepalive_s, tls=tls, loop=link_loop)
        if make_reporter is not None:
            reporter = make_reporter(link, ids)
        else:
            from firmware.reporting.outbox import Outbox
            from firmware.reporting.reporter import Reporter as OutboxReporter

            outbox = Outbox(state_dir / "outbox.sqlite", max_bytes=int(cfg.reporting.outbox_max_mb * 1e6))
            reporter = OutboxReporter(link, outbox, ids, clock, boot_id=boot_id,
                                      telemetry_interval_s=cfg.reporting.telemetry_interval_s)
    else:
        log.info("%s: no broker configured: an offline station (no alerts, no reports)", ident.scope)

    def publish(topic: str, payload: bytes) -> None:
        if link is not None:
            link.publish(topic, payload, qos=1)

    inbound = InboundHandler(
        scope, trusted_keys=trusted, replay=replay, publish=publish, policy=policy,
        bounds=cfg.policy_bounds, policy_doc=pushed, schedule=schedule, timezone=ident.timezone, state=state, schedule_version=schedule.version if schedule else None,
        skew_s=cfg.trust.max_skew_s, actions=actions, on_schedule=on_schedule)
    runtime = Runtime(
        station, clock=clock, player=player, events=events, amplifier=amplifier, led=led, reporter=reporter,
        link=link, inbound=inbound, state=state, notifier=notifier, on_command=on_command, name=runtime_name)
    runtime.housekeeping.every(1).hours.do(replay.prune, clock.wall)
    return Wiring(station, runtime, inbound, state, replay, link, reporter, outbox)


class App:
    def __init__(
        self,
        cfg: StationConfig,
        *,
        sink=None,
        pin_factory=None,
        clock=None,
        schedule: ScheduleDoc | None = None,
        notifier=None,
        link_loop=None,
        on_command=None,
        boot_id: str | None = None,
    ):
        self.cfg = cfg
        self.sink = sink
        self.pin_factory = pin_factory
        self.clock = clock
        self.schedule_override = schedule
        self.notifier = notifier
        self.link_loop = link_loop
        self.on_command = on_command
        self.boot_id = boot_id or uuid.uuid4().hex[:12]
        self.parts = Parts()
        self.events: queue.Queue = queue.Queue()

    # -- building ----------------------------------------------------------------------------------

    def start(self) -> App:
        try:
            self._build()
        except BaseException:
            self.stop()
            raise
        return self

    def _build(self) -> None:
        from firmware.adapters.clock import SystemClock
        from firmware.adapters.statefile import StateStore as FileStateStore

        cfg, p = self.cfg, self.parts
        ident = cfg.station
        clock = self.clock = self.clock or SystemClock(cfg.tz)
        state_dir = Path(cfg.paths.state_dir)
        state = FileStateStore(state_dir)
        doc, source = (self.schedule_override, "given") if self.schedule_override else load_active_schedule(
            state, cfg.paths.schedule)
        log.info("%s: schedule %s (%s)", ident.scope, f"v{doc.version}" if doc else "none", source)

        self._build_gpio()
        self._build_content(state_dir, clock)
        self._build_player()
        w = compose(
            cfg, events=self.events, clock=clock, player=p.player, boot_id=self.boot_id, schedule=doc,
            state=state, gpio=cfg.gpio.enabled, amplifier=p.amplifier, led=p.led, notifier=self.notifier,
            link_loop=self.link_loop, actions=self._actions(), on_command=self.on_command,
            # queued, so it runs after the station has the new plan: then prefetch what it needs now
            on_schedule=lambda doc: self.events.put(Call(lambda rt: self._refresh_needs())))
        p.runtime, p.inbound, p.link, p.reporter, p.outbox = w.runtime, w.inbound, w.link, w.reporter, w.outbox
        if p.outbox is not None:
            p.stoppers.append(p.outbox.close)
        if p.reporter is not None and p.prefetcher is not None:
            p.reporter.content_status = self._content_counts
        if p.prefetcher is not None:
            p.runtime.housekeeping.every(30).minutes.do(self._refresh_needs)
        # Start so that nothing runs before what it talks to exists; stop() undoes this in reverse:
        # runtime (no more decisions), player (fade out), link (Will: offline), reporter, then GPIO.
        if p.reporter is not None:
            p.reporter.start()
            p.stoppers.append(p.reporter.stop)
        if p.link is not None:
            p.link.start()
            p.stoppers.append(p.link.stop)
        if p.prefetcher is not None:
            p.stoppers.append(p.prefetcher.stop)
        p.player.start()
        p.stoppers.append(lambda: p.player.close(fade_s=cfg.audio.fade_ms / 1000))
        p.runtime.start()
        p.stoppers.append(lambda: p.runtime.stop())
        if not p.runtime.wait_ready(15):
            raise RuntimeError("the station runtime did not start within 15 s")
        if p.prefetcher is not None:
            # Queued like the schedule's: the planner's day cache belongs to the runtime thread, now running.
            self.events.put(Call(lambda rt: self._refresh_needs()))
            p.prefetcher.start()

    def _build_gpio(self) -> None:
        g, p = self.cfg.gpio, self.parts
        if not g.enabled:
            return
        from firmware.adapters.gpio import AmplifierRelay, MainsSense, StatusLed, TechButton
        from firmware.core.events import ButtonPressed, PowerChanged

        pf = self.pin_factory
        if g.amp_pin is not None:
            p.amplifier = AmplifierRelay(g.amp_pin, active_high=g.amp_active_high, warmup_s=g.amp_warmup_s,
                                         hang_s=g.amp_hang_s, pin_factory=pf)
            p.stoppers.append(p.amplifier.close)
        if g.led_pin is not None:
            p.led = StatusLed(g.led_pin, pin_factory=pf)
            p.stoppers.append(p.led.close)
        if g.button_pin is not None:
            p.button = TechButton(g.button_pin, on_short=lambda: self.events.put(ButtonPressed(False)),
                                  on_long=lambda: self.events.put(ButtonPressed(True)),
                                  long_press_s=g.button_long_press_s, pin_factory=pf)
            p.stoppers.append(p.button.close)
        if g.mains_pin is not None:
            p.mains = MainsSense(g.mains_pin, on_change=lambda b: self.events.put(PowerChanged(b)),
                                 backup_when_high=g.mains_active_high, pin_factory=pf)
            p.stoppers.append(p.mains.close)

    def _build_content(self, state_dir: Path, clock) -> None:
        from firmware.content.cache import ContentCache
        from firmware.content.fetch import Fetcher
        from firmware.content.prefetch import Prefetcher

        c, p = self.cfg.content, self.parts
        root = Path(self.cfg.paths.content_dir or state_dir / "content")
        p.cache = ContentCache(root, int(c.cache_quota_mb * 1e6))
        p.stoppers.append(p.cache.close)
        p.fetcher = Fetcher(p.cache)
        p.prefetcher = Prefetcher(p.cache, p.fetcher, now=clock.wall, horizon=timedelta(hours=c.prefetch_hours),
                                  on_status=self._content_status)

    def _content_status(self, sha256: str, state: str, reason: str) -> None:
        """Prefetch progress (worker thread): missing or failing content is logged as soon as it is known,
        hours ahead; the district's `cmd fetch` answers with what is still missing."""
        if state in ("failed", "missing"):
            log.warning("content %s %s: %s", sha256[:12], state, reason)
        else:
            log.debug("content %s %s %s", sha256[:12], state, reason)

    def _content_counts(self) -> tuple[int, int]:
        """(missing, failed) files within the prefetch horizon, for telemetry (reporter thread)."""
        missing = self.parts.prefetcher.missing()
        return len(missing), sum(1 for m in missing if m.state == "failed")

    def _resolve(self, spec: FileSpec) -> str | None:
        """Where the player finds a district file: the cache; for an alert's audio, fetched right now."""
        p = self.parts
        path = p.prefetcher.resolve(spec) if p.prefetcher else None
        if path is None and spec.url and spec.sha256 and p.fetcher is not None:
            try:
                # Bounded: the player waits on this (after the alert's attention tone); a dead link must
                # not hold the speakers silent for minutes of retries.
                return str(p.fetcher.fetch(spec.url, spec.sha256, deadline_s=PLAY_TIME_FETCH_S))
            except Exception as e:
                log.error("content %s could not be fetched at play time: %s", spec.url, e)
        return path

    def _refresh_needs(self) -> None:
        """Tell the prefetcher what the schedule plays within the horizon."""
        from firmware.content.prefetch import needs_from_segments

        p = self.parts
        if p.prefetcher is None or p.runtime is None:
            return
        planner = p.runtime.station.planner
        now = self.clock.wall()
        end = now + timedelta(hours=self.cfg.content.prefetch_hours)
        p.prefetcher.set_needs(needs_from_segments(planner.segments_between(now - timedelta(hours=6), end)))

    def _build_player(self) -> None:
        from firmware.audio.player import Player
        from firmware.audio.sources import open_source

        a, p = self.cfg.audio, self.parts
        if self.sink is None:
            if a.wav_out:
                from firmware.adapters.wav_sink import WavFileSink

                self.sink = WavFileSink(a.wav_out, rate=a.rate_hz)
            else:
                from firmware.adapters.pyaudio_sink import PyAudioSink

                self.sink = PyAudioSink(a.device, rate=a.rate_hz, block_frames=a.rate_hz * a.block_ms // 1000,
                                        buffer_blocks=a.buffer_blocks)
        p.sink = self.sink

        def opener(spec, rate, play_id=None):
            def on_switch(frm, to, reason) -> None:
                if play_id is not None and frm is not None:  # the first "switch" is just the start
                    self.events.put(SourceNote(play_id, f"relay: switch {frm} -> {to}: {reason}"))

            return open_source(spec, rate, resolve=self._resolve, on_switch=on_switch)

        p.player = Player(self.sink, amplifier=p.amplifier, open_source=opener, emit=self.events.put,
                          block_ms=a.block_ms, rate=a.rate_hz)

    def _actions(self) -> dict:
        p = self.parts

        def telemetry() -> str:
            if p.reporter is None:
                return "no reporter"
            t = p.reporter.telemetry_now()
            return f"telemetry {t.id} queued"

        def fetch() -> str:
            self._refresh_needs()
            if p.prefetcher is None:
                return "no content cache"
            p.prefetcher.fetch_now()
            missing = p.prefetcher.missing()
            return f"fetch started; {len(missing)} file(s) missing within the horizon"

        def selftest() -> str:
            from firmware.selftest import quick_selftest

            return quick_selftest(self)

        return {"telemetry": telemetry, "fetch": fetch, "selftest": selftest}

    # -- stopping ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop in reverse order of starting: runtime (no more decisions), player (fade out), prefetcher, link
        (Will: offline), reporter, then GPIO (amplifier off)."""
        if self.notifier is not None:
            self.notifier.stopping()
        for stop in reversed(self.parts.stoppers):
            try:
                stop()
            except Exception:
                log.exception("stopping %r failed", stop)
        self.parts.stoppers.clear()

    def __enter__(self) -> App:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

