"""The prefetch worker: fetches what is due soon, earliest first; reports progress and what is missing."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from firmware.content import Fetcher, Need, Prefetcher
from firmware.core.sources import FileSpec
from tests.content.conftest import FAST, payload

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 3, 2, 5, 0, tzinfo=TZ)


class Statuses:
    """Collects on_status calls; `wait_for(sha, state)` waits on a condition, never a bare sleep."""

    def __init__(self):
        self.calls: list[tuple[str, str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, sha, state, reason):
        with self._cond:
            self.calls.append((sha, state, reason))
            self._cond.notify_all()

    def wait_for(self, sha, state, timeout=10.0, count=1):
        def seen():
            return sum(1 for s, st, _ in self.calls if s == sha and st == state) >= count

        with self._cond:
            assert self._cond.wait_for(seen, timeout), f"no {state!r} for {sha[:8]} within {timeout} s: {self.calls}"

    def states(self, sha):
        return [st for s, st, _ in self.calls if s == sha]


@pytest.fixture
def statuses():
    return Statuses()


@pytest.fixture
def prefetch(cache, statuses):
    p = Prefetcher(
        cache, Fetcher(cache, FAST), now=lambda: NOW, on_status=statuses, retry_initial_s=0.05, retry_max_s=0.2
    )
    p.start()
    yield p
    p.stop()


def need(server, name, data, sha, hours):
    server.add(name, body=data)
    return Need(server.url(name), sha, len(data), NOW + timedelta(hours=hours))


def test_everything_due_in_the_horizon_is_fetched_earliest_first(server, prefetch, statuses, cache):
    late, s_late = payload(3000, 1)
    early, s_early = payload(3000, 2)
    prefetch.set_needs([need(server, "late", late, s_late, 30), need(server, "early", early, s_early, 2)])
    statuses.wait_for(s_late, "ready")
    assert [p for p, _ in server.requests] == ["/early", "/late"]
    assert cache.resolve(FileSpec(url=server.url("early"), sha256=s_early)) is not None
    assert prefetch.missing() == []
    assert statuses.states(s_early) == ["queued", "fetching", "ready"]


def test_beyond_the_horizon_waits(server, prefetch, statuses):
    soon, s_soon = payload(1000, 1)
    far, s_far = payload(1000, 2)
    prefetch.set_needs([need(server, "soon", soon, s_soon, 1), need(server, "far", far, s_far, 72)])
    statuses.wait_for(s_soon, "ready")
    assert "/far" not in [p for p, _ in server.requests]
    assert prefetch.missing() == []
    assert [m.sha256 for m in prefetch.missing(timedelta(hours=80))] == [s_far]


def test_tampered_file_is_reported_missing_ahead_of_time_and_never_resolves(server, prefetch, statuses, cache):
    good, s_good = payload(2000, 1)
    server.add("bad", body=b"evil" + good[4:])
    bad_need = Need(server.url("bad"), s_good, len(good), NOW + timedelta(hours=3))
    prefetch.set_needs([bad_need])
    statuses.wait_for(s_good, "failed")
    [m] = prefetch.missing()
    assert m.sha256 == s_good and m.state == "failed" and "sha256 mismatch" in m.reason
    assert prefetch.resolve(FileSpec(url=bad_need.url, sha256=s_good)) is None
    assert "missing" in statuses.states(s_good)
    assert s_good not in cache


def test_failed_file_is_retried_with_backoff_and_others_go_ahead(server, prefetch, statuses):
    a, sa = payload(1000, 1)
    b, sb = payload(1000, 2)
    first = need(server, "a", a, sa, 1)
    server.routes["/a"].status = 404
    prefetch.set_needs([first, need(server, "b", b, sb, 2)])
    statuses.wait_for(sb, "ready")
    statuses.wait_for(sa, "failed", count=2)  # retried after its backoff
    assert any("HTTP 404" in r and "next try in" in r for s, st, r in statuses.calls if s == sa)
    server.routes["/a"].status = 200  # the district uploads it
    statuses.wait_for(sa, "ready")
    assert prefetch.missing() == []


def test_fetch_now_skips_the_backoff(server, cache, statuses):
    a, sa = payload(1000, 1)
    p = Prefetcher(cache, Fetcher(cache, FAST), now=lambda: NOW, on_status=statuses, retry_initial_s=3600)
    p.start()
    try:
        p.set_needs([need(server, "a", a, sa, 1)])
        server.routes["/a"].status = 503
        statuses.wait_for(sa, "failed")
        server.routes["/a"].status = 200
        p.fetch_now()
        statuses.wait_for(sa, "ready")
    finally:
        p.stop()


def test_needed_files_are_pinned_against_eviction(server, tmp_path, statuses):
    from firmware.content import ContentCache

    cache = ContentCache(tmp_path / "small", quota_bytes=2500)
    p = Prefetcher(cache, Fetcher(cache, FAST), now=lambda: NOW, on_status=statuses)
    p.start()
    try:
        (a, sa), (b, sb) = payload(1000, 1), payload(1000, 2)
        p.set_needs([need(server, "a", a, sa, 1), need(server, "b", b, sb, 2)])
        statuses.wait_for(sb, "ready")
        c, sc = payload(1000, 3)
        p.set_needs([need(server, "a", a, sa, 1), need(server, "c", c, sc, 3)])
        statuses.wait_for(sc, "ready")
        assert sa in cache and sc in cache and sb not in cache  # b was no longer needed: evicted
    finally:
        p.stop()


def test_bad_schedule_entries_are_reported_and_skipped(server, prefetch, statuses):
    good, sg = payload(1000, 1)
    prefetch.set_needs(
        [
            Need("ftp://x/a", "a" * 64, 10, NOW),
            Need("http://x/a", "nothex", 10, NOW),
            Need("http://x/a", "b" * 64, 10, datetime(2026, 3, 2, 6, 0)),  # naive: ambiguous
            need(server, "good", good, sg, 1),
        ]
    )
    statuses.wait_for(sg, "ready")
    reasons = [r for _, st, r in statuses.calls if st == "failed"]
    assert any("url must be http(s)" in r for r in reasons)
    assert any("sha256 must be" in r for r in reasons)
    assert any("aware datetime" in r for r in reasons)


def test_stop_interrupts_a_stalled_download_and_joins_the_thread(server, cache, statuses):
    data, sha = payload(50_000)
    server.add("slow", body=data, stall_after=1000)
    p = Prefetcher(cache, Fetcher(cache, FAST), now=lambda: NOW, on_status=statuses)
    p.start()
    p.set_needs([Need(server.url("slow"), sha, len(data), NOW + timedelta(hours=1))])
    statuses.wait_for(sha, "fetching")
    p.stop(timeout=5)
    assert not any(t.name == "loa-prefetch" for t in threading.enumerate())


def test_a_raising_status_callback_does_not_kill_the_worker(server, cache):
    data, sha = payload(1000)
    done = threading.Event()

    def on_status(s, state, reason):
        if state == "ready":
            done.set()
        raise RuntimeError("callback bug")

    p = Prefetcher(cache, Fetcher(cache, FAST), now=lambda: NOW, on_status=on_status)
    p.start()
    try:
        p.set_needs([need(server, "a", data, sha, 1)])
        assert done.wait(10)
    finally:
        p.stop()


def test_needs_come_from_the_plan_of_the_next_hours():
    from firmware.content import needs_from_segments
    from firmware.core.planner import Planner
    from tests.core.helpers import at, policy, prog, schedule

    sha = "c" * 64
    doc = schedule(
        prog("tin-sang", "06:00", source={"type": "file", "url": "http://d/x.mp3", "sha256": sha, "size": 10,
                                          "duration_s": 600}),
        prog("nhac", "17:30"),  # a local file: nothing to fetch
        prog("dem", "23:00", source={"type": "file", "url": "http://d/y.mp3", "sha256": "d" * 64,
                                     "duration_s": 60}),  # outside the allowed windows: refused
    )
    plan = Planner(doc, policy(("05:30", "07:00", -6), ("17:00", "19:00", -12)), TZ)
    now = at(2026, 3, 2, 5, 0)
    needs = needs_from_segments(plan.segments_between(now, now + timedelta(hours=48)))
    assert [(n.sha256, n.size, n.due) for n in needs] == [
        (sha, 10, at(2026, 3, 2, 6, 0)),
        (sha, 10, at(2026, 3, 3, 6, 0)),
    ]


def test_unfinished_download_of_a_dropped_programme_is_deleted(server, prefetch, statuses, cache):
    _, s_old = payload(5000, 1)
    cache.partial_path(s_old).write_bytes(b"half")
    new, s_new = payload(1000, 2)
    prefetch.set_needs([need(server, "new", new, s_new, 1)])
    statuses.wait_for(s_new, "ready")
    assert not cache.partial_path(s_old).exists()
