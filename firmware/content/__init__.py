"""Programme audio delivered by the district: a verified, content-addressed cache, an HTTP fetcher with
resume, and a prefetch worker that keeps everything due in the next hours on disk.

    cache = ContentCache(state_dir / "content", quota_bytes=2 * 1024**3)
    fetcher = Fetcher(cache)
    prefetch = Prefetcher(cache, fetcher, now=clock.wall, on_status=...)
    prefetch.start()
    prefetch.set_needs(needs_from_segments(plan.segments_between(now - keep_past, now + horizon)))
    resolve = prefetch.resolve          # FileSpec -> str | None, for firmware.audio.sources
"""

from __future__ import annotations

from firmware.content.cache import CacheError, ContentCache, HashMismatch, is_sha256
from firmware.content.fetch import Fetcher, FetchError, FetchPolicy
from firmware.content.prefetch import MissingContent, Need, Prefetcher, needs_from_segments

__all__ = [
    "CacheError",
    "ContentCache",
    "HashMismatch",
    "is_sha256",
    "Fetcher",
    "FetchError",
    "FetchPolicy",
    "MissingContent",
    "Need",
    "Prefetcher",
    "needs_from_segments",
]
