"""The district's content library (Thư viện âm thanh): ingest, measure, list and remove audio items.

`ingest` takes an upload (bytes or a path) in any format phones and recorders produce (MP3, WAV, OGG/Opus,
FLAC, M4A/AAC, WebM/Opus from a browser's MediaRecorder), decodes it **end to end** and measures it in one
ffmpeg pass: duration, integrated loudness and true peak by ITU-R BS.1770 (ffmpeg's `ebur128` filter, the
EBU R 128 meter, with `peak=true` for 4x-oversampled true peak). Why ffmpeg's meter and not pyloudnorm:
it streams (constant memory: a 1 h recording would be 1.4 GB of float64 samples for pyloudnorm, which works on
the whole array), it decodes every format we take in the same process (so measuring costs one pass, see
`benchmarks/loudness.py`), and ffmpeg is already a district dependency (`.ci/setup`). The tests hold it to
the standard's reference (a 1 kHz sine at -20 dBFS is -23.0 LUFS) and to pyloudnorm on real speech.

A file that does not decode to the end (truncated, mislabelled as another format, not audio at all) is refused
with the reason. An accepted file goes into the content directory named by its sha256 (`district.content.
add_file`, the same files `loa-district content` serves), with the extension of the format it *is*, not the one
its name claims. Metadata lives in the district SQLite database, table `library` (this module's own, created
here). Each item stores the gain that brings it to the district's target loudness (default -16 LUFS); the
schedule's gain range is -60..0 dB, so a quiet item cannot be boosted: it says "too quiet by X LU" instead.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import subprocess
import tempfile
import threading
import time
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

from district.content import add_file

TARGET_LUFS = -16.0
MAX_BYTES = 200 * 1024 * 1024  # 200 MiB: hours of speech at any sensible bit rate
MAX_TITLE = 200
SILENT_LUFS = -70.0  # BS.1770's absolute gate: below it nothing is measured
GAIN_MIN_DB, GAIN_MAX_DB = -60.0, 0.0  # Programme.gain_db's range
TTS_MAX_CHARS = 5000

# ffprobe's format name -> the extension the stored file gets
_EXT = {"mp3": ".mp3", "wav": ".wav", "ogg": ".ogg", "flac": ".flac", "mov,mp4,m4a,3gp,3g2,mj2": ".m4a",
        "matroska,webm": ".webm", "aac": ".aac", "aiff": ".aiff"}


class LibraryError(Exception):
    """An item that cannot be taken in or removed; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Measurement:
    format: str
    codec: str
    duration_s: float
    integrated_lufs: float
    true_peak_dbtp: float


@dataclass(frozen=True, slots=True)
class LibraryItem:
    sha256: str
    file: str  # name in the content directory: <sha256>.<ext>
    filename: str  # the uploaded name, made safe for display
    title: str
    category: str
    format: str
    size: int
    duration_s: float
    integrated_lufs: float
    true_peak_dbtp: float
    target_lufs: float
    gain_db: float
    too_quiet_lu: float  # > 0: even at 0 dB it plays this much below the target
    uploader: str
    uploaded: float  # unix time

    @property
    def note(self) -> str:
        if self.too_quiet_lu > 0.05:
            return f"too quiet by {self.too_quiet_lu:.1f} LU (plays at 0 dB, below the {self.target_lufs:g} LUFS target)"
        return ""


def gain_for(integrated_lufs: float, target_lufs: float = TARGET_LUFS) -> tuple[float, float]:
    """(gain_db within the schedule's -60..0 dB, how many LU it still falls short of the target)."""
    want = target_lufs - integrated_lufs
    gain = min(GAIN_MAX_DB, max(GAIN_MIN_DB, want))
    return round(gain, 1), round(max(0.0, want - GAIN_MAX_DB), 1)


def safe_filename(name: object) -> str:
    """A display name from any uploaded name: any script kept (Vietnamese, Chinese, Arabic), path separators,
    control characters (NUL) and bidi overrides removed, NFC-normalised, at most 200 characters."""
    text = unicodedata.normalize("NFC", str(name) if name is not None else "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C")  # Cc, Cf (bidi), Cs, Co, Cn
    text = text.strip().lstrip(".")
    return text[:200] or "upload"


# -- measuring -------------------------------------------------------------------------------------------


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise LibraryError(f"{args[0]} is not installed (the district needs ffmpeg to take audio in)") from None
    except subprocess.TimeoutExpired:
        raise LibraryError(f"{args[0]} took longer than {timeout:g} s on this file") from None


def probe(path: Path) -> tuple[str, str, float | None]:
    """(format name, audio codec, duration the container declares or None). LibraryError if not audio."""
    r = _run(["ffprobe", "-v", "error", "-show_entries", "format=format_name,duration:stream=codec_type,codec_name",
              "-of", "json", str(path)], 60)
    if r.returncode != 0:
        why = _last_line(r.stderr) or "unknown format"
        raise LibraryError(f"not audio that can be decoded: {why}")
    info = json.loads(r.stdout or b"{}")
    audio = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    fmt = info.get("format", {}).get("format_name", "?")
    if not audio:
        raise LibraryError(f"no audio in it (ffmpeg reads it as {fmt})")
    try:
        declared = float(info["format"]["duration"])
    except (KeyError, TypeError, ValueError):
        declared = None
    return fmt, audio[0].get("codec_name", "?"), declared


_I = re.compile(rb"^\s*I:\s+(-?[\d.]+|-inf) LUFS", re.M)
_PEAK = re.compile(rb"^\s*Peak:\s+(-?[\d.]+|-inf) dBFS", re.M)
_OUT_US = re.compile(rb"out_time_us=(\d+)")


def measure(path: str | os.PathLike) -> Measurement:
    """Decode the whole file once and measure it (BS.1770 integrated loudness and true peak, duration)."""
    path = Path(path)
    fmt, codec, declared = probe(path)
    r = _run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-xerror",
              "-i", str(path), "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-progress", "pipe:1", "-"],
             3600)
    errors = [ln for ln in r.stderr.splitlines() if b"[error]" in ln or b"[fatal]" in ln]
    if r.returncode != 0 or errors:
        raise LibraryError(f"does not decode to the end ({fmt}/{codec}): {_clean(errors[-1] if errors else r.stderr)}")
    outs = _OUT_US.findall(r.stdout)
    i, peak = _I.search(r.stderr), _PEAK.search(r.stderr)
    if not outs or not i or not peak:
        raise LibraryError(f"ffmpeg measured nothing in it ({fmt}/{codec})")
    decoded = int(outs[-1]) / 1e6
    if decoded <= 0:
        raise LibraryError("it holds no sound (0 s decoded)")
    if declared is not None and declared - decoded > max(0.5, 0.02 * declared):
        raise LibraryError(f"truncated: it says {declared:.1f} s but decodes to {decoded:.1f} s")
    integrated = _num(i.group(1))
    return Measurement(fmt, codec, round(decoded, 3), integrated, _num(peak.group(1)))


def _num(b: bytes) -> float:
    return -math.inf if b == b"-inf" else float(b)


def _clean(b: bytes) -> str:
    text = b.decode("utf-8", "replace").strip()
    text = re.sub(r"^\[[^]]*\]\s*(\[[a-z]+\]\s*)?", "", text)  # "[mp3 @ 0x..] [error] " prefixes
    text = re.sub(r"^/\S*: ", "", text)  # our temporary file's path means nothing to the uploader
    return text[:200] or "ffmpeg failed"


def _last_line(b: bytes) -> str:
    lines = [ln for ln in b.decode("utf-8", "replace").splitlines() if ln.strip()]
    return _clean(lines[-1].encode()) if lines else ""


# -- the store -------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS library (
    sha256 TEXT PRIMARY KEY, file TEXT NOT NULL, filename TEXT NOT NULL, title TEXT NOT NULL,
    category TEXT NOT NULL, format TEXT NOT NULL, size INTEGER NOT NULL, duration_s REAL NOT NULL,
    integrated_lufs REAL NOT NULL, true_peak_dbtp REAL NOT NULL, target_lufs REAL NOT NULL,
    gain_db REAL NOT NULL, too_quiet_lu REAL NOT NULL, uploader TEXT NOT NULL, uploaded REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS library_category ON library (category, title);
"""
_COLS = list(LibraryItem.__dataclass_fields__)


class Library:
    """The library over a district database file and a content directory. Thread-safe (one lock)."""

    def __init__(self, db_path: str | os.PathLike, content_dir: str | os.PathLike, *,
                 target_lufs: float = TARGET_LUFS, max_bytes: int = MAX_BYTES):
        if not -40.0 <= target_lufs <= -5.0:
            raise LibraryError(f"target loudness {target_lufs:g} LUFS is outside -40..-5 LUFS")
        self.content_dir = Path(content_dir)
        self.target_lufs = target_lufs
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ingest(self, data: bytes | str | os.PathLike, filename: str, *, title: str, category: str = "",
               uploader: str, now: float | None = None) -> LibraryItem:
        """Take an upload in: refuse it with the reason (LibraryError), or store and return it. The same
        content uploaded again returns the stored item (content-addressed)."""
        title = " ".join(str(title).split())
        if not title:
            raise LibraryError("an item needs a title")
        if len(title) > MAX_TITLE:
            raise LibraryError(f"title is {len(title)} characters, at most {MAX_TITLE}")
        category = " ".join(str(category).split())[:100]
        name = safe_filename(filename)
        with tempfile.TemporaryDirectory(prefix="loa-lib-") as tmp:
            src = Path(tmp) / "upload"
            if isinstance(data, bytes | bytearray):
                size = len(data)
                self._check_size(size)
                src.write_bytes(data)
            else:
                path = Path(data)
                try:
                    size = path.stat().st_size
                except OSError as e:
                    raise LibraryError(f"cannot read {name}: {e.strerror}") from None
                self._check_size(size)
                src = path
            m = measure(src)
            if not math.isfinite(m.integrated_lufs) or m.integrated_lufs <= SILENT_LUFS:
                raise LibraryError("it is silent (below BS.1770's -70 LUFS gate): nothing to broadcast")
            named = Path(tmp) / ("content" + _EXT.get(m.format, ".bin"))
            os.symlink(src.resolve(), named)
            dest, sha, size = add_file(named, self.content_dir)
        gain, short = gain_for(m.integrated_lufs, self.target_lufs)
        item = LibraryItem(sha, dest.name, name, title, category, m.format, size, m.duration_s,
                           m.integrated_lufs, m.true_peak_dbtp, self.target_lufs, gain, short, str(uploader)[:100],
                           time.time() if now is None else now)
        with self._lock:
            existing = self._get(sha)
            if existing is not None:
                return existing
            self._db.execute(f"INSERT INTO library ({','.join(_COLS)}) VALUES ({','.join('?' * len(_COLS))})",
                             tuple(asdict(item)[c] for c in _COLS))
        return item

    def speak(self, text: str, *, title: str, category: str = "", uploader: str, voice: str = "vi") -> LibraryItem:
        """A text read by espeak-ng, rendered to a WAV file and taken in like an upload."""
        wav = render_speech(text, voice=voice)
        return self.ingest(wav, "tts.wav", title=title, category=category, uploader=uploader)

    def _check_size(self, size: int) -> None:
        if size == 0:
            raise LibraryError("the file is empty")
        if size > self.max_bytes:
            raise LibraryError(f"the file is {size / 1e6:.1f} MB, the library takes at most {self.max_bytes / 1e6:.0f} MB")

    def _get(self, sha: str) -> LibraryItem | None:
        row = self._db.execute(f"SELECT {','.join(_COLS)} FROM library WHERE sha256 = ?", (sha,)).fetchone()
        return LibraryItem(*row) if row else None

    def get(self, sha: str) -> LibraryItem | None:
        with self._lock:
            return self._get(sha)

    def list(self, category: str | None = None) -> list[LibraryItem]:
        sql = f"SELECT {','.join(_COLS)} FROM library"
        params: tuple = ()
        if category is not None:
            sql += " WHERE category = ?"
            params = (category,)
        with self._lock:
            return [LibraryItem(*r) for r in self._db.execute(sql + " ORDER BY category, title", params)]

    def remove(self, sha: str, schedules: list) -> LibraryItem:
        """Remove an item (row and file) unless a schedule uses it: `schedules` are the documents to check
        (ScheduleDoc or its dict), e.g. the desk's drafts and sent schedules. LibraryError names them."""
        item = self.get(sha)
        if item is None:
            raise LibraryError(f"no library item {sha[:12]}")
        users = schedules_using(sha, schedules)
        if users:
            raise LibraryError(f'"{item.title}" is used by {", ".join(users)}: remove it from them first')
        with self._lock:
            self._db.execute("DELETE FROM library WHERE sha256 = ?", (sha,))
        (self.content_dir / item.file).unlink(missing_ok=True)
        return item


def schedules_using(sha: str, schedules: list) -> list[str]:
    """Names of the schedules (and programmes) whose file sources have this sha256."""
    out = []
    for doc in schedules:
        d = doc.model_dump() if hasattr(doc, "model_dump") else doc
        label = d.get("name") or d.get("title") or f"schedule v{d.get('version', '?')}"
        if d.get("target"):
            label += f" ({d['target']})"
        progs = [p.get("id", "?") for p in d.get("programmes", [])
                 if isinstance(p.get("source"), dict) and p["source"].get("sha256") == sha]
        if progs:
            out.append(f"{label}: {', '.join(progs)}")
    return out


def programme_source(item: LibraryItem, base_url: str) -> tuple[dict, float]:
    """The schedule's file source for an item (served from `base_url`, the content server) and its gain_db."""
    source = {"type": "file", "url": f"{base_url.rstrip('/')}/{item.file}", "sha256": item.sha256,
              "size": item.size, "duration_s": max(0.001, round(item.duration_s, 3))}
    return source, item.gain_db


def render_speech(text: str, *, voice: str = "vi") -> bytes:
    """WAV bytes of `text` read by espeak-ng (the preview the page plays before saving)."""
    text = " ".join(str(text).split())
    if not text:
        raise LibraryError("nothing to read: the text is empty")
    if len(text) > TTS_MAX_CHARS:
        raise LibraryError(f"the text is {len(text)} characters, at most {TTS_MAX_CHARS}")
    if not re.fullmatch(r"[a-zA-Z0-9-]{1,40}", voice):
        raise LibraryError(f"voice {voice!r} is not a voice name")
    with tempfile.TemporaryDirectory(prefix="loa-tts-") as tmp:
        out = Path(tmp) / "speech.wav"
        r = _run(["espeak-ng", "-v", voice, "-w", str(out), "--", text], 300)
        if r.returncode != 0 or not out.exists():
            raise LibraryError(f"espeak-ng could not read it: {_last_line(r.stderr) or 'no output'}")
        return out.read_bytes()
