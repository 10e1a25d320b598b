"""Builders for core tests: small policies and schedules written the way people write them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from firmware.core.policy import Policy
from firmware.core.schedule import ScheduleDoc

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def policy(*windows, **kw) -> Policy:
    """policy(("05:30", "07:00", -6), ("17:00", "19:00", -12), max_sessions_per_day=2)."""
    ws = []
    for w in windows:
        start, end, cap, *days = w
        entry = {"start": start, "end": end, "cap_db": cap}
        if days:
            entry["days"] = days[0]
        ws.append(entry)
    kw.setdefault("max_sessions_per_day", 10)
    kw.setdefault("max_session_minutes", 600)
    kw.setdefault("max_minutes_per_day", 1440)
    return Policy.model_validate({"windows": ws, **kw})


def prog(pid, start, duration_s=600, level="normal", days="daily", gain_db=0.0, **extra) -> dict:
    rec = extra.pop("recurrence") if "recurrence" in extra else {"days": days}
    return {
        "id": pid,
        "title": extra.pop("title", pid),
        "level": level,
        "source": extra.pop("source", None) or {"type": "file", "path": f"/media/{pid}.mp3", "duration_s": duration_s},
        "recurrence": rec,
        "start": start,
        "gain_db": gain_db,
        **extra,
    }


def schedule(*programmes, version=1) -> ScheduleDoc:
    return ScheduleDoc.model_validate({"version": version, "programmes": list(programmes)})


def at(y, mo, d, h=0, mi=0, s=0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=TZ)
