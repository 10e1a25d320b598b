"""The one thread that owns the Station.

It blocks on a queue until the station's next deadline (or an event), hands each event to
`Station.handle(event, now)`, and carries out the returned commands through the ports. Every other thread
(paho's network loop, the player, gpiozero callbacks, housekeeping) only puts events on the queue, so the
station's state needs no lock.

It also watches time: wall vs monotonic on every wake reveals a step of the wall clock (NTP after boot, a
technician setting the date), which the station re-plans from; and it decides whether the wall clock is
trusted (NTP-synced, or at least not behind the last trusted time it persisted).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import schedule as schedule_lib

from firmware.core import commands as C
from firmware.core import events as E
from firmware.core.station import Station
from firmware.inbound import InboundHandler
from firmware.ports import Amplifier, Clock, Link, Notifier, Player, Reporter, StateStore, StatusLed

log = logging.getLogger(__name__)

STEP_THRESHOLD_S = 2.0  # smaller wall/monotonic disagreements are NTP slewing and scheduling jitter
MAX_WAIT_S = 5.0  # wake at least this often: clock steps, trust changes and the watchdog are noticed in time
PERSIST_EVERY_S = 60


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message from the district (runtime-level: verified here before the core sees anything)."""

    topic: str
    payload: bytes
    retained: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    """Run `fn(runtime)` on the runtime thread (self-test, telemetry now, tests)."""

    fn: Callable


class _Shutdown:
    pass


class Runtime:
    def __init__(
        self,
        station: Station,
        *,
        clock: Clock,
        player: Player,
        events: queue.Queue | None = None,
        amplifier: Amplifier | None = None,
        led: StatusLed | None = None,
        reporter: Reporter | None = None,
        link: Link | None = None,
        inbound: InboundHandler | None = None,
        state: StateStore | None = None,
        notifier: Notifier | None = None,
        on_command: Callable[[datetime, C.Command], None] | None = None,
        max_wait_s: float = MAX_WAIT_S,
        step_threshold_s: float = STEP_THRESHOLD_S,
        name: str = "loa-runtime",
    ):
        self.station = station
        self.clock = clock
        self.player = player
        self.amplifier = amplifier
        self.led = led
        self.reporter = reporter
        self.link = link
        self.inbound = inbound
        self.state = state
        self.notifier = notifier
        self.on_command = on_command
        self.max_wait_s = max_wait_s
        self.step_threshold_s = step_threshold_s
        # Handed in: the parts built before the runtime (player, GPIO, link) already put events on it.
        self.queue: queue.Queue = events if events is not None else queue.Queue()
        self.housekeeping = schedule_lib.Scheduler()  # private: never the library's global scheduler
        self.last_trusted: datetime | None = state.last_trusted if state else None
        self.last_alive: datetime | None = state.last_alive if state else None
        self.clock_trusted = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._last_ping = 0.0
        self.error: BaseException | None = None

    # -- any thread ----------------------------------------------------------------------------------

    def put(self, event) -> None:
        self.queue.put(event)

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.queue.put(_Shutdown())
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # the watchdog will restart us; say why first
            self.error = e
            log.exception("runtime loop died")
            raise
        finally:
            self._stopped.set()

    def _loop(self) -> None:
        wall, mono = self.clock.wall(), self.clock.monotonic()
        self.clock_trusted = self._judge_trust(wall)
        last_alive = self.last_alive
        interrupted = self.state.load_playing() if self.state else None
        log.info("station starting at %s (clock %s, last alive %s%s)", wall.isoformat(timespec="seconds"),
                 "trusted" if self.clock_trusted else "NOT trusted", last_alive,
                 f"; the last run died during {interrupted.get('kind')} {interrupted.get('ref')}" if interrupted
                 else "")
        self._dispatch(E.Booted(clock_trusted=self.clock_trusted, last_alive=last_alive, interrupted=interrupted),
                       wall)
        if interrupted and self.state is not None and self.station.playing_record() is None:
            self.state.clear_playing()
        self.housekeeping.every(PERSIST_EVERY_S).seconds.do(self._persist)
        self.housekeeping.every(2).seconds.do(self._check_trust)
        self._persist()
        self._ready.set()
        if self.notifier:
            self.notifier.ready(f"station {self.station.status().state}")
        while True:
            deadline = self.station.next_deadline()
            now = self.clock.wall()
            wait = self.max_wait_s
            if deadline is not None:
                wait = min(wait, max(0.0, (deadline - now).total_seconds()))
            idle = self.housekeeping.idle_seconds
            if idle is not None:
                wait = min(wait, max(0.0, idle))
            try:
                ev = self.queue.get(timeout=wait)
            except queue.Empty:
                ev = None
            wall_now, mono_now = self.clock.wall(), self.clock.monotonic()
            delta = (wall_now - wall).total_seconds() - (mono_now - mono)
            wall, mono = wall_now, mono_now
            if abs(delta) > self.step_threshold_s:
                log.warning("wall clock stepped by %+.1f s", delta)
                self._dispatch(E.ClockStepped(delta), wall_now)
                self._check_trust()
            if isinstance(ev, _Shutdown):
                break
            if isinstance(ev, Inbound):
                self._on_inbound(ev)
            elif isinstance(ev, Call):
                ev.fn(self)
            elif ev is not None:
                self._dispatch(ev, self.clock.wall())
            deadline = self.station.next_deadline()
            if deadline is not None and self.clock.wall() >= deadline:
                self._dispatch(E.DeadlineReached(), self.clock.wall())
            self.housekeeping.run_pending()
            self._feed_watchdog()
        self._dispatch(E.Stopping(), self.clock.wall())
        self._persist()

    def dispatch(self, event, now: datetime | None = None) -> None:
        """Runtime thread only (or a `Call`): hand an event to the station and carry out its commands."""
        self._dispatch(event, now or self.clock.wall())

    def _dispatch(self, event, now: datetime) -> None:
        cmds = self.station.handle(event, now)
        for cmd in cmds:
            if self.on_command is not None:
                self.on_command(now, cmd)
            try:
                self._execute(cmd, now)
            except Exception:
                # A failing adapter must not take the station down with it: log, and go on.
                log.exception("executing %r failed", cmd)
        if any(isinstance(c, C.Play | C.Stop | C.Report) for c in cmds):
            self._persist_playing()

    def _persist_playing(self) -> None:
        """Remember what plays (two small writes per item), so a crash mid-item is accounted for at boot."""
        if self.state is None:
            return
        rec = self.station.playing_record()
        try:
            if rec is None:
                self.state.clear_playing()
            else:
                self.state.save_playing(rec)
        except OSError as e:
            log.error("cannot persist what plays: %s", e)

    def _execute(self, cmd: C.Command, now: datetime) -> None:
        if isinstance(cmd, C.Play):
            log.info("play %s %s (%s) gain %.1f dB offset %.0f s", cmd.kind, cmd.ref, cmd.play_id, cmd.gain_db,
                     cmd.offset_s)
            self.player.play(cmd)
        elif isinstance(cmd, C.Stop):
            log.info("stop %s: %s", cmd.play_id, cmd.reason)
            self.player.stop(cmd.play_id, cmd.fade_s)
        elif isinstance(cmd, C.SetGain):
            self.player.set_gain(cmd.play_id, cmd.gain_db, cmd.cap_db)
        elif isinstance(cmd, C.Amplifier):
            if self.amplifier is not None:
                self.amplifier.on() if cmd.on else self.amplifier.off()
            if self.reporter is not None:
                self.reporter.update(amp_on=cmd.on)
        elif isinstance(cmd, C.Led):
            if self.led is not None:
                self.led.show(cmd.pattern)
        elif isinstance(cmd, C.Ack):
            log.info("ack %s %s %s", cmd.ref, cmd.state, cmd.reason)
            if self.inbound is not None:
                self.inbound.send_ack(cmd.ref, cmd.state, cmd.reason, now)
            if cmd.new_alert and self.reporter is not None:
                self.reporter.alert_received(cmd.ref)
        elif isinstance(cmd, C.Report):
            e = cmd.entry
            log.info("play log: %s %s %s %.0f s %s", e.kind, e.ref, e.result, e.played_s, e.reason)
            if self.reporter is not None:
                self.reporter.report(e)
        elif isinstance(cmd, C.StateChanged):
            log.info("state: %s %s", cmd.state, cmd.detail)
            if self.reporter is not None:
                st = self.station.status()
                self.reporter.state_changed(cmd.state, cmd.detail, item=st.item_ref, gain_db=st.gain_db)
            if self.notifier and self._ready.is_set():  # READY=1 must be systemd's first word from us
                self.notifier.status(f"{cmd.state} {cmd.detail}".strip())

    def _on_inbound(self, msg: Inbound) -> None:
        if self.inbound is None:
            return
        try:
            for ev in self.inbound.handle(msg.topic, msg.payload, msg.retained, self.clock.wall(),
                                          clock_trusted=self.clock_trusted, last_trusted=self.last_trusted):
                self._dispatch(ev, self.clock.wall())
        except Exception:
            log.exception("inbound message on %s could not be handled", msg.topic)
        finally:
            self.inbound.flush()

    # -- time ----------------------------------------------------------------------------------------

    def _judge_trust(self, wall: datetime) -> bool:
        synced = self.clock.synced()
        if synced:
            return True
        # Not (yet) synced: trust a clock that is not behind the last time we knew was good.
        return self.last_trusted is not None and wall >= self.last_trusted

    def _check_trust(self) -> None:
        trusted = self._judge_trust(self.clock.wall())
        if trusted != self.clock_trusted:
            self.clock_trusted = trusted
            log.warning("wall clock is %s", "trusted again" if trusted else "NOT trusted")
            self._dispatch(E.ClockTrustChanged(trusted), self.clock.wall())
            if self.reporter is not None:
                self.reporter.update(clock_trusted=trusted)

    def _persist(self) -> None:
        if self.state is None:
            return
        now = self.clock.wall()
        if self.clock_trusted:
            self.last_trusted = now
        if self.clock_trusted or self.last_alive is None or now > self.last_alive:
            self.last_alive = now
        # else: a stale boot clock (no RTC, no NTP yet) must not overwrite the last time the station knew it
        # was alive: that time bounds what may be reported missed once the clock is set right.
        try:
            self.state.save_times(last_alive=self.last_alive, last_trusted=self.last_trusted)
        except OSError as e:
            log.error("cannot persist station times: %s", e)

    def _feed_watchdog(self) -> None:
        if self.notifier is None or not self.notifier.enabled:
            return
        interval = self.notifier.watchdog_interval_s or 10.0
        mono = self.clock.monotonic()
        if mono - self._last_ping < interval:
            return
        parts = {"player": getattr(self.player, "alive", True)}
        if self.link is not None:
            parts["network"] = getattr(self.link, "alive", True)
        dead = [k for k, ok in parts.items() if not ok]
        if dead:
            # Starve the watchdog: systemd restarts a station whose audio or network thread is wedged.
            log.error("not feeding the watchdog: %s not alive", ", ".join(dead))
            return
        self._last_ping = mono
        self.notifier.watchdog()
