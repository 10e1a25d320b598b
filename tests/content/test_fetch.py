"""Downloads from real local HTTP servers: resume, wrong bytes, 404, stalls, disk full. Nothing unverified
ever enters the cache."""

from __future__ import annotations

import pytest

from district.content import ContentServer
from firmware.content import ContentCache, Fetcher, FetchError, FetchPolicy
from tests.content.conftest import FAST, payload


def test_download_from_the_district_server_is_verified_and_cached(tmp_path, fetcher, cache):
    data, sha = payload(100_000)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / f"{sha}.mp3").write_bytes(data)
    with ContentServer(tmp_path / "srv", port=0) as srv:
        path = fetcher.fetch(f"{srv.url}/{sha}.mp3", sha, len(data))
    assert path.read_bytes() == data
    assert cache.path_for(sha) == path


def test_already_cached_file_is_not_downloaded_again(server, fetcher):
    data, sha = payload(5000)
    server.add("a.mp3", body=data)
    fetcher.fetch(server.url("a.mp3"), sha, len(data))
    fetcher.fetch(server.url("a.mp3"), sha, len(data))
    assert len(server.range_requests("a.mp3")) == 1


def test_cut_short_download_resumes_with_range(server, fetcher, retries):
    data, sha = payload(200_000)
    server.add("a.mp3", body=data, cut_after=70_000, cut_times=2)
    path = fetcher.fetch(server.url("a.mp3"), sha, len(data))
    assert path.read_bytes() == data
    ranges = server.range_requests("a.mp3")
    assert ranges[0] is None
    assert ranges[1] == "bytes=70000-"
    assert ranges[2] == "bytes=140000-"
    assert [k for k, _ in retries] == ["network", "network"]


def test_partial_from_a_previous_boot_is_resumed(server, cache):
    data, sha = payload(50_000)
    cache.partial_path(sha).write_bytes(data[:20_000])
    server.add("a.mp3", body=data)
    Fetcher(cache, FAST).fetch(server.url("a.mp3"), sha, len(data))
    assert server.range_requests("a.mp3") == ["bytes=20000-"]
    assert cache.path_for(sha).read_bytes() == data


def test_server_that_ignores_range_sends_the_whole_file_again(server, fetcher):
    data, sha = payload(100_000)
    server.add("a.mp3", body=data, cut_after=30_000, ignore_range=True)
    path = fetcher.fetch(server.url("a.mp3"), sha, len(data))
    assert path.read_bytes() == data
    assert server.range_requests("a.mp3")[1] == "bytes=30000-"  # asked, got a 200, started over


def test_wrong_bytes_are_deleted_reported_and_never_playable(server, fetcher, cache):
    data, sha = payload(10_000)
    server.add("a.mp3", body=b"tampered" + data[8:])
    with pytest.raises(FetchError) as e:
        fetcher.fetch(server.url("a.mp3"), sha, len(data))
    assert e.value.kind == "hash" and "sha256 mismatch" in str(e.value)
    assert server.url("a.mp3") in str(e.value)
    assert cache.path_for(sha) is None
    assert not cache.partial_path(sha).exists()
    assert len(server.range_requests("a.mp3")) == 1  # a fresh wrong file is not fetched again at once


def test_wrong_bytes_after_a_resume_are_retried_from_scratch_once(server, fetcher, cache):
    data, sha = payload(10_000)
    cache.partial_path(sha).write_bytes(b"\0" * 4000)  # a stale partial of other bytes
    server.add("a.mp3", body=data)
    path = fetcher.fetch(server.url("a.mp3"), sha, len(data))
    assert path.read_bytes() == data
    assert server.range_requests("a.mp3") == ["bytes=4000-", None]


def test_404_is_reported_and_not_hammered(server, fetcher, cache):
    _, sha = payload(100)
    with pytest.raises(FetchError, match="HTTP 404") as e:
        fetcher.fetch(server.url("nope.mp3"), sha, 100)
    assert e.value.kind == "http" and not e.value.retryable
    assert len(server.range_requests("nope.mp3")) == 1
    assert sha not in cache


def test_server_errors_are_retried_with_growing_backoff(server, fetcher, retries):
    _, sha = payload(100)
    server.add("a.mp3", status=503)
    with pytest.raises(FetchError, match="HTTP 503"):
        fetcher.fetch(server.url("a.mp3"), sha, 100)
    assert len(server.range_requests("a.mp3")) == FAST.attempts
    delays = [d for _, d in retries]
    assert len(delays) == FAST.attempts - 1
    assert all(0 < d <= FAST.backoff_max_s for d in delays)


def test_stalled_download_times_out_and_resumes_next_time(server, cache):
    data, sha = payload(50_000)
    route = server.add("a.mp3", body=data, stall_after=10_000)
    policy = FetchPolicy(attempts=1, socket_timeout_s=0.5, stall_timeout_s=5, backoff_initial_s=0.01)
    with pytest.raises(FetchError) as e:
        Fetcher(cache, policy).fetch(server.url("a.mp3"), sha, len(data))
    assert e.value.kind == "stalled" and "at byte 10000" in str(e.value)
    assert sha not in cache
    route.stall_after = None
    Fetcher(cache, policy).fetch(server.url("a.mp3"), sha, len(data))
    assert server.range_requests("a.mp3")[-1] == "bytes=10000-"
    assert cache.path_for(sha).read_bytes() == data


def test_dripping_connection_counts_as_stalled(server, cache):
    data, sha = payload(60_000)

    def drip():
        while True:
            yield b"x" * 10

    server.add("a.mp3", stream=drip, bytes_per_s=100)
    policy = FetchPolicy(attempts=1, socket_timeout_s=5, stall_timeout_s=0.5, min_bytes_per_window=1000)
    with pytest.raises(FetchError, match="only .* bytes in") as e:
        Fetcher(cache, policy).fetch(server.url("a.mp3"), sha, len(data))
    assert e.value.kind == "stalled"


def test_server_announcing_another_size_is_refused(server, fetcher, cache):
    data, sha = payload(10_000)
    server.add("a.mp3", body=data + b"more")
    with pytest.raises(FetchError, match="server has 10004 bytes, the schedule says 10000") as e:
        fetcher.fetch(server.url("a.mp3"), sha, len(data))
    assert e.value.kind == "size" and sha not in cache


def test_endless_body_is_cut_at_the_expected_size(server, fetcher, cache):
    _, sha = payload(10)

    def endless():
        while True:
            yield b"y" * 4096

    server.add("a.mp3", stream=endless)
    with pytest.raises(FetchError, match="more than 5000 bytes"):
        fetcher.fetch(server.url("a.mp3"), sha, 5000)
    assert not cache.partial_path(sha).exists()


def test_unreachable_host_is_a_network_error(fetcher):
    _, sha = payload(10)
    with pytest.raises(FetchError, match="cannot connect") as e:
        fetcher.fetch("http://127.0.0.1:9/a.mp3", sha, 10)
    assert e.value.kind == "network"


@pytest.mark.parametrize(
    ("url", "sha", "size", "what"),
    [
        ("file:///etc/passwd", "a" * 64, 10, "only http"),
        ("ftp://x/a", "a" * 64, 10, "only http"),
        ("http://x/a", "not-a-hash", 10, "sha256 must be"),
        ("http://x/a", "a" * 64, -1, "size must be"),
    ],
)
def test_bad_input_is_refused_with_the_reason(fetcher, url, sha, size, what):
    with pytest.raises(FetchError, match=what) as e:
        fetcher.fetch(url, sha, size)
    assert e.value.kind == "bad_input"


def test_file_bigger_than_the_quota_allows_is_refused_before_downloading(server, tmp_path):
    cache = ContentCache(tmp_path / "c", quota_bytes=1000)
    data, sha = payload(5000)
    server.add("a.mp3", body=data)
    with pytest.raises(FetchError, match="needs 5000 bytes; cache quota 1000") as e:
        Fetcher(cache, FAST).fetch(server.url("a.mp3"), sha, len(data))
    assert e.value.kind == "quota"
    assert server.requests == []


def test_disk_full_evicts_old_content_and_the_download_completes(server, small_disk):
    # The quota (10 MB) is a lie on this 1 MiB disk: filling it must shrink the cache, not crash.
    cache = ContentCache(small_disk / "cache", quota_bytes=10_000_000)
    retries = []
    fetcher = Fetcher(cache, FAST, on_retry=lambda e, d: retries.append(e))
    old = [payload(300_000, seed) for seed in (1, 2)]
    for i, (data, sha) in enumerate(old):
        server.add(f"old{i}", body=data)
        fetcher.fetch(server.url(f"old{i}"), sha, len(data))
    new, sha_new = payload(600_000, 3)
    server.add("new", body=new)
    path = fetcher.fetch(server.url("new"), sha_new, len(new))
    assert path.read_bytes() == new
    assert any(e.kind == "disk_full" and "disk full" in e.reason for e in retries)
    assert sum(sha in cache for _, sha in old) < 2
    assert cache.usage().quota_bytes < 10_000_000


def test_disk_full_with_only_needed_content_is_reported_without_crash(server, small_disk):
    cache = ContentCache(small_disk / "cache", quota_bytes=10_000_000)
    fetcher = Fetcher(cache, FAST)
    kept, sha_kept = payload(300_000, 1)
    server.add("kept", body=kept)
    fetcher.fetch(server.url("kept"), sha_kept, len(kept))
    cache.set_pinned([sha_kept])
    big, sha_big = payload(2_000_000, 2)
    server.add("big", body=big)
    with pytest.raises(FetchError, match="disk full at byte .* nothing evictable") as e:
        fetcher.fetch(server.url("big"), sha_big, len(big))
    assert e.value.kind == "disk_full" and not e.value.retryable
    assert cache.path_for(sha_kept).read_bytes() == kept  # needed content survived
    assert sha_big not in cache and not cache.partial_path(sha_big).exists()


@pytest.fixture
def tls_server(tmp_path):
    """The district server behind TLS with a fresh self-signed certificate for 127.0.0.1."""
    import datetime as dt
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loa test content")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = tmp_path / "cert.pem"
    key_pem = tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_pem, key_pem)
    data, sha = payload(30_000)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / f"{sha}.mp3").write_bytes(data)
    srv = ContentServer(tmp_path / "srv", port=0)
    srv.httpd.socket = server_ctx.wrap_socket(srv.httpd.socket, server_side=True)
    with srv:
        yield f"https://127.0.0.1:{srv.port}/{sha}.mp3", data, sha, ssl.create_default_context(cafile=cert_pem)


def test_https_with_the_district_ca_resumes_and_verifies(tls_server, cache):
    url, data, sha, district_ctx = tls_server
    cache.partial_path(sha).write_bytes(data[:10_000])
    path = Fetcher(cache, FAST, ssl_context=district_ctx).fetch(url, sha, len(data))
    assert path.read_bytes() == data


def test_unknown_tls_certificate_is_refused_once_not_hammered(tls_server, cache, retries):
    url, data, sha, _ = tls_server
    with pytest.raises(FetchError, match="TLS certificate refused") as e:
        Fetcher(cache, FAST, on_retry=lambda e, d: retries.append(e)).fetch(url, sha, len(data))
    assert e.value.kind == "tls" and not e.value.retryable
    assert retries == [] and sha not in cache


def test_a_deadline_bounds_the_whole_fetch_for_a_waiting_player(server, cache):
    import time

    data, sha = payload(50_000)
    server.add("a.mp3", body=data, stall_after=5000)
    policy = FetchPolicy(attempts=10, socket_timeout_s=30, stall_timeout_s=30, backoff_initial_s=0.01)
    t = time.monotonic()
    with pytest.raises(FetchError) as e:
        Fetcher(cache, policy).fetch(server.url("a.mp3"), sha, len(data), deadline_s=0.5)
    # Without the deadline this fetch would take 10 attempts x a 30 s stall timeout; the bound only tells
    # "stopped at its deadline" from "ran its retries", with room for a loaded machine.
    assert time.monotonic() - t < 10
    assert e.value.kind in ("deadline", "stalled") and sha not in cache
    assert cache.partial_path(sha).stat().st_size == 5000  # kept: the prefetcher resumes it later
