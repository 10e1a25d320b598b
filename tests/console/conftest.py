"""A running console (in-process HTTP server on a free port) against a real mosquitto, a district database with
a few stations, a signing key and one staff account."""

from __future__ import annotations

import http.client
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from district.console.accounts import LoginLimiter, hash_password
from district.console.server import ConsoleServer, Settings
from district.console.service import Console
from district.console.store import ConsoleStore
from district.db import DistrictDb
from district.mqtt import DistrictClient
from firmware.protocol.keys import generate, signing_key_pem
from firmware.protocol.reports import StationIds, Status

USER, PASSWORD = "can-bo", "mat-khau-dai-1"


class Clock:
    """The login limiter's clock: tests advance it instead of sleeping."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Running:
    url: str
    server: ConsoleServer
    console: Console
    store: ConsoleStore
    db: DistrictDb
    db_path: Path
    key_path: Path
    clock: Clock


def seed_station(db: DistrictDb, sid: str, state: str = "online") -> None:
    d, c, s = sid.split("/")
    now = time.time()
    ts = datetime.now(UTC) if state == "online" else None
    db.add_status(StationIds(d, c, s), Status(state=state, station=s, boot_id="b1", ts=ts), now)


def start_console(broker_url: str, tmp_path: Path, key, *, max_upload_bytes: int = 200_000,
                  content_base_url: str = "http://127.0.0.1:9/content", trusted_proxies: tuple[str, ...] = (),
                  limiter: LoginLimiter | None = None, clock: Clock | None = None) -> Running:
    """The console as `loa-district console` builds it, in this process, on a free port."""
    key_path = tmp_path / "district.key"
    if not key_path.exists():
        key_path.write_bytes(signing_key_pem(key))
    db_path = tmp_path / "district.sqlite"
    db = DistrictDb(db_path)
    store = ConsoleStore(db_path)
    store.add_user(USER, hash_password(PASSWORD), role="officer")
    client = DistrictClient.from_url(broker_url).connect()
    console = Console(db, store, key, client, content_dir=tmp_path / "content",
                      content_base_url=content_base_url)
    console.follow_stations()
    clock = clock or Clock()
    server = ConsoleServer(console, store, Settings(max_upload_bytes=max_upload_bytes), port=0,
                           limiter=limiter or LoginLimiter(now=clock), trusted_proxies=trusted_proxies).start()
    return Running(server.url, server, console, store, db, db_path, key_path, clock)


def stop_console(r: Running) -> None:
    r.server.stop()
    if r.console.client is not None:
        r.console.client.close()
    r.store.close()
    r.db.close()


@pytest.fixture
def running(broker, tmp_path):
    r = start_console(broker.url, tmp_path, generate("hv"))
    try:
        yield r
    finally:
        stop_console(r)


class Browser:
    """A tiny cookie-keeping client: enough to act like a browser without one."""

    def __init__(self, url: str):
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                value = rest.split(";")[0]
                if "Max-Age=0" in v:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
        conn.close()
        return r, data.decode("utf-8", "replace")

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, fields: dict, headers: dict | None = None):
        return self.request("POST", path, urlencode(fields).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})

    def csrf(self, path: str) -> str:
        r, body = self.get(path)
        m = re.search(r'name="csrf" value="([^"]+)"', body)
        assert m, body[:500]
        return m.group(1)

    def login(self, user: str = USER, password: str = PASSWORD, headers: dict | None = None):
        token = self.csrf("/login")
        return self.post("/login", {"csrf": token, "user": user, "password": password, "next": "/"}, headers)


def multipart(fields: dict, files: dict | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = b""
    for k, v in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    for k, (name, data) in (files or {}).items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def fleet(running):
    for sid in ("hv/hb/s1", "hv/hb/s2", "hv/hn/s3"):
        seed_station(running.db, sid)
    return running


@pytest.fixture
def logged_in(fleet):
    b = Browser(fleet.url)
    r, _ = b.login()
    assert r.status == 303
    return b
