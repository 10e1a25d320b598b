"""`loa-district content serve` and `content add`: ranges, ETags, no path escapes, pastable output."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.error
import urllib.request

import pytest

from district.cli import main as district_main
from district.content import ContentServer, parse_range
from firmware.content import Fetcher
from tests.content.conftest import FAST, payload


@pytest.fixture
def served(tmp_path):
    data, sha = payload(10_000)
    root = tmp_path / "srv"
    root.mkdir()
    (root / f"{sha}.mp3").write_bytes(data)
    (root / "notes.txt").write_text("plain")
    (tmp_path / "secret.txt").write_text("outside")
    with ContentServer(root, port=0) as srv:
        yield srv, data, sha


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_whole_file_with_length_etag_and_immutable_cache(served):
    srv, data, sha = served
    status, headers, body = get(f"{srv.url}/{sha}.mp3")
    assert status == 200 and body == data
    assert headers["Content-Length"] == str(len(data))
    assert headers["ETag"] == f'"{sha}"'
    assert headers["Content-Type"] == "audio/mpeg"
    assert "immutable" in headers["Cache-Control"]
    assert headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize(
    ("rng", "first", "last"),
    [("bytes=100-199", 100, 199), ("bytes=9000-", 9000, 9999), ("bytes=-500", 9500, 9999), ("bytes=9990-20000", 9990, 9999)],
)
def test_single_ranges_are_served_as_206(served, rng, first, last):
    srv, data, sha = served
    status, headers, body = get(f"{srv.url}/{sha}.mp3", {"Range": rng})
    assert status == 206
    assert body == data[first : last + 1]
    assert headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
    assert headers["Content-Length"] == str(last - first + 1)


def test_range_beyond_the_end_is_416(served):
    srv, data, sha = served
    status, headers, _ = get(f"{srv.url}/{sha}.mp3", {"Range": "bytes=20000-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"


def test_several_ranges_or_a_stale_if_range_get_the_whole_file(served):
    srv, data, sha = served
    assert get(f"{srv.url}/{sha}.mp3", {"Range": "bytes=0-1,5-6"})[0] == 200
    status, _, body = get(f"{srv.url}/{sha}.mp3", {"Range": "bytes=10-", "If-Range": '"other"'})
    assert status == 200 and body == data
    assert get(f"{srv.url}/{sha}.mp3", {"Range": "bytes=10-", "If-Range": f'"{sha}"'})[0] == 206


def test_if_none_match_is_304(served):
    srv, _, sha = served
    assert get(f"{srv.url}/{sha}.mp3", {"If-None-Match": f'"{sha}"'})[0] == 304


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/", "/.hidden", "/sub/x", "/nope.mp3"])
def test_nothing_outside_the_directory_and_no_listing(served, path):
    srv, _, _ = served
    assert get(srv.url + path)[0] == 404


def test_non_hash_names_are_served_but_not_cached_forever(served):
    srv, _, _ = served
    status, headers, body = get(f"{srv.url}/notes.txt")
    assert status == 200 and body == b"plain"
    assert headers["Cache-Control"] == "no-cache"


def test_station_fetcher_resumes_against_the_district_server(served, cache):
    srv, data, sha = served
    cache.partial_path(sha).write_bytes(data[:4000])
    path = Fetcher(cache, FAST).fetch(f"{srv.url}/{sha}.mp3", sha, len(data))
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    ("header", "expected"),
    [("bytes=0-0", (0, 0)), ("bytes=5-2", None), ("items=0-1", None), ("bytes=-0", "416"), ("bytes=-", None)],
)
def test_parse_range_edge_cases(header, expected):
    assert parse_range(header, 100) == expected


def test_add_copies_under_the_hash_and_prints_what_the_schedule_needs(tmp_path, capsys):
    src = tmp_path / "Bản tin sáng.MP3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1", "-f", "mp3", str(src)], check=True
    )
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    rc = district_main(["content", "add", str(src), "--dir", str(tmp_path / "srv"),
                        "--base-url", "https://content.example.vn/loa/", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sha256"] == sha and out["size"] == src.stat().st_size
    assert out["url"] == f"https://content.example.vn/loa/{sha}.mp3"
    assert 0.9 < out["duration_s"] < 1.2
    assert (tmp_path / "srv" / f"{sha}.mp3").read_bytes() == src.read_bytes()
    assert district_main(["content", "add", str(src), "--dir", str(tmp_path / "srv")]) == 0  # idempotent
    assert f'sha256 = "{sha}"' in capsys.readouterr().out


def test_add_of_a_missing_file_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        district_main(["content", "add", str(tmp_path / "nope.mp3"), "--dir", str(tmp_path / "srv")])
    assert e.value.code == 2
    assert "nope.mp3" in capsys.readouterr().err


def test_serve_of_a_missing_directory_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        district_main(["content", "serve", str(tmp_path / "nodir"), "--port", "0"])
    assert e.value.code == 2
    assert "does not exist" in capsys.readouterr().err
