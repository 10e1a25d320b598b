"""From the district's `content add` to the station's player: a file added, served, prefetched, verified and
decoded by the audio layer through the resolver; a tampered copy refused before it can play."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import timedelta

import numpy as np
import pytest

from district.content import ContentServer, add_file
from firmware.audio import SourceError
from firmware.audio.sources import open_source
from firmware.content import Fetcher, Need, Prefetcher
from firmware.core.sources import FileSpec, StreamSpec
from tests.content.conftest import FAST
from tests.content.test_prefetch import NOW, Statuses


@pytest.fixture
def programme(tmp_path):
    src = tmp_path / "ban-tin.mp3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=500:duration=2", "-ac", "1", str(src)],
        check=True,
    )
    path, sha, size = add_file(src, tmp_path / "srv")
    return tmp_path / "srv", path, sha, size


def test_added_file_is_fetched_verified_and_plays(programme, cache):
    root, path, sha, size = programme
    statuses = Statuses()
    with ContentServer(root, port=0) as srv:
        url = f"{srv.url}/{path.name}"
        p = Prefetcher(cache, Fetcher(cache, FAST), now=lambda: NOW, on_status=statuses)
        p.start()
        try:
            p.set_needs([Need(url, sha, size, NOW + timedelta(hours=2))])
            statuses.wait_for(sha, "ready")
        finally:
            p.stop()
    source = open_source(FileSpec(url=url, sha256=sha, duration_s=2.0), 16000, resolve=p.resolve)
    try:
        audio = np.concatenate([source.read(1600) for _ in range(10)])
    finally:
        source.close()
    peak_hz = np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio)
    assert abs(peak_hz - 500) < 20


def test_tampered_copy_on_the_server_never_reaches_the_player(programme, cache):
    root, path, sha, size = programme
    data = bytearray(path.read_bytes())
    data[size // 2] ^= 0xFF  # one flipped byte in the middle of the audio
    path.write_bytes(bytes(data))
    statuses = Statuses()
    with ContentServer(root, port=0) as srv:
        url = f"{srv.url}/{path.name}"
        p = Prefetcher(cache, Fetcher(cache, FAST), now=lambda: NOW, on_status=statuses)
        p.start()
        try:
            p.set_needs([Need(url, sha, size, NOW + timedelta(hours=2))])
            statuses.wait_for(sha, "failed")
        finally:
            p.stop()
    assert hashlib.sha256(path.read_bytes()).hexdigest() != sha
    with pytest.raises(SourceError, match="not in the content cache"):
        open_source(FileSpec(url=url, sha256=sha, duration_s=2.0), 16000, resolve=p.resolve)
    assert statuses.states(sha)[-1] == "missing"


def test_the_audio_layer_opens_a_relay_for_a_stream_spec(tmp_path):
    source = open_source(StreamSpec(urls=("http://127.0.0.1:9/none",)), 16000)
    try:
        assert len(source.read(320)) == 320  # never empty: silence while nothing plays
    finally:
        source.close()
