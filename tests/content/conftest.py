"""Fixtures for content tests: a misbehaving HTTP server, a cache, payloads with their sha256."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from firmware.content import ContentCache, Fetcher, FetchPolicy
from tests.content.faultserver import FaultServer

FAST = FetchPolicy(
    attempts=4,
    socket_timeout_s=1.0,
    stall_timeout_s=1.0,
    min_bytes_per_window=1024,
    backoff_initial_s=0.01,
    backoff_max_s=0.05,
    chunk_bytes=4096,
)


def payload(n: int, seed: int = 1) -> tuple[bytes, str]:
    data = (hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1))[:n]
    return data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    s = FaultServer().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def cache(tmp_path):
    c = ContentCache(tmp_path / "cache", quota_bytes=10 * 1024 * 1024)
    yield c
    c.close()


@pytest.fixture
def retries():
    return []


@pytest.fixture
def fetcher(cache, retries):
    return Fetcher(cache, FAST, on_retry=lambda e, d: retries.append((e.kind, d)))


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs (a full SD card in miniature); skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
