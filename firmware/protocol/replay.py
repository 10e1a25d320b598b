"""The replay cache: alert ids a station has already accepted, persisted so a reboot does not forget them.

An id is remembered until `keep_after_expiry` after its alert expires: by then the expiry check refuses the
alert anyway. The file is bounded (`max_entries`, the soonest-forgotten ids go first) and written atomically
(temp file, fsync, rename, fsync the directory), so a power cut leaves the old or the new file, never half.

The cache does not read the clock: `now` is passed in.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_KEEP_AFTER_EXPIRY = timedelta(days=1)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old or the new content."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ReplayCache:
    """Seen alert ids, persisted to `path` (e.g. `/var/lib/loa/replay.json`).

    `alert_id in cache` asks; `remember(alert_id, expires, now)` records an accepted alert and saves.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        keep_after_expiry: timedelta = DEFAULT_KEEP_AFTER_EXPIRY,
    ):
        self.path = Path(path)
        self.max_entries = max_entries
        self.keep_after_expiry = keep_after_expiry
        self._forget_at: dict[str, datetime] = self._load()

    def _load(self) -> dict[str, datetime]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("seen"), dict):
                raise ValueError('expected {"v": 1, "seen": {...}}')
            entries = {}
            for k, v in doc["seen"].items():
                when = datetime.fromisoformat(v)
                if when.tzinfo is None:
                    raise ValueError(f"naive time for {k}")
                entries[str(k)] = when
            return entries
        except (ValueError, TypeError) as e:
            # Keep the evidence, start empty: the expiry and clock checks still refuse stale alerts.
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.error("replay cache %s is unreadable (%s); moved to %s, starting empty", self.path, e, aside)
            try:
                os.replace(self.path, aside)
            except OSError:
                log.exception("could not move %s aside", self.path)
            return {}

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._forget_at

    def __len__(self) -> int:
        return len(self._forget_at)

    def remember(self, alert_id: str, expires: datetime, now: datetime, *, save: bool = True) -> None:
        """Record an accepted alert id, drop the forgettable ones, and persist (unless `save=False`: the
        caller saves later, e.g. after the alert has started, so an fsync is not on its way to the speaker)."""
        forget = expires + self.keep_after_expiry
        self._forget_at[alert_id] = max(forget, self._forget_at.get(alert_id, forget))
        self.prune(now, save=False)
        if save:
            self.save()

    def prune(self, now: datetime, *, save: bool = True) -> int:
        """Forget ids whose time is up, then the soonest-forgotten beyond `max_entries`. Returns how many."""
        before = len(self._forget_at)
        kept = {k: v for k, v in self._forget_at.items() if v > now}
        if len(kept) > self.max_entries:
            kept = dict(sorted(kept.items(), key=lambda kv: kv[1])[-self.max_entries :])
        self._forget_at = kept
        dropped = before - len(kept)
        if dropped and save:
            self.save()
        return dropped

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"v": 1, "seen": {k: v.isoformat() for k, v in sorted(self._forget_at.items())}}
        write_atomically(self.path, json.dumps(doc, separators=(",", ":")).encode())
