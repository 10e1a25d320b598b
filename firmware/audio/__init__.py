"""Audio: sources (file, tone, speech, sequence, stream), DSP, and the player thread.

The two exceptions live here so adapters (the PyAudio sink, the live relay) can import them without pulling in
numpy-heavy modules.
"""

from __future__ import annotations


class SourceError(Exception):
    """A source could not be opened or decoded; the message says what and where, for a technician."""


class SinkError(Exception):
    """The sink (sound card, file) failed; the player reopens it with backoff."""


__all__ = ["SourceError", "SinkError"]
