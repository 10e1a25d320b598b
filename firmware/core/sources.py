"""What to play, described as values: the core says *what*, `firmware.audio` decides *how*.

Every spec is a frozen value so that commands can be compared in tests and logged. `firmware.audio.sources`
turns a spec into a streaming `Source` (see `firmware.ports.Source`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FileSpec:
    """A local audio file, or a file from the district's content store identified by URL and sha256.

    `path` wins when set; otherwise the runtime resolves `url`/`sha256` through the content cache.
    """

    path: str | None = None
    url: str | None = None
    sha256: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A live relay ("tiếp sóng"): URLs tried in order, then `fallback_path` when all are down."""

    urls: tuple[str, ...]
    fallback_path: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechSpec:
    """Text spoken offline by espeak-ng."""

    text: str
    lang: str = "vi"


@dataclass(frozen=True, slots=True)
class ToneSpec:
    """A generated signal. `kind`: "test" (1 kHz sine), "attention" (two-tone alert signal), "chime"."""

    kind: str = "test"
    duration_s: float = 2.0
    freq_hz: float = 1000.0


@dataclass(frozen=True, slots=True)
class SequenceSpec:
    """Parts played back to back, the whole repeated `repeat` times (an alert: tone, message, x3)."""

    parts: tuple[SourceSpec, ...]
    repeat: int = 1
    gap_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SilenceSpec:
    duration_s: float = 1.0


SourceSpec = FileSpec | StreamSpec | SpeechSpec | ToneSpec | SequenceSpec | SilenceSpec

__all__ = [
    "FileSpec",
    "StreamSpec",
    "SpeechSpec",
    "ToneSpec",
    "SequenceSpec",
    "SilenceSpec",
    "SourceSpec",
]
