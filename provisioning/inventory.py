"""The inventory CSV: one row per station. Every problem is reported with its line number before anything is
written, so a broken row never leaves half a district provisioned.

    commune,station,name,location,preset,audio_device
    hoa-bac,thon-1,Loa thôn 1,Nhà văn hóa thôn 1,pi-hat-v1,
"""

from __future__ import annotations

import csv
import io
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from provisioning.district import District
from provisioning.errors import InputErrors
from provisioning.progress import Progress
from provisioning.station import DEFAULT_PRESET, StationParams, load_record, params_of

REQUIRED = ("commune", "station")
OPTIONAL = ("name", "location", "preset", "audio_device")
COLUMNS = REQUIRED + OPTIONAL


@dataclass(frozen=True)
class Row:
    line: int
    params: StationParams


def read_inventory(path: Path) -> list[Row]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputErrors(str(path), [f"cannot read: {e.strerror or e}"]) from None
    try:
        text = raw.decode("utf-8-sig")  # spreadsheets save a BOM
    except UnicodeDecodeError as e:
        raise InputErrors(str(path), [f"not UTF-8 text (byte {e.start}); save the sheet as 'CSV UTF-8'"]) from None
    return parse_inventory(text, str(path))


def parse_inventory(text: str, source: str = "<inventory>") -> list[Row]:
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[Row] = []
    header: list[str] | None = None
    seen: dict[str, int] = {}
    line = 1
    try:
        while True:
            line = reader.line_num + 1  # where this record starts (a quoted field may span lines)
            fields = next(reader, None)
            if fields is None:
                break
            if not fields or all(not f.strip() for f in fields) or fields[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [f.strip().lower().replace(" ", "_").replace("-", "_") for f in fields]
                unknown = [h for h in header if h not in COLUMNS]
                missing = [c for c in REQUIRED if c not in header]
                dupes = sorted({h for h in header if header.count(h) > 1})
                if unknown:
                    problems.append(f"line {line}: unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
                if missing:
                    problems.append(f"line {line}: missing required column(s) {', '.join(missing)}")
                if dupes:
                    problems.append(f"line {line}: column(s) {', '.join(dupes)} appear more than once")
                if problems:
                    raise InputErrors(source, problems)
                continue
            if len(fields) != len(header):
                problems.append(f"line {line}: {len(fields)} field(s), expected {len(header)} ({','.join(header)})")
                continue
            values = {h: f.strip() for h, f in zip(header, fields, strict=True)}
            params = StationParams(
                commune=values.get("commune", ""),
                station=values.get("station", ""),
                name=values.get("name", ""),
                location=values.get("location", ""),
                preset=values.get("preset", "") or DEFAULT_PRESET,
                audio_device=values.get("audio_device", ""),
            )
            row_problems = params.problems()
            if params.station and params.station in seen:
                row_problems.append(f"station {params.station!r} already on line {seen[params.station]}")
            elif params.station:
                seen[params.station] = line
            problems += [f"line {line}: {p}" for p in row_problems]
            rows.append(Row(line, params))
    except csv.Error as e:
        problems.append(f"line {line}: broken CSV ({e}; an unclosed quote?)")
    if header is None and not problems:
        problems.append("empty: expected a header line (" + ",".join(COLUMNS) + ") and one line per station")
    elif header is not None and not rows and not problems:
        problems.append("no stations: only a header line")
    if problems:
        raise InputErrors(source, problems)
    return rows


def compare_with_district(district: District, rows: list[Row]) -> tuple[list[Row], dict[int, list[str]]]:
    """The rows whose station is not provisioned yet, and, by line, the fields of the rows whose station was
    provisioned with other settings than the row asks for (`bulk` needs --rotate for those)."""
    missing: list[Row] = []
    changed: dict[int, list[str]] = {}
    for row in rows:
        record = load_record(district, row.params.station)
        if record is None:
            missing.append(row)
            continue
        have = params_of(record)
        differ = [f.name for f in fields(StationParams) if getattr(have, f.name) != getattr(row.params, f.name)]
        if differ:
            changed[row.line] = differ
    return missing, changed


def for_each_row(rows: list[Row], action: Callable[[Row], str]) -> None:
    """Run `action` on every row with a progress bar (one line per station when not on a terminal), then print
    how many rows had each outcome `action` returned: `3 station(s) in 2.1 s: 1 created, 2 unchanged`."""
    started = time.monotonic()
    counts: Counter[str] = Counter()
    bar = Progress(len(rows))
    try:
        for row in rows:
            outcome = action(row)
            counts[outcome] += 1
            bar.step(f"{row.params.commune}/{row.params.station} {outcome}")
    except BaseException:
        bar.abort()
        raise
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"{len(rows)} station(s) in {time.monotonic() - started:.1f} s: {summary}", file=sys.stdout)
