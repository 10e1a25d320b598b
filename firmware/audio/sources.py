"""Turn a `firmware.core.sources` spec into a streaming `firmware.ports.Source` at the player's rate."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np

from firmware.audio import SourceError
from firmware.audio.filesource import FileSource
from firmware.audio.speech import SpeechSource
from firmware.audio.tones import SilenceSource, ToneSource
from firmware.core.sources import (
    FileSpec,
    SequenceSpec,
    SilenceSpec,
    SourceSpec,
    SpeechSpec,
    StreamSpec,
    ToneSpec,
)

log = logging.getLogger(__name__)

Resolver = Callable[[FileSpec], "str | None"]
MAX_REPEAT = 100


def open_source(spec: SourceSpec, rate: int, *, resolve: Resolver | None = None, on_switch=None,
                play_id: str | None = None):
    """Open `spec` as a Source at `rate` Hz. Raises `SourceError` with a readable reason.

    `on_switch(from, to, reason)`: live relays report URL switches; `play_id` is only for openers that wrap
    this one (the app ties relay switches to the item being played)."""
    if isinstance(spec, FileSpec):
        return FileSource(_file_path(spec, resolve), rate)
    if isinstance(spec, ToneSpec):
        return ToneSource(spec.kind, spec.duration_s, rate, spec.freq_hz)
    if isinstance(spec, SilenceSpec):
        return SilenceSource(spec.duration_s, rate)
    if isinstance(spec, SpeechSpec):
        return SpeechSource(spec.text, rate, lang=spec.lang)
    if isinstance(spec, SequenceSpec):
        return SequenceSource(spec, rate, resolve=resolve)
    if isinstance(spec, StreamSpec):
        return _open_stream(spec, rate, on_switch)
    raise SourceError(f"cannot play a {type(spec).__name__}: not a source spec")


def _file_path(spec: FileSpec, resolve: Resolver | None) -> str:
    if spec.path:
        return spec.path
    what = spec.url or (f"sha256 {spec.sha256}" if spec.sha256 else "a file with neither path nor url")
    if resolve is None:
        raise SourceError(f"content not available: {what} (no content cache configured)")
    path = resolve(spec)
    if not path:
        raise SourceError(f"content not available: {what} is not in the content cache")
    return path


def _open_stream(spec: StreamSpec, rate: int, on_switch=None):
    # Imported lazily: the live relay (firmware/audio/relay/) is optional and may pull in network code.
    try:
        from firmware.audio import relay
    except ImportError as e:
        raise SourceError(f"live relay not available in this build: {e}") from e
    return relay.open_stream(spec, rate, on_switch=on_switch,
                             fallback_open=lambda path: FileSource(path, rate))


class SequenceSource:
    """Parts back to back, the whole repeated, with `gap_s` of silence between consecutive parts.

    Parts are opened one at a time, when the previous one ends, so a sequence of long files costs no more
    than one file. A part that fails raises SourceError naming which part it was.
    """

    def __init__(self, spec: SequenceSpec, rate: int, *, resolve: Resolver | None = None):
        if not spec.parts:
            raise SourceError("sequence has no parts")
        if not (1 <= spec.repeat <= MAX_REPEAT):
            raise SourceError(f"sequence repeat {spec.repeat} is out of range [1, {MAX_REPEAT}]")
        if not (0 <= spec.gap_s <= 60):
            raise SourceError(f"sequence gap {spec.gap_s} s is out of range [0, 60]")
        self.rate = rate
        self._spec = spec
        self._resolve = resolve
        self._plan = self._steps()
        self._current = None
        self._label = ""
        self._advance()

    def _steps(self) -> Iterator[tuple[str, SourceSpec]]:
        n = len(self._spec.parts)
        first = True
        for r in range(self._spec.repeat):
            for i, part in enumerate(self._spec.parts):
                if not first and self._spec.gap_s > 0:
                    yield "gap", SilenceSpec(self._spec.gap_s)
                first = False
                yield f"part {i + 1}/{n} (repeat {r + 1}/{self._spec.repeat}, {type(part).__name__})", part

    def _advance(self) -> bool:
        if self._current is not None:
            self._current.close()
            self._current = None
        step = next(self._plan, None)
        if step is None:
            return False
        self._label, part = step
        try:
            self._current = open_source(part, self.rate, resolve=self._resolve)
        except SourceError as e:
            raise SourceError(f"sequence {self._label}: {e}") from e
        return True

    def read(self, frames: int) -> np.ndarray:
        while self._current is not None:
            try:
                block = self._current.read(frames)
            except SourceError as e:
                raise SourceError(f"sequence {self._label}: {e}") from e
            if len(block):
                return block
            if not self._advance():
                break
        return np.zeros(0, dtype=np.float32)

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        self._plan = iter(())


def skip(source, seconds: float) -> None:
    """Join in progress: `source.seek()` when it has one, else decode and discard."""
    if seconds <= 0:
        return
    seek = getattr(source, "seek", None)
    if seek is not None:
        seek(seconds)
        return
    left = int(seconds * source.rate)
    while left > 0:
        got = source.read(min(left, 65536))
        if len(got) == 0:
            return
        left -= len(got)
