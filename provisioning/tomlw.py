"""A small TOML writer for the station config (tomllib reads, nothing in the standard library writes).

Enough for our shape: tables of scalars and string lists, and arrays of tables one level down. Keys keep their
insertion order so the file reads like config/station.example.toml; None values are left out.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v!r} to TOML")
        return repr(v)
    if isinstance(v, str):
        # A JSON string is a valid TOML basic string for everything we write (ensure_ascii keeps \u escapes valid).
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, dict) for x in v)


def _pairs(table: dict) -> list[str]:
    return [
        f"{k} = {_scalar(v)}"
        for k, v in table.items()
        if v is not None and not isinstance(v, dict) and not _is_table_array(v)
    ]


def dumps(doc: dict[str, dict], header: str = "") -> str:
    out: list[str] = [header.rstrip("\n")] if header else []
    for name, table in doc.items():
        if table is None:
            continue
        if not isinstance(table, dict):
            raise TypeError(f"top-level key {name!r} must be a table")
        out += ["", f"[{name}]", *_pairs(table)]
        for sub, value in table.items():
            if _is_table_array(value):
                for item in value:
                    out += ["", f"[[{name}.{sub}]]", *_pairs(item)]
            elif isinstance(value, dict):
                out += ["", f"[{name}.{sub}]", *_pairs(value)]
    return "\n".join(out).lstrip("\n") + "\n"
