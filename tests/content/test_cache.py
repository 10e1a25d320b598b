"""The content cache: only verified bytes are playable; quota with LRU eviction that spares what is needed."""

from __future__ import annotations

import pytest

from firmware.content import CacheError, ContentCache, HashMismatch
from firmware.core.sources import FileSpec
from tests.content.conftest import payload


class Ticker:
    """A wall clock that moves one second per reading, so least-recently-used has a strict order."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        self.t += 1
        return self.t


def put(cache: ContentCache, data: bytes, sha: str):
    tmp = cache.partial_path(sha)
    tmp.write_bytes(data)
    return cache.commit(sha, tmp, expected_size=len(data))


def test_committed_file_is_found_by_its_hash(cache):
    data, sha = payload(5000)
    path = put(cache, data, sha)
    assert cache.path_for(sha) == path
    assert path.read_bytes() == data
    assert cache.resolve(FileSpec(url="http://x/a.mp3", sha256=sha)) == str(path)


def test_wrong_hash_is_deleted_and_never_playable(cache):
    data, sha = payload(5000)
    tmp = cache.partial_path(sha)
    tmp.write_bytes(data[:-1] + b"X")
    with pytest.raises(HashMismatch, match="sha256 mismatch"):
        cache.commit(sha, tmp)
    assert not tmp.exists()
    assert cache.path_for(sha) is None
    assert cache.resolve(FileSpec(url="http://x/a.mp3", sha256=sha)) is None


def test_wrong_size_is_deleted(cache):
    data, sha = payload(5000)
    tmp = cache.partial_path(sha)
    tmp.write_bytes(data)
    with pytest.raises(CacheError, match="5000 bytes, expected 4000"):
        cache.commit(sha, tmp, expected_size=4000)
    assert not tmp.exists() and sha not in cache


@pytest.mark.parametrize("bad", ["", "abc", "G" * 64, "A" * 64, None, 42])
def test_bad_hashes_resolve_to_nothing(cache, bad):
    assert cache.path_for(bad) is None
    assert cache.resolve(FileSpec(url="http://x/a.mp3", sha256=bad)) is None


def test_unverified_url_without_hash_is_not_resolved_but_local_path_is(cache):
    assert cache.resolve(FileSpec(url="http://x/a.mp3")) is None
    assert cache.resolve(FileSpec(path="/srv/local.wav")) == "/srv/local.wav"


def test_least_recently_used_goes_first_when_over_quota(tmp_path):
    cache = ContentCache(tmp_path / "c", quota_bytes=3000, wall=Ticker())
    (a, sa), (b, sb), (c, sc) = payload(1000, 1), payload(1000, 2), payload(1000, 3)
    put(cache, a, sa)
    put(cache, b, sb)
    put(cache, c, sc)
    cache.path_for(sa)  # a is used again: b is now the oldest
    d, sd = payload(1000, 4)
    put(cache, d, sd)
    assert sb not in cache
    assert all(s in cache for s in (sa, sc, sd))
    assert cache.usage().bytes == 3000


def test_pinned_and_held_files_survive_eviction(tmp_path):
    cache = ContentCache(tmp_path / "c", quota_bytes=2000, wall=Ticker())
    (a, sa), (b, sb), (c, sc) = payload(1000, 1), payload(1000, 2), payload(1000, 3)
    put(cache, a, sa)
    put(cache, b, sb)
    cache.set_pinned([sa])
    with cache.hold(sb):
        put(cache, c, sc)  # nothing evictable: over quota rather than losing needed content
        assert all(s in cache for s in (sa, sb, sc))
        assert not cache.make_room(1000)
    assert cache.make_room(1000)  # b is no longer held: c or b goes, a stays
    assert sa in cache
    assert cache.usage().bytes <= 1000 + 1000


def test_index_survives_restart_and_a_corrupt_index_is_rebuilt(tmp_path):
    root = tmp_path / "c"
    cache = ContentCache(root, quota_bytes=10_000)
    data, sha = payload(1234)
    put(cache, data, sha)
    cache.close()
    again = ContentCache(root, quota_bytes=10_000)
    assert again.path_for(sha) is not None and again.usage().bytes == 1234
    (root / "index.json").write_text("{not json")
    (root / "objects" / "stray.tmp").write_text("junk")
    rebuilt = ContentCache(root, quota_bytes=10_000)
    assert rebuilt.path_for(sha) is not None
    assert not (root / "objects" / "stray.tmp").exists()


def test_a_file_lost_from_disk_is_dropped_not_returned(cache):
    data, sha = payload(100)
    path = put(cache, data, sha)
    path.unlink()
    assert cache.path_for(sha) is None
    assert sha not in cache


def test_corruption_on_disk_is_caught_by_verify(cache):
    data, sha = payload(100)
    path = put(cache, data, sha)
    path.write_bytes(b"rotten SD card")
    assert cache.verify(sha) is False
    assert cache.path_for(sha) is None


def test_quota_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="quota must be > 0"):
        ContentCache(tmp_path / "c", quota_bytes=0)


def test_unfinished_downloads_count_against_the_quota_and_can_be_pruned(tmp_path):
    cache = ContentCache(tmp_path / "c", quota_bytes=3000, wall=Ticker())
    (a, sa), (_, sb), (_, sc) = payload(1000, 1), payload(10, 2), payload(10, 3)
    put(cache, a, sa)
    cache.partial_path(sb).write_bytes(b"x" * 1500)
    cache.partial_path(sc).write_bytes(b"y" * 100)
    assert cache.usage().bytes == 2600
    assert cache.make_room(400) and sa in cache
    assert cache.make_room(1400) and sa not in cache  # the partial's bytes are real: a had to go
    assert cache.prune_partials(keep=[sc]) == 1
    assert not cache.partial_path(sb).exists() and cache.partial_path(sc).exists()
