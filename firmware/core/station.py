"""The station's decisions: `Station.handle(event, now) -> list[Command]` and `next_deadline()`.

Pure: no clock reads, no I/O, no threads. After every event the station *reconciles*: it works out what
should be playing at `now` (an alert, a notice, the planned programme, or nothing) and emits the commands
that make it so. That one rule gives the hard cases for free: after a reboot, a link loss or a clock step the
station plays exactly what the plan says for the new `now` (joined at its offset, or skipped by policy),
never a burst of overdue items, and whatever was passed over is reported as missed with the reason.

Guard against double play: every wall instant the station has lived through is "processed" (the cursor and the
high-water mark). After a backward clock step what plays carries on to its planned length, and nothing new is
started until wall time is past the high-water mark again, so a programme is never played twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from firmware.core import commands as C
from firmware.core import events as E
from firmware.core.alerts import Alert
from firmware.core.planner import Planner, Segment
from firmware.core.policy import Policy
from firmware.core.schedule import ScheduleDoc
from firmware.core.sources import SequenceSpec, SpeechSpec, ToneSpec

JOIN_TOLERANCE_S = 2.0  # starting this late still counts as on time
MAX_LOOKBACK = timedelta(days=7)  # never report more than a week of missed items at once
MAX_SLEEP = timedelta(hours=1)

EXERCISE_INTRO = "Đây là tin diễn tập. Đây là tin diễn tập."  # "This is an exercise."
CANCEL_NOTICE = "Thông báo: tin cảnh báo vừa phát đã được hủy bỏ. Xin cảm ơn bà con."  # "The alert is cancelled."
# "Sorry, the programme ... could not be downloaded; it will be broadcast another time."
MISSING_NOTICE = "Xin lỗi bà con, chương trình {title} chưa tải về được, sẽ phát lại vào dịp khác."
CONTENT_MISSING = "content not available"  # the audio layer's reason when the cache has no such file


@dataclass(frozen=True, slots=True)
class StationSettings:
    amp_warmup_s: float = 1.5
    amp_hang_s: float = 30.0
    fade_s: float = 0.03
    id_prefix: str = "loa"  # makes play-log ids unique across stations and boots (the runtime adds a boot id)
    content_fallback: str = "notice"  # a programme's file missing at play time: "notice" (spoken) or "silence"
    station_id: str = "loa"  # ids of entries that are not plays (missed, refused) are derived from it, so the
    # district can deduplicate them even if two quick reboots both report the same miss


@dataclass(slots=True)
class _Playing:
    play_id: str
    kind: str  # "programme" | "alert" | "notice" | "test-tone"
    ref: str
    title: str
    level: str
    gain_db: float
    issued_at: datetime
    seg: Segment | None = None
    alert: Alert | None = None
    started_at: datetime | None = None
    planned_end: datetime | None = None  # shifted with clock steps, like started_at
    plan_shift: timedelta = timedelta(0)  # backward steps since it started: plan time = wall time - shift
    joined_late_s: float = 0.0
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StationStatus:
    state: str  # "booting" | "idle" | "programme" | "alert" | "notice" | "held" | "muted"
    item_kind: str | None
    item_ref: str | None
    item_title: str | None
    gain_db: float | None
    clock_trusted: bool
    muted: bool
    gain_offset_db: float
    amplifier_on: bool
    alert_id: str | None
    alerts_queued: int
    on_backup: bool
    link_up: bool


class Station:
    def __init__(
        self,
        policy: Policy,
        schedule: ScheduleDoc | None,
        tz: tzinfo,
        settings: StationSettings | None = None,
    ):
        self.policy = policy
        self.tz = tz
        self.settings = settings or StationSettings()
        self.planner = Planner(schedule, policy, tz)
        self.booted = False
        self.clock_trusted = False
        self.muted = False
        self.gain_offset_db = 0.0
        self.on_backup = False
        self.link_up = False
        self.amp_on = False
        self._idle_since: datetime | None = None
        self._cursor: datetime | None = None  # wall time up to which the plan has been accounted for
        self._last_alive: datetime | None = None  # the previous run's last alive: nothing before it is missed
        self._high_water: datetime | None = None  # latest wall time ever seen
        self._quiet_until: datetime | None = None  # after a backward step: start nothing before this
        self._gap_reason = "station was off"
        self._stop_reason: str | None = None  # why the plan moved under the current item (a clock step)
        self._started: set[str] = set()  # occurrences started at least once (later starts are resumes)
        self._finished: set[str] = set()  # occurrences that must not start again
        self._current: _Playing | None = None
        self._alert: Alert | None = None  # the alert that should be playing
        self._alert_queue: list[Alert] = []
        self._notice: tuple[str, str, object] | None = None  # (ref, title, spec) to speak next
        self._test_tone_due = False
        self._seq = 0
        self._entries = 0
        self._fault: str | None = None  # the last playback failure, until something plays again
        self._state = "booting"
        self._led = "booting"
        self._deadline: datetime | None = None

    # -- public API --------------------------------------------------------------------------------

    def handle(self, event: E.Event, now: datetime) -> list[C.Command]:
        now = now.astimezone(self.tz)
        out: list[C.Command] = []
        handler = getattr(self, "on_" + _snake(type(event).__name__), None)
        if handler is None:
            raise TypeError(f"Station cannot handle {type(event).__name__}")
        handler(event, now, out)
        if self.booted:
            self._reconcile(now, out)
        if self._high_water is None or now > self._high_water:
            self._high_water = now
        # Audio first: the runtime carries commands out in order, and an alert must not wait behind an
        # ack or a play-log write (an fsync on an SD card). Stable, so each group keeps its own order.
        out.sort(key=_urgency)
        return out

    def next_deadline(self) -> datetime | None:
        return self._deadline

    def status(self) -> StationStatus:
        cur = self._current
        return StationStatus(
            state=self._state,
            item_kind=cur.kind if cur else None,
            item_ref=cur.ref if cur else None,
            item_title=cur.title if cur else None,
            gain_db=cur.gain_db if cur else None,
            clock_trusted=self.clock_trusted,
            muted=self.muted,
            gain_offset_db=self.gain_offset_db,
            amplifier_on=self.amp_on,
            alert_id=self._alert.id if self._alert else None,
            alerts_queued=len(self._alert_queue),
            on_backup=self.on_backup,
            link_up=self.link_up,
        )

    # -- event handlers ----------------------------------------------------------------------------

    def on_booted(self, ev: E.Booted, now: datetime, out: list) -> None:
        self.booted = True
        self.clock_trusted = ev.clock_trusted
        self._last_alive = ev.last_alive.astimezone(self.tz) if ev.last_alive is not None else None
        if ev.last_alive is not None and ev.last_alive < now:
            self._cursor = max(ev.last_alive.astimezone(self.tz), now - MAX_LOOKBACK)
            # Booted on an untrusted clock, the wall time of the boot itself is unknown: what is found missed
            # once the clock is trusted fell either while the power was off or while the station held.
            self._gap_reason = "station was off" if ev.clock_trusted else "station was off, then held: clock untrusted"
        else:
            self._cursor = now
            self._gap_reason = "station started"
        out.append(C.Led("booting"))
        if ev.interrupted:
            self._account_interrupted(ev.interrupted, ev.last_alive, now, out)

    def playing_record(self) -> dict | None:
        """What plays now, as plain data the runtime persists; given back in `Booted.interrupted`."""
        cur = self._current
        if cur is None or cur.kind not in ("programme", "alert"):
            return None
        rec = {"kind": cur.kind, "ref": cur.ref, "title": cur.title, "level": cur.level, "gain_db": cur.gain_db,
               "issued_at": cur.issued_at.isoformat()}
        if cur.seg is not None:
            rec.update(requested_start=cur.seg.requested_start.isoformat(),
                       requested_end=cur.seg.requested_end.isoformat(), occurrence=cur.seg.occurrence)
        if cur.alert is not None:
            a = cur.alert
            rec["alert"] = {"id": a.id, "issued": a.issued.isoformat(), "expires": a.expires.isoformat(),
                            "status": a.status, "msg_type": a.msg_type, "severity": a.severity,
                            "headline": a.headline, "text": a.text, "references": list(a.references),
                            "audio_url": a.audio_url, "audio_sha256": a.audio_sha256, "tone": a.tone,
                            "repeat": a.repeat}
        return rec

    def _account_interrupted(self, rec: dict, last_alive: datetime | None, now: datetime, out: list) -> None:
        """The previous run died while something played: log it as partial; an alert still in force plays
        again (its retained copy would be refused as already seen)."""
        try:
            started = datetime.fromisoformat(rec["issued_at"])
            alert = rec.get("alert")
            if rec["kind"] == "alert" and alert:
                a = Alert(alert["id"], datetime.fromisoformat(alert["issued"]),
                          datetime.fromisoformat(alert["expires"]), alert["status"], alert["msg_type"],
                          alert["severity"], alert["headline"], alert["text"], tuple(alert["references"]),
                          alert["audio_url"], alert["audio_sha256"], alert["tone"], alert["repeat"])
                req_start, req_end = a.issued, a.expires
            else:
                a = None
                req_start = datetime.fromisoformat(rec["requested_start"])
                req_end = datetime.fromisoformat(rec["requested_end"])
        except (KeyError, TypeError, ValueError) as e:
            out.append(C.StateChanged("booting", f"unreadable record of the interrupted item: {e}"))
            return
        end = last_alive if last_alive is not None and last_alive > started else None
        played = (end - started).total_seconds() if end else 0.0
        self._report(out, rec["kind"], rec["ref"], rec.get("title", rec["ref"]), rec.get("level", ""), req_start,
                     req_end, started, end, played, rec.get("gain_db"), "partial",
                     [f"interrupted: the station stopped unexpectedly (power cut or crash); played at least "
                      f"{played:.0f} s"])
        if a is not None and now < a.expires and a.status != "test":
            self._alert = a  # plays again from the start on the reconcile that follows

    def on_deadline_reached(self, ev: E.DeadlineReached, now: datetime, out: list) -> None:
        pass  # reconcile does the work

    def on_clock_trust_changed(self, ev: E.ClockTrustChanged, now: datetime, out: list) -> None:
        self.clock_trusted = ev.trusted
        if not ev.trusted:
            self._gap_reason = "held: clock untrusted"

    def on_clock_stepped(self, ev: E.ClockStepped, now: datetime, out: list) -> None:
        cur = self._current
        if cur is not None:
            # Keep "how long has it played" true in real time across the jump.
            shift = timedelta(seconds=ev.delta_s)
            cur.issued_at += shift
            cur.started_at = cur.started_at + shift if cur.started_at else None
            cur.planned_end = cur.planned_end + shift if cur.planned_end else None
            if ev.delta_s < 0:
                # Audio that plays carries on to its planned length: the item is followed in the plan's
                # time, not the repeated wall time (a forward step still ends it: its slot is gone).
                cur.plan_shift += shift
        self._stop_reason = f"clock stepped {'forward' if ev.delta_s > 0 else 'back'} {abs(ev.delta_s):.0f} s"
        if ev.delta_s > 0:
            self._gap_reason = f"clock stepped forward {ev.delta_s:.0f} s"
        else:
            # Everything up to the high-water mark was already lived through: don't start it again. The mark
            # includes the instant just before the step (now - delta), which the station may not have seen.
            before = now - timedelta(seconds=ev.delta_s)
            mark = max(before, self._high_water) if self._high_water is not None else before
            self._high_water = mark
            if now < mark:
                self._quiet_until = mark

    def on_playback_started(self, ev: E.PlaybackStarted, now: datetime, out: list) -> None:
        cur = self._current
        if cur is None or cur.play_id != ev.play_id or cur.started_at is not None:
            return
        cur.started_at = now
        self._fault = None  # audio reached the sink: whatever failed before works again
        if cur.kind == "alert" and cur.alert is not None:
            out.append(C.Ack(cur.alert.id, "playing"))

    def on_playback_ended(self, ev: E.PlaybackEnded, now: datetime, out: list) -> None:
        cur = self._current
        if cur is None or cur.play_id != ev.play_id:
            return  # an item we had already stopped and accounted for
        completed = ev.completed
        if cur.seg is not None:
            # The player ended it (source exhausted, or cut at max_s): never start this occurrence again.
            self._finished.add(cur.seg.occurrence)
            completed = completed or self._planned_end_reached(cur, now)
        self._finish(cur, now, out, played_s=ev.played_s, completed=completed,
                     reason="" if completed else "stopped by the player")

    def on_playback_failed(self, ev: E.PlaybackFailed, now: datetime, out: list) -> None:
        cur = self._current
        if cur is None or cur.play_id != ev.play_id:
            return
        if cur.kind == "programme" and CONTENT_MISSING in ev.reason and ev.played_s == 0:
            # The file never arrived: the programme is missed (not a device fault), and the village hears why
            # rather than dead air, if the commune chose so.
            self._finish(cur, now, out, played_s=0.0, completed=False, missed=f"content: {ev.reason}")
            if self.settings.content_fallback == "notice" and cur.seg is not None:
                title = cur.seg.programme.title
                self._notice = (f"missing-{cur.ref}", f"Thông báo thiếu nội dung: {title}",
                                SpeechSpec(MISSING_NOTICE.format(title=title)))
            return
        self._fault = ev.reason  # shown as state "fault" (LED, telemetry) until something plays again
        self._finish(cur, now, out, played_s=ev.played_s, completed=False, failed=ev.reason)

    def on_source_note(self, ev: E.SourceNote, now: datetime, out: list) -> None:
        cur = self._current
        if cur is not None and cur.play_id == ev.play_id and len(cur.reasons) < 50:
            cur.reasons.append(f"{now:%H:%M:%S} {ev.note}")

    def on_alert_received(self, ev: E.AlertReceived, now: datetime, out: list) -> None:
        a = ev.alert
        out.append(C.Ack(a.id, "received", new_alert=a.msg_type != "cancel"))
        if a.status == "test":
            out.append(C.Ack(a.id, "done", "test alert: verified, nothing played"))
            return
        if a.msg_type == "cancel":
            self._cancel(a, now, out)
            return
        if a.msg_type == "update":
            refs = set(a.references)
            if self._alert is not None and self._alert.id in refs:
                self._alert = a
                self._stop_current(now, out, f"updated by {a.id}", ack_alert_done=f"updated by {a.id}")
                return
            for i, q in enumerate(self._alert_queue):
                if q.id in refs:
                    self._alert_queue[i] = a
                    out.append(C.Ack(q.id, "done", f"updated by {a.id} before it played"))
                    return
        if now >= a.expires:
            out.append(C.Ack(a.id, "done", "expired before it could play"))
            return
        if self._alert is None:
            self._alert = a
        elif a.rank > self._alert.rank:
            preempted = self._alert
            self._alert = a
            self._stop_current(now, out, f"preempted by more severe alert {a.id}")
            self._alert_queue.insert(0, preempted)  # plays again, from the start, afterwards
        else:
            # equal or lower severity waits its turn: most severe first, then in arrival order
            pos = len(self._alert_queue)
            for i, q in enumerate(self._alert_queue):
                if a.rank > q.rank:
                    pos = i
                    break
            self._alert_queue.insert(pos, a)

    def on_schedule_received(self, ev: E.ScheduleReceived, now: datetime, out: list) -> None:
        if not isinstance(ev.schedule, ScheduleDoc):
            raise TypeError("ScheduleReceived.schedule must be a ScheduleDoc")
        self.planner = Planner(ev.schedule, self.policy, self.tz)
        cur = self._current
        if cur is not None and cur.kind == "programme":
            seg = self.planner.at(now - cur.plan_shift)
            if seg is None or cur.seg is None or seg.occurrence != cur.seg.occurrence:
                self._stop_current(now, out, "schedule replaced")

    def on_policy_received(self, ev: E.PolicyReceived, now: datetime, out: list) -> None:
        # The plan is recomputed under the new rules; a programme they no longer allow stops (faded).
        if not isinstance(ev.policy, Policy):
            raise TypeError("PolicyReceived.policy must be a Policy")
        self.policy = ev.policy
        self.planner = Planner(self.planner.schedule, self.policy, self.tz)
        cur = self._current
        if cur is not None and cur.kind == "programme":
            seg = self.planner.at(now)
            if seg is None or cur.seg is None or seg.occurrence != cur.seg.occurrence:
                self._stop_current(now, out, "policy replaced")
            elif seg.cap_db != cur.seg.cap_db:  # same programme, the window's cap changed
                cur.seg = seg
                cur.gain_db = self._programme_gain(seg)
                out.append(C.SetGain(cur.play_id, cur.gain_db, seg.cap_db))

    def on_button_pressed(self, ev: E.ButtonPressed, now: datetime, out: list) -> None:
        cur = self._current
        if ev.long:
            if cur is not None and cur.kind != "alert":
                if cur.seg is not None:
                    self._finished.add(cur.seg.occurrence)
                self._stop_current(now, out, "stopped by technician button")
        elif self._alert is None and (cur is None or cur.kind != "alert"):
            self._test_tone_due = True

    def on_stopping(self, ev: E.Stopping, now: datetime, out: list) -> None:
        # The amplifier stays on here: the Stop's fade is only queued in the player, and switching the relay
        # now would cut it (and click). The app switches it off after the player has faded and closed.
        self._stop_current(now, out, "station stopping")
        self.booted = False  # no reconcile after this: nothing new starts

    def on_power_changed(self, ev: E.PowerChanged, now: datetime, out: list) -> None:
        self.on_backup = ev.on_backup

    def on_link_changed(self, ev: E.LinkChanged, now: datetime, out: list) -> None:
        self.link_up = ev.up

    def on_mute_changed(self, ev: E.MuteChanged, now: datetime, out: list) -> None:
        self.muted = ev.muted

    def on_gain_offset_changed(self, ev: E.GainOffsetChanged, now: datetime, out: list) -> None:
        self.gain_offset_db = ev.offset_db
        cur = self._current
        if cur is not None and cur.kind == "programme" and cur.seg is not None:
            cur.gain_db = self._programme_gain(cur.seg)
            out.append(C.SetGain(cur.play_id, cur.gain_db, cur.seg.cap_db))

    # -- the reconcile step --------------------------------------------------------------------------

    def _reconcile(self, now: datetime, out: list) -> None:
        self._expire_alerts(now, out)
        if self._quiet_until is not None and now >= self._quiet_until:
            self._quiet_until = None

        if self._alert is not None:
            self._ensure_alert(now, out)
        elif self._current is not None and self._current.kind in ("notice", "test-tone"):
            pass  # let the notice finish
        elif self._notice is not None:
            ref, title, spec = self._notice
            self._notice = None
            self._start_notice(now, out, "notice", ref, title, spec)
        elif self._test_tone_due:
            self._test_tone_due = False
            self._start_notice(now, out, "test-tone", "test-tone", "Âm thử", ToneSpec("test", 3.0),
                               gain=min(-12.0, self.policy.alert_gain_db))
        else:
            self._follow_plan(now, out)

        self._account_passed(now, out)
        self._stop_reason = None
        self._amplifier(now, out)
        self._update_state(out)
        self._deadline = self._compute_deadline(now)

    def _may_play_programmes(self) -> str | None:
        """None when scheduled audio may play now, else why not."""
        if not self.clock_trusted and self.policy.hold_on_untrusted_clock:
            return "held: clock untrusted"
        if self.muted:
            return "muted by the district"
        return None

    def _follow_plan(self, now: datetime, out: list) -> None:
        seg = self.planner.at(now)
        blocked = self._may_play_programmes()
        cur = self._current
        if cur is not None and cur.kind == "programme":
            if cur.plan_shift:
                # Carried over a backward step: where it is in the plan is where it would be without the step.
                seg = self.planner.at(now - cur.plan_shift)
            same = seg is not None and cur.seg is not None and seg.occurrence == cur.seg.occurrence
            if same and cur.plan_shift and self._planned_end_reached(cur, now):
                same = False
            if same and blocked is None:
                if seg.key != cur.seg.key:  # crossed into an adjacent window: new cap
                    cur.seg = seg
                    cur.gain_db = self._programme_gain(seg)
                    out.append(C.SetGain(cur.play_id, cur.gain_db, seg.cap_db))
                return
            if blocked:
                why = blocked
            elif self._planned_end_reached(cur, now):
                why = "planned end"
            else:
                why = self._stop_reason or "no longer in the plan"
            self._stop_current(now, out, why, completed_if_planned=True)
            if cur.plan_shift:
                seg = self.planner.at(now)
            cur = None
        if seg is None or blocked is not None or self._current is not None:
            return
        if seg.occurrence in self._finished:
            return
        resume = seg.occurrence in self._started
        if self._quiet_until is not None:
            # Wall time is repeating a stretch already lived through (a backward step): start nothing, not
            # even a resume, which would replay from a point already played. Once past the high-water mark,
            # a resume picks up at the offset that is due then.
            return
        late = (now - seg.start).total_seconds()
        if late > JOIN_TOLERANCE_S and not resume and self.policy.join_in_progress == "skip":
            self._finished.add(seg.occurrence)
            self._log_missed(seg, f"{self._gap_reason}; started {late:.0f} s late and join_in_progress = skip",
                             out)
            return
        self._start_programme(seg, now, out, late, resume)

    def _start_programme(self, seg: Segment, now: datetime, out: list, late: float, resume: bool) -> None:
        self._seq += 1
        p = seg.programme
        gain = self._programme_gain(seg)
        play = _Playing(f"play-{self._seq}", "programme", p.id, p.title, p.level, gain, now, seg=seg,
                        planned_end=seg.occurrence_end)
        play.reasons.extend(seg.reasons)
        offset = seg.offset_s + max(0.0, late)
        if resume:
            play.reasons.append(f"resumed at {offset:.0f} s")
        elif late > JOIN_TOLERANCE_S:
            play.joined_late_s = late
            play.reasons.append(f"joined late by {late:.0f} s ({self._gap_reason})")
        self._started.add(seg.occurrence)
        self._current = play
        out.append(
            C.Play(play.play_id, "programme", p.id, p.source.spec(), gain, seg.cap_db, offset_s=offset,
                   max_s=(seg.occurrence_end - now).total_seconds(), fade_s=self.settings.fade_s)
        )

    @staticmethod
    def _planned_end_reached(cur: _Playing, now: datetime) -> bool:
        return cur.planned_end is not None and now >= cur.planned_end - timedelta(seconds=JOIN_TOLERANCE_S)

    def _programme_gain(self, seg: Segment) -> float:
        return min(seg.programme.gain_db + self.gain_offset_db, seg.cap_db)

    def _start_notice(self, now, out, kind, ref, title, spec, gain: float | None = None) -> None:
        self._seq += 1
        g = self.policy.alert_gain_db if gain is None else gain
        if self._current is not None:
            self._stop_current(now, out, f"interrupted by {kind}")
        self._current = _Playing(f"play-{self._seq}", kind, ref, title, "notice", g, now)
        out.append(C.Play(self._current.play_id, kind, ref, spec, g, g, fade_s=self.settings.fade_s))

    # -- alerts ----------------------------------------------------------------------------------------

    def _ensure_alert(self, now: datetime, out: list) -> None:
        a = self._alert
        cur = self._current
        if cur is not None and cur.kind == "alert" and cur.alert is a:
            return
        self._seq += 1
        g = self.policy.alert_gain_db
        play = _Playing(f"play-{self._seq}", "alert", a.id, a.headline or a.id, a.status, g, now, alert=a)
        if cur is not None:
            # Play replaces whatever plays with a short fade: one command, so preemption costs one block.
            self._finish(cur, now, out, played_s=None, completed=False, reason=f"interrupted by alert {a.id}")
        self._current = play
        out.append(C.Play(play.play_id, "alert", a.id, alert_source(a), g, g,
                          max_s=max(0.0, (a.expires - now).total_seconds()), fade_s=self.settings.fade_s))

    def _cancel(self, a: Alert, now: datetime, out: list) -> None:
        refs = set(a.references)
        hit = []
        if self._alert is not None and self._alert.id in refs:
            hit.append(self._alert.id)
            self._alert = None
            self._stop_current(now, out, f"cancelled by {a.id}", ack_alert_done=f"cancelled by {a.id}")
            self._notice = ("cancel-notice", "Thông báo hủy tin cảnh báo",
                            SequenceSpec((ToneSpec("chime", 1.5), SpeechSpec(CANCEL_NOTICE)), repeat=1))
        kept = []
        for q in self._alert_queue:
            if q.id in refs:
                hit.append(q.id)
                out.append(C.Ack(q.id, "done", f"cancelled by {a.id} before it played"))
            else:
                kept.append(q)
        self._alert_queue = kept
        if self._alert is None and self._alert_queue:
            self._alert = self._alert_queue.pop(0)
        out.append(C.Ack(a.id, "done", f"cancelled {', '.join(hit)}" if hit else "nothing to cancel"))

    def _expire_alerts(self, now: datetime, out: list) -> None:
        kept = []
        for q in self._alert_queue:
            if now >= q.expires:
                out.append(C.Ack(q.id, "done", "expired before it could play"))
            else:
                kept.append(q)
        self._alert_queue = kept
        if self._alert is not None and now >= self._alert.expires:
            a = self._alert
            self._alert = None
            cur = self._current
            if cur is not None and cur.alert is a:
                self._stop_current(now, out, "alert expired", ack_alert_done="expired")
            else:
                out.append(C.Ack(a.id, "done", "expired"))
        if self._alert is None and self._alert_queue:
            self._alert = self._alert_queue.pop(0)

    # -- ending items and the play log -----------------------------------------------------------------

    def _stop_current(self, now, out, reason: str, *, ack_alert_done: str | None = None,
                      completed_if_planned: bool = False) -> None:
        cur = self._current
        if cur is None:
            return
        out.append(C.Stop(cur.play_id, reason, self.settings.fade_s))
        completed = completed_if_planned and self._planned_end_reached(cur, now)
        self._finish(cur, now, out, played_s=None, completed=completed, reason=reason, ack=ack_alert_done)

    def _finish(self, cur: _Playing, now: datetime, out: list, *, played_s: float | None, completed: bool,
                reason: str = "", failed: str | None = None, ack: str | None = None,
                missed: str | None = None) -> None:
        """Account for the end of the current item: play log, acks, what comes next."""
        self._current = None
        if played_s is None:
            played_s = (now - cur.started_at).total_seconds() if cur.started_at else 0.0
        reasons = list(cur.reasons)
        if missed:
            result = "missed"
            reasons.append(missed)
        elif failed:
            result = "failed"
            reasons.append(failed)
        elif completed and not cur.joined_late_s and not any(r.startswith(("cut", "capped")) for r in reasons):
            result = "played"
        elif played_s <= 0 and cur.started_at is None:
            result = "missed"
            reasons.append(reason)
        else:
            result = "partial"
            if reason and reason != "planned end":
                reasons.append(reason)
        if cur.kind == "programme" and cur.seg is not None:
            if completed or failed or missed:
                self._finished.add(cur.seg.occurrence)
            s = cur.seg
            self._report(out, "programme", s.programme.id, s.programme.title, s.level, s.requested_start,
                         s.requested_end, cur.started_at, now, played_s, cur.gain_db, result, reasons)
        elif cur.kind == "alert" and cur.alert is not None:
            a = cur.alert
            if failed:
                out.append(C.Ack(a.id, "failed", failed))
            elif completed:
                out.append(C.Ack(a.id, "done", "expired" if now >= a.expires else ""))
            elif ack:
                out.append(C.Ack(a.id, "done", ack))
            if (completed or failed) and self._alert is a:
                self._alert = self._alert_queue.pop(0) if self._alert_queue else None
            self._report(out, "alert", a.id, a.headline or a.id, a.status, a.issued, a.expires, cur.started_at,
                         now, played_s, cur.gain_db, result, reasons)

    def _log_missed(self, seg: Segment, why: str, out: list) -> None:
        result = "refused" if seg.refused else "missed"
        # Not a play: one such entry per occurrence, whichever boot reports it, so its id says which.
        self._report(out, "programme", seg.programme.id, seg.programme.title, seg.level, seg.requested_start,
                     seg.requested_end, None, None, 0.0, None, result, [why],
                     entry_id=f"{self.settings.station_id}.{seg.occurrence}.{result}")

    def _report(self, out, kind, ref, title, level, req_start, req_end, start, end, played_s, gain, result,
                reasons, entry_id: str | None = None) -> None:
        self._entries += 1
        out.append(C.Report(C.PlayLogEntry(
            entry_id=entry_id or f"{self.settings.id_prefix}.{self._entries}", kind=kind, ref=ref, title=title,
            level=level,
            requested_start=req_start, requested_end=req_end, actual_start=start, actual_end=end,
            played_s=round(max(0.0, played_s), 3), gain_db=gain, result=result,
            reason="; ".join(r for r in reasons if r))))

    def _account_passed(self, now: datetime, out: list) -> None:
        """Report every planned item whose start has passed without it being started."""
        if self._cursor is None:
            self._cursor = now
        if now <= self._cursor:
            return
        if not self.clock_trusted:
            return  # an untrusted wall clock can't tell what was missed; account once it is trusted
        # Only what fell after the last time the station knew it was alive can be missed: before it, the last
        # run accounted for the plan (a stale boot clock stepped forward would otherwise re-report days).
        start = max(self._cursor, now - MAX_LOOKBACK, self._last_alive or self._cursor)
        cur = self._current
        blocked = self._may_play_programmes()
        for seg in self.planner.segments_between(start, now):
            if seg.refused:
                self._log_missed(seg, seg.reasons[0], out)
                continue
            if seg.offset_s > 0 or seg.occurrence in self._started or seg.occurrence in self._finished:
                continue
            if self._alert is not None:
                why = f"alert {self._alert.id} in progress"
            elif blocked:
                why = blocked
            elif cur is not None and cur.kind in ("notice", "test-tone") and seg.end > now:
                continue  # it starts, joined a few seconds late, once the notice is over
            else:
                why = self._gap_reason
            self._finished.add(seg.occurrence)
            self._log_missed(seg, why, out)
        self._cursor = now
        if self._alert is None and self._may_play_programmes() is None:
            self._gap_reason = "station was off"

    # -- amplifier, state, deadline ----------------------------------------------------------------------

    def _amplifier(self, now: datetime, out: list) -> None:
        need = self._current is not None or self._notice is not None or self._test_tone_due
        if not need and self._may_play_programmes() is None:
            nxt = self.planner.next_start(now)
            if nxt is not None and nxt.occurrence not in self._finished and (
                    nxt.start - now).total_seconds() <= self.settings.amp_warmup_s:
                need = True
        if need:
            self._idle_since = None
            if not self.amp_on:
                self.amp_on = True
                out.append(C.Amplifier(True))
        elif self.amp_on:
            if self._idle_since is None:
                self._idle_since = now
            if (now - self._idle_since).total_seconds() >= self.settings.amp_hang_s:
                self.amp_on = False
                self._idle_since = None
                out.append(C.Amplifier(False))

    def _update_state(self, out: list) -> None:
        cur = self._current
        if cur is not None:
            state = cur.kind if cur.kind in ("programme", "alert") else "notice"
        elif self._alert is not None:
            state = "alert"
        elif self._fault is not None:
            state = "fault"
        elif not self.clock_trusted and self.policy.hold_on_untrusted_clock:
            state = "held"
        elif self.muted:
            state = "muted"
        else:
            state = "idle"
        detail = f"{cur.kind} {cur.ref}" if cur else (self._fault or "")
        if state != self._state:
            self._state = state
            out.append(C.StateChanged(state, detail))
        led = {"alert": "alert", "programme": "playing", "notice": "playing", "fault": "fault"}.get(
            state, "online" if self.link_up else "offline")
        if led != self._led:
            self._led = led
            out.append(C.Led(led))

    def _compute_deadline(self, now: datetime) -> datetime:
        cands = [now + MAX_SLEEP]
        nc = self.planner.next_change(now)
        if nc is not None:
            cands.append(nc)
        nxt = self.planner.next_start(now)
        if nxt is not None:
            warm = nxt.start - timedelta(seconds=self.settings.amp_warmup_s)
            if warm > now:
                cands.append(warm)
        if self._alert is not None:
            cands.append(self._alert.expires)
        cands.extend(q.expires for q in self._alert_queue)
        if self.amp_on and self._idle_since is not None:
            cands.append(self._idle_since + timedelta(seconds=self.settings.amp_hang_s))
        if self._quiet_until is not None:
            cands.append(self._quiet_until)
        cur = self._current
        if cur is not None and cur.plan_shift:
            if cur.planned_end is not None:
                cands.append(cur.planned_end)
            nc = self.planner.next_change(now - cur.plan_shift)
            if nc is not None:
                cands.append(nc + cur.plan_shift)
        future = [c for c in cands if c > now]
        return min(future) if future else now + MAX_SLEEP


def alert_source(a: Alert) -> SequenceSpec:
    """Attention signal, exercise announcement (for exercises), then the message, repeated."""
    from firmware.core.sources import FileSpec

    parts = []
    if a.tone:
        parts.append(ToneSpec("attention", 4.0))
    if a.status == "exercise":
        parts.append(SpeechSpec(EXERCISE_INTRO))
    if a.audio_url:
        parts.append(FileSpec(url=a.audio_url, sha256=a.audio_sha256))
    else:
        text = ". ".join(t for t in (a.headline, a.text) if t) or "Thông báo khẩn cấp."
        parts.append(SpeechSpec(text))
    return SequenceSpec(tuple(parts), repeat=max(1, a.repeat), gap_s=1.0)


_URGENCY = {C.Play: 0, C.Stop: 0, C.SetGain: 0, C.Amplifier: 1, C.Ack: 2, C.Led: 3, C.StateChanged: 3,
            C.Report: 4}


def _urgency(cmd) -> int:
    return _URGENCY.get(type(cmd), 5)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
