"""Turn pydantic errors into lines a technician can act on: `policy.windows[1].start: "7h" is not a time`."""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, ValidationError

ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")


def check_id(v: str) -> str:
    """Ids go into MQTT topics and file names: lowercase letters, digits and '-'."""
    if not ID_RE.match(v):
        raise ValueError(f'"{v}" is not a valid id: use lowercase letters, digits and "-" (at most 63)')
    return v


def check_timezone(v: str) -> str:
    """An IANA zone name this system knows, e.g. Asia/Ho_Chi_Minh; a near miss gets a suggestion."""
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(v, sorted(available_timezones()), n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise ValueError(f'unknown timezone "{v}"{hint}') from None
    return v


TimeZoneName = Annotated[str, AfterValidator(check_timezone)]


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # pydantic adds union-member and validator names to the location; they mean nothing to users
            if part.startswith(("function-", "tagged-union", "int", "str", "none", "float")) or "[" in part:
                continue
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(err: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    problems = []
    errors = err.errors()
    for e in errors:
        if e["type"] == "too_short" and any(
            len(o["loc"]) > len(e["loc"]) and o["loc"][: len(e["loc"])] == e["loc"] for o in errors
        ):
            continue  # "0 items after validation" only because every item had its own error, shown below
        where = _loc(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            parent_fields = _fields_at(model, e["loc"][:-1]) if model else []
            close = difflib.get_close_matches(str(e["loc"][-1]), parent_fields, n=1)
            if close:
                msg += f' (did you mean "{close[0]}"?)'
        elif e["type"] == "missing":
            msg = "missing (required)"
        else:
            msg += f" (you wrote {e['input']!r})" if _shows_input(e) else ""
        problems.append(f"{where}: {msg}")
    # pydantic can report one bad value once per union member; keep the first of each
    return list(dict.fromkeys(problems))


def _shows_input(e: dict) -> bool:
    inp = e.get("input")
    return isinstance(inp, (int, float, str)) and not isinstance(inp, bool) and "you wrote" not in e["msg"] and (
        str(inp) not in e["msg"]
    )


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        args = getattr(ann, "__args__", None)
        current = next((a for a in (args or (ann,)) if hasattr(a, "model_fields")), None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))
