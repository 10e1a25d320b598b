"""A content-addressed store of verified audio files, with a byte quota and LRU eviction.

Layout under `root`:

    objects/<sha256>         verified files, named by the sha256 of their bytes (never anything else)
    partial/<sha256>.part    downloads in progress (kept across restarts so they can be resumed)
    index.json               size and last-used time of every object, written atomically

A file enters `objects/` only through `commit()`, which hashes it first: a wrong hash deletes it, so nothing
unverified is ever playable. Objects the station needs soon are *pinned* (`set_pinned`) and objects being
played are *held* (`hold`): neither is evicted, whatever the quota says. Everything else goes
least-recently-used first.

The index is only a cache of facts the directory already holds (sizes) plus last-used times; a lost or
corrupt index is rebuilt from `objects/` at start. Last-used updates are batched (SD cards die from writes).
The cache is shared by the prefetch worker and the player's resolver, so it has its own lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_HASH_CHUNK = 1 << 20


def is_sha256(value: object) -> bool:
    """True for a lower-case hex sha256 (the only form the cache accepts)."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` so that after a power cut `path` holds either the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CacheError(Exception):
    """A file could not enter the cache; the message says which file and why."""


class HashMismatch(CacheError):
    """The bytes do not hash to the sha256 they were fetched for (the file was deleted)."""


@dataclass(slots=True)
class _Entry:
    size: int
    last_used: float


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """For telemetry: bytes and counts of objects, how much of it is pinned or held, and the quota."""

    bytes: int
    objects: int
    pinned_bytes: int
    quota_bytes: int


class ContentCache:
    """Verified files by sha256 under `root`, at most `quota_bytes` of them (pinned files excepted).

    `wall` gives the time stamps for least-recently-used (seconds; injected for tests).
    `flush_interval_s` bounds how often last-used updates alone are written to the index.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        quota_bytes: int,
        *,
        wall: Callable[[], float] = time.time,
        flush_interval_s: float = 600.0,
    ):
        if quota_bytes <= 0:
            raise ValueError(f"content cache quota must be > 0 bytes, got {quota_bytes}")
        self.root = Path(root)
        self.quota_bytes = int(quota_bytes)
        self._effective_quota = self.quota_bytes
        self._wall = wall
        self._flush_interval_s = flush_interval_s
        self._objects = self.root / "objects"
        self._partial = self.root / "partial"
        self._index_path = self.root / "index.json"
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._pinned: frozenset[str] = frozenset()
        self._holds: Counter[str] = Counter()
        self._dirty = False
        self._last_flush = 0.0
        self._objects.mkdir(parents=True, exist_ok=True)
        self._partial.mkdir(parents=True, exist_ok=True)
        self._load()

    # -- reading -------------------------------------------------------------------------------------

    def path_for(self, sha256: str) -> Path | None:
        """The verified file for `sha256`, or None. Counts as a use (for least-recently-used)."""
        if not is_sha256(sha256):
            return None
        with self._lock:
            entry = self._entries.get(sha256)
            if entry is None:
                return None
            path = self._objects / sha256
            if not path.is_file():
                log.warning("content %s vanished from %s; dropped from the index", sha256, self._objects)
                del self._entries[sha256]
                self._dirty = True
                return None
            entry.last_used = self._wall()
            self._dirty = True
            self._maybe_flush()
            return path

    def __contains__(self, sha256: object) -> bool:
        with self._lock:
            return sha256 in self._entries

    def resolve(self, spec) -> str | None:
        """A resolver for `firmware.audio.sources`: the cached path of a `FileSpec`'s sha256, or None.

        A spec with a local `path` resolves to it. A spec with only a URL and no sha256 resolves to None:
        content from the network is played only after verification.
        """
        if getattr(spec, "path", None):
            return spec.path
        sha = getattr(spec, "sha256", None)
        if not sha:
            return None
        path = self.path_for(str(sha).lower())
        return str(path) if path is not None else None

    def usage(self) -> CacheUsage:
        """`bytes` counts unfinished downloads too: they take the same disk."""
        with self._lock:
            total = self._used()
            kept = self._kept()
            pinned = sum(e.size for s, e in self._entries.items() if s in kept)
            return CacheUsage(total, len(self._entries), pinned, self._effective_quota)

    def verify(self, sha256: str) -> bool:
        """Re-hash a cached file (self-test, suspected SD-card corruption); a bad one is evicted."""
        path = self.path_for(sha256)
        if path is None:
            return False
        if sha256_file(path) == sha256:
            return True
        log.error("content %s is corrupt on disk (hash changed); evicted", sha256)
        self.evict(sha256)
        return False

    # -- writing -------------------------------------------------------------------------------------

    def partial_path(self, sha256: str) -> Path:
        """Where a download of `sha256` in progress lives (resumable across restarts)."""
        if not is_sha256(sha256):
            raise CacheError(f"not a sha256: {sha256!r}")
        return self._partial / f"{sha256}.part"

    def commit(self, sha256: str, tmp: Path, *, expected_size: int | None = None) -> Path:
        """Verify `tmp` against `sha256` (and size) and move it into the store; return its path.

        On a wrong size or hash the file is deleted and `HashMismatch`/`CacheError` is raised.
        """
        if not is_sha256(sha256):
            tmp.unlink(missing_ok=True)
            raise CacheError(f"not a sha256: {sha256!r}")
        size = tmp.stat().st_size
        if expected_size is not None and size != expected_size:
            tmp.unlink(missing_ok=True)
            raise CacheError(f"{tmp.name}: {size} bytes, expected {expected_size}; deleted")
        actual = sha256_file(tmp)
        if actual != sha256:
            tmp.unlink(missing_ok=True)
            raise HashMismatch(f"sha256 mismatch: expected {sha256}, got {actual}; deleted")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        dest = self._objects / sha256
        with self._lock:
            os.replace(tmp, dest)
            fsync_dir(self._objects)
            self._entries[sha256] = _Entry(size, self._wall())
            self._trim(keep={sha256})
            self._flush()
        log.info("content %s verified and cached (%d bytes)", sha256, size)
        return dest

    def make_room(self, nbytes: int, *, keep: Iterable[str] = ()) -> bool:
        """Evict unpinned objects (least recently used first) until `nbytes` more fit in the quota."""
        with self._lock:
            ok = self._evict_until(self._effective_quota - nbytes, keep=set(keep))
            self._flush_if_dirty()
            return ok

    def disk_full(self, need_bytes: int, *, keep: Iterable[str] = ()) -> int:
        """The disk ran out before the quota did: lower the quota to what fits and evict to free space.

        Returns the bytes freed (0: nothing evictable, everything left is pinned or held).
        """
        with self._lock:
            used = self._used()
            self._effective_quota = max(0, min(self._effective_quota, used))
            before = used
            self._evict_until(used - max(need_bytes, 1), keep=set(keep))
            freed = before - self._used()
            self._flush_if_dirty()
            log.warning(
                "content cache: disk full; quota lowered to %d bytes, %d bytes freed",
                self._effective_quota,
                freed,
            )
            return freed

    def prune_partials(self, keep: Iterable[str]) -> int:
        """Delete downloads in progress of files no longer needed; return how many were deleted."""
        keep = set(keep)
        n = 0
        with self._lock:
            for path in self._partial.glob("*.part"):
                if path.name[:-5] not in keep and path.name[:-5] not in self._holds:
                    with contextlib.suppress(OSError):
                        path.unlink()
                        n += 1
        if n:
            log.info("content cache: %d unfinished download(s) no longer needed, deleted", n)
        return n

    def evict(self, sha256: str) -> bool:
        with self._lock:
            if sha256 not in self._entries:
                return False
            self._remove(sha256, "evicted")
            self._flush()
            return True

    def set_pinned(self, shas: Iterable[str]) -> None:
        """The objects the schedule needs soon: never evicted while pinned (replaces the previous set)."""
        with self._lock:
            self._pinned = frozenset(s for s in shas if is_sha256(s))

    @contextlib.contextmanager
    def hold(self, sha256: str) -> Iterator[None]:
        """Keep `sha256` while the block runs (it is being played or downloaded)."""
        with self._lock:
            self._holds[sha256] += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds[sha256] -= 1
                if self._holds[sha256] <= 0:
                    del self._holds[sha256]

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def close(self) -> None:
        with self._lock:
            self._flush_if_dirty()

    # -- internals (lock held) -----------------------------------------------------------------------

    def _kept(self) -> set[str]:
        return set(self._pinned) | set(self._holds)

    def _used(self) -> int:
        """Bytes on disk: verified objects plus downloads in progress (they fill the same SD card)."""
        return sum(e.size for e in self._entries.values()) + self._partial_bytes()

    def _partial_bytes(self) -> int:
        total = 0
        with contextlib.suppress(OSError), os.scandir(self._partial) as it:
            for entry in it:
                with contextlib.suppress(OSError):
                    total += entry.stat().st_size
        return total

    def _trim(self, keep: set[str]) -> None:
        if not self._evict_until(self._effective_quota, keep=keep):
            log.warning(
                "content cache over quota: %d of %d bytes, the rest is pinned (needed soon) or playing",
                self._used(),
                self._effective_quota,
            )

    def _evict_until(self, target_bytes: int, keep: set[str]) -> bool:
        used = self._used()
        if used <= target_bytes:
            return True
        kept = self._kept() | keep
        for sha, entry in sorted(self._entries.items(), key=lambda kv: kv[1].last_used):
            if used <= target_bytes:
                break
            if sha in kept:
                continue
            self._remove(sha, "evicted (least recently used)")
            used -= entry.size
        return used <= target_bytes

    def _remove(self, sha256: str, why: str) -> None:
        entry = self._entries.pop(sha256)
        # Unlinking a file being read is safe on POSIX: an open player keeps the inode until it closes.
        (self._objects / sha256).unlink(missing_ok=True)
        self._dirty = True
        log.info("content %s %s (%d bytes)", sha256, why, entry.size)

    def _maybe_flush(self) -> None:
        if self._dirty and self._wall() - self._last_flush >= self._flush_interval_s:
            self._flush()

    def _flush_if_dirty(self) -> None:
        if self._dirty:
            self._flush()

    def _flush(self) -> None:
        doc = {"v": 1, "entries": {s: {"size": e.size, "last_used": e.last_used} for s, e in self._entries.items()}}
        try:
            atomic_write(self._index_path, json.dumps(doc, sort_keys=True).encode())
        except OSError as e:
            # A full disk must not lose the cache: the index is rebuilt from objects/ at the next start.
            log.warning("content index %s not written: %s", self._index_path, e)
            return
        self._dirty = False
        self._last_flush = self._wall()

    def _load(self) -> None:
        recorded = self._read_index()
        for path in self._objects.iterdir():
            name = path.name
            if not is_sha256(name) or not path.is_file():
                log.warning("content cache: removing stray file %s", path)
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            st = path.stat()
            last_used = recorded.get(name, st.st_mtime)
            self._entries[name] = _Entry(st.st_size, last_used)
        for path in self._partial.iterdir():
            if not (path.name.endswith(".part") and is_sha256(path.name[:-5])):
                with contextlib.suppress(OSError):
                    path.unlink()
        self._dirty = set(recorded) != set(self._entries)
        self._trim(keep=set())
        self._flush_if_dirty()

    def _read_index(self) -> dict[str, float]:
        try:
            doc = json.loads(self._index_path.read_bytes())
            entries = doc["entries"]
            return {s: float(e["last_used"]) for s, e in entries.items() if is_sha256(s)}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("content index %s unreadable (%s); rebuilt from %s", self._index_path, e, self._objects)
            return {}
