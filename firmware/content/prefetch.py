"""Keep every file the schedule needs in the next hours in the cache, fetched in the order it is due.

The runtime feeds `set_needs()` with what the schedule will play (url, sha256, size, due), typically on every
schedule change and once an hour as the horizon slides. A named background thread fetches what is missing
inside the horizon, earliest due first; a file that fails waits (per-file exponential backoff with jitter)
while the others go ahead. Every change is reported through `on_status(sha256, state, reason)`:

    queued    needed within the horizon, not on disk yet
    fetching  a download started (reason: the URL)
    ready     verified and in the cache
    failed    a download failed; reason says why and when the next try is
    missing   the player asked for it and it was not there (the play log's `missed: content`)

`on_status` is called from the worker (or the player's) thread: it MUST only enqueue, never block or raise.
`missing()` lists what is needed soon and absent, so the station can report it hours ahead.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from firmware.content.cache import ContentCache, is_sha256
from firmware.content.fetch import Fetcher, FetchError

log = logging.getLogger(__name__)

StatusCallback = Callable[[str, str, str], None]


@dataclass(frozen=True, slots=True)
class Need:
    """One file the schedule will play at `due` (an aware datetime)."""

    url: str
    sha256: str
    size: int | None
    due: datetime


@dataclass(frozen=True, slots=True)
class MissingContent:
    """A needed file that is not in the cache: its state (queued / fetching / failed) and the last reason."""

    sha256: str
    url: str
    due: datetime
    state: str
    reason: str


class Prefetcher:
    """The prefetch worker. `now()` gives aware wall time (the station's clock port `wall`).

    `horizon`: how far ahead to fetch. `keep_past`: how long after its due time a file stays pinned (it may
    still be playing, or be joined in progress). `retry_initial_s`..`retry_max_s`: the per-file backoff
    between failed `fetch()` calls (each call already retries a few times quickly).
    """

    def __init__(
        self,
        cache: ContentCache,
        fetcher: Fetcher,
        *,
        now: Callable[[], datetime],
        horizon: timedelta = timedelta(hours=48),
        keep_past: timedelta = timedelta(hours=6),
        on_status: StatusCallback | None = None,
        retry_initial_s: float = 60.0,
        retry_max_s: float = 3600.0,
        idle_recheck_s: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        name: str = "loa-prefetch",
    ):
        self.cache = cache
        self.fetcher = fetcher
        self.horizon = horizon
        self.keep_past = keep_past
        self._now = now
        self._on_status = on_status
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._idle_recheck_s = idle_recheck_s
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._name = name
        self._lock = threading.Lock()
        self._needs: dict[str, Need] = {}
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._reasons: dict[str, str] = {}
        self._current: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker (an ongoing download stops at its next chunk, its partial kept) and join it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prefetch worker %s did not stop within %.1f s", self._name, timeout)
            self._thread = None
        # The cache is not ours to close (the composition root owns it), but its batched last-used times are
        # worth keeping: flush them now.
        self.cache.flush()

    def set_needs(self, needs: Iterable[Need]) -> None:
        """Replace what the schedule needs. Bad entries are reported and skipped; the earliest due wins for
        a sha256 listed twice. Needed files are pinned in the cache at once."""
        fresh: dict[str, Need] = {}
        for need in needs:
            problem = _problem(need)
            if problem:
                log.warning("prefetch: skipping need %r: %s", need, problem)
                self._report(str(getattr(need, "sha256", "?")), "failed", f"bad schedule entry: {problem}")
                continue
            old = fresh.get(need.sha256)
            if old is None or need.due < old.due:
                fresh[need.sha256] = need
        with self._lock:
            added = [n for s, n in fresh.items() if s not in self._needs]
            self._needs = fresh
            for table in (self._failures, self._retry_at, self._reasons):
                for sha in list(table):
                    if sha not in fresh:
                        del table[sha]
        self._pin()
        self.cache.prune_partials(fresh)
        for need in sorted(added, key=lambda n: n.due):
            state = "ready" if need.sha256 in self.cache else "queued"
            self._report(need.sha256, state, need.url)
        self._wake.set()

    def fetch_now(self) -> None:
        """Forget the backoff of failed files and try everything missing in the horizon at once."""
        with self._lock:
            self._retry_at.clear()
        self._wake.set()

    # -- queries -------------------------------------------------------------------------------------

    def missing(self, horizon: timedelta | None = None) -> list[MissingContent]:
        """Files needed from now (minus `keep_past`) to now + `horizon` that are not in the cache."""
        now = self._now()
        until = now + (self.horizon if horizon is None else horizon)
        with self._lock:
            needs = [n for n in self._needs.values() if now - self.keep_past <= n.due <= until]
            out = []
            for n in sorted(needs, key=lambda n: n.due):
                if n.sha256 in self.cache:
                    continue
                if n.sha256 == self._current:
                    state = "fetching"
                elif n.sha256 in self._failures:
                    state = "failed"
                else:
                    state = "queued"
                out.append(MissingContent(n.sha256, n.url, n.due, state, self._reasons.get(n.sha256, "")))
            return out

    def resolve(self, spec) -> str | None:
        """The audio layer's resolver: the cached path for a `FileSpec`, or None (reported as `missing`)."""
        path = self.cache.resolve(spec)
        sha = getattr(spec, "sha256", None)
        if path is None and sha:
            log.warning("content %s (%s) not in the cache at play time", sha, getattr(spec, "url", None))
            self._report(str(sha), "missing", "not in the content cache at play time")
        return path

    # -- worker --------------------------------------------------------------------------------------

    def _run(self) -> None:
        log.info("prefetch worker started (horizon %s)", self.horizon)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._pin()
                need = self._next_need()
                if need is None:
                    self._wake.wait(self._idle_time())
                    continue
                self._fetch(need)
            except Exception:
                # The worker must outlive any surprise: log it and try again after the idle time.
                log.exception("prefetch worker error")
                self._stop.wait(self._retry_initial_s)
        log.info("prefetch worker stopped")

    def _fetch(self, need: Need) -> None:
        sha = need.sha256
        with self._lock:
            self._current = sha
        self._report(sha, "fetching", need.url)
        try:
            self.fetcher.fetch(need.url, sha, need.size, stop=self._stop)
        except FetchError as e:
            if e.kind == "stopped":
                return
            self._failed(need, str(e))
        except Exception as e:
            log.exception("prefetch %s: unexpected error", sha)
            self._failed(need, f"unexpected error: {e!r}")
        else:
            with self._lock:
                self._failures.pop(sha, None)
                self._retry_at.pop(sha, None)
                self._reasons.pop(sha, None)
            self._report(sha, "ready", need.url)
        finally:
            with self._lock:
                self._current = None

    def _failed(self, need: Need, reason: str) -> None:
        with self._lock:
            n = self._failures.get(need.sha256, 0) + 1
            delay = min(self._retry_max_s, self._retry_initial_s * 2 ** (n - 1))
            delay *= 0.5 + 0.5 * self._rng.random()
            if need.sha256 in self._needs:
                self._failures[need.sha256] = n
                self._retry_at[need.sha256] = self._monotonic() + delay
                self._reasons[need.sha256] = reason
        log.warning("prefetch %s due %s failed (%d): %s; next try in %.0f s", need.sha256[:12],
                    need.due.isoformat(), n, reason, delay)
        self._report(need.sha256, "failed", f"{reason} (next try in {delay:.0f} s)")

    def _next_need(self) -> Need | None:
        now = self._now()
        mono = self._monotonic()
        with self._lock:
            ready = [
                n for n in self._needs.values()
                if now - self.keep_past <= n.due <= now + self.horizon
                and self._retry_at.get(n.sha256, 0.0) <= mono
                and n.sha256 not in self.cache
            ]
        return min(ready, key=lambda n: n.due) if ready else None

    def _idle_time(self) -> float:
        """Sleep until a backoff ends or a need enters the horizon; at most `idle_recheck_s`."""
        now = self._now()
        mono = self._monotonic()
        wait = self._idle_recheck_s
        with self._lock:
            for sha, at in self._retry_at.items():
                if sha not in self.cache:
                    wait = min(wait, at - mono)
            for n in self._needs.values():
                enters = (n.due - self.horizon - now).total_seconds()
                if enters > 0:
                    wait = min(wait, enters)
        return max(wait, 0.01)

    def _pin(self) -> None:
        now = self._now()
        with self._lock:
            shas = [s for s, n in self._needs.items() if n.due >= now - self.keep_past]
        self.cache.set_pinned(shas)

    def _report(self, sha256: str, state: str, reason: str) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(sha256, state, reason)
        except Exception:
            log.exception("on_status callback failed for %s %s", sha256, state)


def needs_from_segments(segments: Iterable[object]) -> list[Need]:
    """The files a plan will play: one `Need` per segment whose programme's source has a url and sha256.

    Takes `firmware.core.planner.Segment`s (duck-typed: `.programme.source.url/.sha256/.size`, `.start`,
    `.refused`), e.g. `plan.segments_between(now - keep_past, now + horizon)`. Refused segments are skipped.
    """
    out = []
    for seg in segments:
        if getattr(seg, "refused", False):
            continue
        src = getattr(getattr(seg, "programme", None), "source", None)
        url, sha = getattr(src, "url", None), getattr(src, "sha256", None)
        if url and sha:
            out.append(Need(url, sha, getattr(src, "size", None), seg.start))
    return out


def _problem(need: object) -> str | None:
    if not isinstance(need, Need):
        return f"not a Need: {type(need).__name__}"
    if not isinstance(need.url, str) or not need.url.startswith(("http://", "https://")):
        return f"url must be http(s), got {need.url!r}"
    if not is_sha256(need.sha256):
        return f"sha256 must be 64 lower-case hex digits, got {need.sha256!r}"
    if need.size is not None and (not isinstance(need.size, int) or need.size < 0):
        return f"size must be a non-negative integer, got {need.size!r}"
    if not isinstance(need.due, datetime) or need.due.tzinfo is None:
        return f"due must be an aware datetime, got {need.due!r}"
    return None
