"""What must be playing at any instant, at what gain, and when the next change is due.

A day's plan is a pure function of (schedule, policy, date), so it is the same however often the station
reboots and whatever happened earlier: caps are applied to the plan, and the station only ever plays a part
of it. Per local date, the programmes that occur that day are queued:

1. ordered by requested start, then level (priority first), then declared order;
2. an item that is due while another plays waits for the next boundary; among the waiting ones a priority
   bulletin goes first (the "bản tin ưu tiên" of the rules), then the earliest, then the first declared;
3. it must start inside an allowed window; one that would run past the window's end is cut there (or goes on
   into a window that starts exactly then, at that window's cap);
4. session and minute caps cut or refuse what would exceed them;
5. gain is the programme's gain, capped by the window.

Every resolution is recorded on the segment as a reason, so the day simulator and the play log can say why.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from firmware.core.policy import WEEKDAYS, Policy
from firmware.core.schedule import Programme, ScheduleDoc

LEVEL_RANK = {"priority": 1, "normal": 0}
MIN_PLAY_S = 1.0  # a cut that leaves less than this is a refusal, not a one-second blip
_SEARCH_DAYS = 8


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of one programme occurrence at one gain. `refused` ones have start == end."""

    key: str  # unique: "<programme>@<date>#<n>"
    occurrence: str  # "<programme>@<date>"
    programme: Programme
    start: datetime
    end: datetime
    offset_s: float  # into the programme's audio
    gain_db: float
    cap_db: float
    requested_start: datetime
    requested_end: datetime
    occurrence_end: datetime  # end of the occurrence's last segment
    reasons: tuple[str, ...] = ()
    refused: bool = False

    @property
    def level(self) -> str:
        return self.programme.level

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(slots=True)
class _Candidate:
    programme: Programme
    order: int
    start: datetime

    @property
    def rank(self) -> int:
        return LEVEL_RANK[self.programme.level]


def _hm(t: datetime) -> str:
    return t.strftime("%H:%M") if t.second == 0 else t.strftime("%H:%M:%S")


def _mins(s: float) -> str:
    return f"{s / 60:.0f} min" if s >= 60 else f"{s:.0f} s"


class Planner:
    """Plans days lazily and caches the last few; lookups are O(log n) within a day."""

    def __init__(self, schedule: ScheduleDoc | None, policy: Policy, tz: tzinfo, cache_days: int = 16):
        self.schedule = schedule
        self.policy = policy
        self.tz = tz
        self._cache: OrderedDict[date, tuple[tuple[Segment, ...], list[datetime]]] = OrderedDict()
        self._cache_days = cache_days

    # -- public lookups ----------------------------------------------------------------------------

    def day(self, d: date) -> tuple[Segment, ...]:
        """All segments of local date `d` (those that start on it), refused ones included, by start."""
        return self._day(d)[0]

    def at(self, t: datetime) -> Segment | None:
        """The playable segment containing instant `t`, if any."""
        t = t.astimezone(self.tz)
        found = None
        for d in (t.date() - timedelta(days=1), t.date()):
            segs, starts = self._day(d)
            i = bisect_right(starts, t) - 1
            # playable segments of one day never overlap; refused ones are zero-length and skipped
            while i >= 0:
                s = segs[i]
                if not s.refused:
                    if s.start <= t < s.end:
                        found = s
                    break
                i -= 1
        return found

    def next_change(self, t: datetime) -> datetime | None:
        """The first segment start or end strictly after `t` (within about a week)."""
        t = t.astimezone(self.tz)
        best = None
        d0 = t.date() - timedelta(days=1)
        for k in range(_SEARCH_DAYS + 1):
            for s in self._day(d0 + timedelta(days=k))[0]:
                if s.refused:
                    continue
                for b in (s.start, s.end):
                    if b > t and (best is None or b < best):
                        best = b
            # a later day's segments all start after this day's midnight: stop once past it
            if best is not None and best <= datetime.combine(d0 + timedelta(days=k + 1), time(), tzinfo=self.tz):
                return best
        return best

    def next_start(self, t: datetime) -> Segment | None:
        """The first playable segment starting strictly after `t` (within about a week)."""
        t = t.astimezone(self.tz)
        for k in range(_SEARCH_DAYS + 1):
            segs, starts = self._day(t.date() + timedelta(days=k))
            for s in segs[bisect_right(starts, t) :]:
                if not s.refused:
                    return s
        return None

    def segments_between(self, t0: datetime, t1: datetime) -> list[Segment]:
        """Segments (refused ones too) that start in (t0, t1], in order."""
        t0, t1 = t0.astimezone(self.tz), t1.astimezone(self.tz)
        if t1 <= t0:
            return []
        out = []
        d = t0.date() - timedelta(days=1)
        while d <= t1.date():
            out.extend(s for s in self._day(d)[0] if t0 < s.start <= t1)
            d += timedelta(days=1)
        out.sort(key=lambda s: (s.start, s.requested_start))
        return out

    # -- building a day ----------------------------------------------------------------------------

    def _day(self, d: date) -> tuple[tuple[Segment, ...], list[datetime]]:
        hit = self._cache.get(d)
        if hit is not None:
            self._cache.move_to_end(d)
            return hit
        segs = tuple(self._build(d, seed_from_previous=True))
        entry = (segs, [s.start for s in segs])
        self._cache[d] = entry
        if len(self._cache) > self._cache_days:
            self._cache.popitem(last=False)
        return entry

    def _occurrences(self, d: date) -> list[_Candidate]:
        if self.schedule is None:
            return []
        midnight = datetime.combine(d, time(), tzinfo=self.tz)
        return [
            _Candidate(p, i, midnight + timedelta(minutes=p.start))
            for i, p in enumerate(self.schedule.programmes)
            if p.recurrence.occurs_on(d)
        ]

    def _build(self, d: date, *, seed_from_previous: bool) -> list[Segment]:
        pending = sorted(self._occurrences(d), key=lambda c: (c.start, -c.rank, c.order))
        cursor = datetime.combine(d, time(), tzinfo=self.tz)
        if seed_from_previous:
            # a programme of yesterday evening that runs past midnight holds the speaker
            prev = [s for s in self._build(d - timedelta(days=1), seed_from_previous=False) if not s.refused]
            if prev:
                cursor = max(cursor, max(s.end for s in prev))
        out: list[Segment] = []
        last_played: _Candidate | None = None
        sessions = 0
        session_used = day_used = 0.0
        session_end: datetime | None = None
        gap = timedelta(minutes=self.policy.session_gap_minutes)

        while pending:
            ready = [c for c in pending if c.start <= cursor]
            if ready:
                c = min(ready, key=lambda c: (-c.rank, c.start, c.order))
                begin = max(c.start, cursor)
            else:
                c = pending[0]
                begin = c.start
            pending.remove(c)
            p = c.programme
            planned = p.planned_s
            req_end = c.start + timedelta(seconds=planned)
            occ = f"{p.id}@{d.isoformat()}"
            reasons: list[str] = []

            def refuse(why: str, c=c, p=p, occ=occ, req_end=req_end, begin=begin) -> None:
                out.append(
                    Segment(f"{occ}#0", occ, p, begin, begin, 0.0, p.gain_db, p.gain_db, c.start, req_end,
                            begin, (why,), refused=True)
                )

            if begin > c.start and last_played is not None:
                lp = last_played.programme
                if p.level == "priority" and lp.level == "normal":
                    reasons.append(f'inserted at {_hm(begin)} after "{lp.id}" (due {_hm(c.start)})')
                else:
                    reasons.append(f'delayed {_mins((begin - c.start).total_seconds())}: "{lp.id}" was playing')

            w = self.policy.window_at(begin)
            if w is None:
                day = WEEKDAYS[begin.weekday()]
                what = "starts" if begin == c.start else "would start"
                refuse(f"{what} {_hm(begin)} on {day.capitalize()}, outside allowed windows "
                       f"{self.policy.describe_windows(day)}")
                continue

            # session and daily caps, counted on the plan
            new_session = session_end is None or begin - session_end > gap
            if new_session and sessions >= self.policy.max_sessions_per_day:
                refuse(f"session cap, already {sessions} session(s) today "
                       f"(max {self.policy.max_sessions_per_day})")
                continue
            s_left = self.policy.max_session_minutes * 60 - (0.0 if new_session else session_used)
            d_left = self.policy.max_minutes_per_day * 60 - day_used
            allowed = min(planned, s_left, d_left)
            shortest = min(MIN_PLAY_S, planned)  # a short jingle is not a "cut to nothing"
            if allowed < shortest - 1e-9:
                which = "session" if s_left <= d_left else "daily"
                limit = self.policy.max_session_minutes if which == "session" else self.policy.max_minutes_per_day
                refuse(f"{which} limit of {limit:g} min reached")
                continue
            if allowed < planned:
                which = "session" if s_left <= d_left else "daily"
                limit = self.policy.max_session_minutes if which == "session" else self.policy.max_minutes_per_day
                reasons.append(f"capped: cut after {_mins(allowed)} ({which} limit {limit:g} min)")

            segs = self._fit_windows(c, p, occ, begin, allowed, w, reasons, req_end)
            played = sum(s.duration_s for s in segs)
            if played < shortest - 1e-9:
                refuse(f"less than {shortest:g} s left in the window")
                continue
            out.extend(segs)
            if new_session:
                sessions += 1
                session_used = 0.0
            session_used += played
            day_used += played
            session_end = segs[-1].end
            cursor = segs[-1].end
            last_played = c
        out.sort(key=lambda s: (s.start, s.refused))
        return out

    def _fit_windows(self, c, p, occ, begin, allowed, w, reasons, req_end) -> list[Segment]:
        pieces: list[tuple[datetime, datetime, float, float]] = []  # start, end, offset, cap
        remaining = allowed
        start, offset = begin, 0.0
        while True:
            idx, _ws, we = w
            cap = self.policy.windows[idx].cap_db
            end = min(start + timedelta(seconds=remaining), we)
            pieces.append((start, end, offset, cap))
            used = (end - start).total_seconds()
            remaining -= used
            offset += used
            if remaining <= 1e-6:
                break
            nxt = self.policy.window_at(we)
            if nxt is not None and nxt[1] == we:
                w, start = nxt, we  # an adjacent window: go on, at its cap
                continue
            reasons.append(f"cut at window end {_hm(we)}")
            break
        occ_end = pieces[-1][1]
        segs = []
        for n, (s, e, off, cap) in enumerate(pieces):
            gain = min(p.gain_db, cap)
            why = list(reasons)
            if gain < p.gain_db:
                why.append(f"gain capped to {cap:+.1f} dB by window")
            if n > 0:
                why.append("continues into the next window")
            segs.append(
                Segment(f"{occ}#{n}", occ, p, s, e, off, gain, cap, c.start,
                        req_end, occ_end, tuple(why))
            )
        return segs

