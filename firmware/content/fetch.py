"""Download one file over HTTP(S) into the content cache: resume, timeouts, stall detection, retries.

Why the standard library (`urllib.request`): the station needs GET with a `Range` header, a socket timeout and
TLS with the system (or district) CA; urllib does all of it, with no extra dependency on the Pi.

One `fetch()` call makes up to `policy.attempts` attempts with exponential backoff and jitter between them
(waiting on the stop Event, so shutdown is immediate). A download in progress lives in the cache's `partial/`
directory; the next attempt (or the next boot) asks for the rest with `Range: bytes=N-`. A server that answers
206 continues the file; one that answers 200 (Range ignored) starts it again. The file enters the cache only
after its size and sha256 are checked (`ContentCache.commit`): a wrong file is deleted and never playable.

Errors are `FetchError` with a `kind` (for reports and tests) and `retryable` (worth another attempt soon).
A 404 or a file of the wrong size is not retried inside one call (on a metered link, asking again in two
seconds will not help); the prefetch worker tries again much later.
"""

from __future__ import annotations

import errno
import logging
import random
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware.content.cache import CacheError, ContentCache, HashMismatch, is_sha256

log = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """How hard one `fetch()` tries. Tests shrink the times; the defaults suit a 3G link.

    `socket_timeout_s` bounds connecting and each read (no byte at all for that long: stalled);
    `stall_timeout_s` is the window of the low-speed check (fewer than `min_bytes_per_window` in that long:
    a connection that drips is as dead as one that stopped).
    """

    attempts: int = 5
    socket_timeout_s: float = 30.0
    stall_timeout_s: float = 60.0
    min_bytes_per_window: int = 1024
    backoff_initial_s: float = 2.0
    backoff_max_s: float = 300.0
    jitter: float = 0.5
    chunk_bytes: int = 64 * 1024
    max_size_bytes: int = 2 * 1024**3
    user_agent: str = "loa-station/0.1 (content fetch)"


class FetchError(Exception):
    """A download failed. `kind`: http, network, tls, stalled, size, hash, disk_full, quota, bad_input, deadline, stopped."""

    def __init__(self, url: str, kind: str, reason: str, *, retryable: bool):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.kind = kind
        self.reason = reason
        self.retryable = retryable


class Fetcher:
    """Downloads into `cache`. `on_retry(error, delay_s)` is called before each backoff wait (MUST NOT raise).

    `ssl_context` lets the station trust the district's own CA; `rng` and `monotonic` are injected for tests.
    """

    def __init__(
        self,
        cache: ContentCache,
        policy: FetchPolicy = FetchPolicy(),
        *,
        ssl_context: ssl.SSLContext | None = None,
        on_retry: Callable[[FetchError, float], None] | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.cache = cache
        self.policy = policy
        self._on_retry = on_retry
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        handlers: list[urllib.request.BaseHandler] = []
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    def fetch(
        self,
        url: str,
        sha256: str,
        size: int | None = None,
        *,
        stop: threading.Event | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
        deadline_s: float | None = None,
    ) -> Path:
        """Make sure `sha256` is in the cache, downloading it from `url` if needed; return its path.

        Raises `FetchError` once the attempts are used up or the error is not worth retrying now.
        `deadline_s` bounds the whole call, retries included (kind "deadline" when it passes; the partial is
        kept): for a fetch the player waits on, such as an alert's audio, where speaking the text beats waiting.
        """
        stop = stop or threading.Event()
        deadline = None if deadline_s is None else self._monotonic() + deadline_s
        self._check_input(url, sha256, size)
        path = self.cache.path_for(sha256)
        if path is not None:
            return path
        last: FetchError | None = None
        for attempt in range(self.policy.attempts):
            if stop.is_set():
                raise FetchError(url, "stopped", "stopped before the download finished", retryable=True)
            try:
                with self.cache.hold(sha256):
                    return self._attempt(url, sha256, size, stop, on_progress, deadline)
            except FetchError as e:
                last = e
                log.warning("fetch %s attempt %d/%d failed: %s", sha256[:12], attempt + 1, self.policy.attempts, e)
                if not e.retryable or attempt + 1 == self.policy.attempts:
                    raise
                delay = self._backoff(attempt)
                if deadline is not None and self._monotonic() + delay >= deadline:
                    raise FetchError(url, "deadline", f"gave up after {deadline_s} s: {e.reason}",
                                     retryable=True) from e
                self._report_retry(e, delay)
                if stop.wait(delay):
                    raise FetchError(url, "stopped", "stopped while waiting to retry", retryable=True) from e
        assert last is not None  # the loop either returns or raises
        raise last

    # -- one attempt ---------------------------------------------------------------------------------

    def _attempt(self, url, sha256, size, stop, on_progress, deadline=None) -> Path:
        part = self.cache.partial_path(sha256)
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            part.unlink()
            have = 0
        if size is not None and have == size:
            return self._commit(url, sha256, part, size, resumed=True)
        if size is not None and not self.cache.make_room(size - have, keep={sha256}):
            usage = self.cache.usage()
            raise FetchError(
                url,
                "quota",
                f"needs {size} bytes; cache quota {usage.quota_bytes}, of which {usage.pinned_bytes} pinned",
                retryable=False,
            )
        resp = self._open(url, have, part, self._timeout(url, deadline))
        with resp:
            have, total = self._start_position(url, sha256, resp, have, size)
            if have:
                log.info("fetch %s resuming at byte %d", sha256[:12], have)
            limit = size if size is not None else self.policy.max_size_bytes
            have = self._copy(url, sha256, resp, part, have, limit, total, stop, on_progress, deadline)
        expected = size if size is not None else total
        if expected is not None and have < expected:
            raise FetchError(
                url, "network", f"connection closed after {have} of {expected} bytes (kept to resume)", retryable=True
            )
        return self._commit(url, sha256, part, size, resumed=resp.status == 206)

    def _open(self, url: str, have: int, part: Path, timeout: float):
        headers = {"User-Agent": self.policy.user_agent, "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        req = urllib.request.Request(url, headers=headers)
        try:
            return self._opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416:
                part.unlink(missing_ok=True)  # the partial does not match the server's file: start again
                raise FetchError(url, "http", "HTTP 416: server refused the resume range", retryable=True) from e
            retryable = e.code in (408, 425, 429) or e.code >= 500
            raise FetchError(url, "http", f"HTTP {e.code} {e.reason}", retryable=retryable) from e
        except urllib.error.URLError as e:
            if isinstance(e.reason, ssl.SSLCertVerificationError):
                # A wrong or unknown certificate does not heal in seconds: report it, do not hammer.
                raise FetchError(url, "tls", f"TLS certificate refused: {e.reason.verify_message}",
                                 retryable=False) from e
            raise FetchError(url, "network", f"cannot connect: {e.reason}", retryable=True) from e
        except TimeoutError as e:
            raise FetchError(url, "stalled", f"no answer within {self.policy.socket_timeout_s} s", retryable=True) from e
        except OSError as e:
            raise FetchError(url, "network", f"cannot connect: {e}", retryable=True) from e

    def _start_position(self, url, sha256, resp, have, size) -> tuple[int, int | None]:
        """Where the body starts in the file, and the file's total size if the server said so."""
        if resp.status == 206:
            m = _CONTENT_RANGE.fullmatch((resp.headers.get("Content-Range") or "").strip())
            if not m or int(m.group(1)) != have:
                self.cache.partial_path(sha256).unlink(missing_ok=True)
                raise FetchError(
                    url, "http", f"bad Content-Range {resp.headers.get('Content-Range')!r} for bytes={have}-; restarting",
                    retryable=True,
                )
            total = None if m.group(3) == "*" else int(m.group(3))
        elif resp.status == 200:
            # Range ignored (or not asked): the body is the whole file, from byte 0.
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            have = 0
        else:
            raise FetchError(url, "http", f"unexpected HTTP {resp.status}", retryable=True)
        if size is not None and total is not None and total != size:
            raise FetchError(url, "size", f"server has {total} bytes, the schedule says {size}", retryable=False)
        return have, total

    def _copy(self, url, sha256, resp, part: Path, have, limit, total, stop, on_progress, deadline) -> int:
        window_start = self._monotonic()
        window_bytes = 0
        try:
            with open(part, "ab" if have else "wb") as f:
                while True:
                    if stop.is_set():
                        raise FetchError(url, "stopped", f"stopped at byte {have} (kept to resume)", retryable=True)
                    if deadline is not None and self._monotonic() >= deadline:
                        raise FetchError(url, "deadline", f"deadline passed at byte {have} (kept to resume)",
                                         retryable=True)
                    try:
                        chunk = resp.read1(self.policy.chunk_bytes)
                    except TimeoutError as e:
                        raise FetchError(
                            url, "stalled", f"no data for {self.policy.socket_timeout_s} s at byte {have}",
                            retryable=True,
                        ) from e
                    except OSError as e:
                        raise FetchError(url, "network", f"connection lost at byte {have}: {e}", retryable=True) from e
                    if not chunk:
                        return have
                    if have + len(chunk) > limit:
                        f.close()
                        part.unlink(missing_ok=True)
                        raise FetchError(url, "size", f"server sent more than {limit} bytes; deleted", retryable=False)
                    f.write(chunk)
                    have += len(chunk)
                    window_bytes += len(chunk)
                    if on_progress is not None:
                        on_progress(have, total)
                    now = self._monotonic()
                    if now - window_start >= self.policy.stall_timeout_s:
                        if window_bytes < self.policy.min_bytes_per_window:
                            raise FetchError(
                                url, "stalled",
                                f"only {window_bytes} bytes in {now - window_start:.0f} s at byte {have}",
                                retryable=True,
                            )
                        window_start, window_bytes = now, 0
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise FetchError(url, "network", f"cannot write {part}: {e}", retryable=False) from e
            raise self._disk_full(url, sha256, part, limit, have) from e

    def _disk_full(self, url, sha256, part: Path, limit: int, have: int) -> FetchError:
        on_disk = part.stat().st_size if part.exists() else 0
        freed = self.cache.disk_full(max(limit - on_disk, 1), keep={sha256})
        if freed > 0:
            return FetchError(url, "disk_full", f"disk full at byte {have}; freed {freed} bytes, will resume",
                              retryable=True)
        # Nothing left to evict: this partial only blocks the disk for everything else.
        part.unlink(missing_ok=True)
        return FetchError(url, "disk_full", f"disk full at byte {have} and nothing evictable; partial deleted",
                          retryable=False)

    def _commit(self, url, sha256, part, size, *, resumed: bool) -> Path:
        try:
            return self.cache.commit(sha256, part, expected_size=size)
        except HashMismatch as e:
            # After a resume the splice may be at fault: one more clean try is worth it. A fresh download
            # that hashes wrong is the server's file: retrying now only spends the SIM's data.
            raise FetchError(url, "hash", str(e), retryable=resumed) from e
        except CacheError as e:
            raise FetchError(url, "size", str(e), retryable=resumed) from e
        except OSError as e:
            raise FetchError(url, "disk_full" if e.errno == errno.ENOSPC else "network",
                             f"cannot store: {e}", retryable=False) from e

    # -- helpers -------------------------------------------------------------------------------------

    def _check_input(self, url: str, sha256: str, size: int | None) -> None:
        scheme = urllib.parse.urlsplit(url).scheme if isinstance(url, str) else ""
        if scheme not in ("http", "https"):
            raise FetchError(str(url), "bad_input", f"only http(s) URLs are fetched, got {url!r}", retryable=False)
        if not is_sha256(sha256):
            raise FetchError(url, "bad_input", f"sha256 must be 64 lower-case hex digits, got {sha256!r}",
                             retryable=False)
        if size is not None and (not isinstance(size, int) or size < 0 or size > self.policy.max_size_bytes):
            raise FetchError(url, "bad_input", f"size must be 0..{self.policy.max_size_bytes}, got {size!r}",
                             retryable=False)

    def _timeout(self, url: str, deadline: float | None) -> float:
        if deadline is None:
            return self.policy.socket_timeout_s
        left = deadline - self._monotonic()
        if left <= 0:
            raise FetchError(url, "deadline", "deadline passed before connecting", retryable=True)
        return min(self.policy.socket_timeout_s, left)

    def _backoff(self, attempt: int) -> float:
        base = min(self.policy.backoff_max_s, self.policy.backoff_initial_s * (2**attempt))
        return base * (1.0 - self.policy.jitter * self._rng.random())

    def _report_retry(self, error: FetchError, delay: float) -> None:
        if self._on_retry is None:
            return
        try:
            self._on_retry(error, delay)
        except Exception:
            log.exception("on_retry callback failed")
