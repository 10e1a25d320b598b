"""Small persisted facts of the station: last time alive, last trusted wall time, the active schedule
and pushed policy.

Each is one small file written atomically (temp file, fsync, rename, fsync the directory), so a power cut
leaves either the old or the new version, never half of one. Writes are rare (minutes apart): SD cards die
of writes.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

from firmware.protocol.replay import write_atomically

log = logging.getLogger(__name__)


class StateStore:
    def __init__(self, state_dir: str | os.PathLike):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._times = self.dir / "times.json"
        self._playing = self.dir / "playing.json"
        self.schedule_path = self.dir / "schedule.json"
        self.policy_path = self.dir / "policy.json"  # the last accepted pushed policy (signed payload bytes)

    def _read_times(self) -> dict:
        try:
            data = json.loads(self._times.read_text())
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.warning("%s unreadable (%s): starting without remembered times", self._times, e)
            return {}

    def _time(self, key: str) -> datetime | None:
        v = self._read_times().get(key)
        try:
            return datetime.fromisoformat(v) if isinstance(v, str) else None
        except ValueError:
            return None

    @property
    def last_alive(self) -> datetime | None:
        return self._time("last_alive")

    @property
    def last_trusted(self) -> datetime | None:
        return self._time("last_trusted")

    def save_times(self, *, last_alive: datetime, last_trusted: datetime | None) -> None:
        data = {"last_alive": last_alive.isoformat()}
        if last_trusted is not None:
            data["last_trusted"] = last_trusted.isoformat()
        write_atomically(self._times, json.dumps(data).encode())

    def load_schedule_bytes(self) -> bytes | None:
        try:
            return self.schedule_path.read_bytes()
        except FileNotFoundError:
            return None

    def save_schedule_bytes(self, raw: bytes) -> None:
        write_atomically(self.schedule_path, raw)

    def load_policy_bytes(self) -> bytes | None:
        try:
            return self.policy_path.read_bytes()
        except FileNotFoundError:
            return None

    def save_policy_bytes(self, raw: bytes) -> None:
        write_atomically(self.policy_path, raw)

    # What is playing, so that a crash or power cut mid-item is accounted for at the next boot.

    def save_playing(self, record: dict) -> None:
        write_atomically(self._playing, json.dumps(record, ensure_ascii=False).encode())

    def load_playing(self) -> dict | None:
        try:
            data = json.loads(self._playing.read_text())
            return data if isinstance(data, dict) else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("%s unreadable (%s): ignoring it", self._playing, e)
            return None

    def clear_playing(self) -> None:
        try:
            self._playing.unlink()
        except FileNotFoundError:
            pass
