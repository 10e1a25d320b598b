"""A running console (in-process HTTP server on a free port) against a real mosquitto, a district database with
a few stations, a signing key and one staff account."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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


@dataclass
class Running:
    url: str
    server: ConsoleServer
    console: Console
    store: ConsoleStore
    db: DistrictDb
    db_path: Path
    key_path: Path


def seed_station(db: DistrictDb, sid: str, state: str = "online") -> None:
    d, c, s = sid.split("/")
    now = time.time()
    ts = datetime.now(UTC) if state == "online" else None
    db.add_status(StationIds(d, c, s), Status(state=state, station=s, boot_id="b1", ts=ts), now)


def start_console(broker_url: str, tmp_path: Path, key, *, max_upload_bytes: int = 200_000,
                  content_base_url: str = "http://127.0.0.1:9/content") -> Running:
    """The console as `loa-district console` builds it, in this process, on a free port."""
    key_path = tmp_path / "district.key"
    if not key_path.exists():
        key_path.write_bytes(signing_key_pem(key))
    db_path = tmp_path / "district.sqlite"
    db = DistrictDb(db_path)
    store = ConsoleStore(db_path)
    store.add_user(USER, hash_password(PASSWORD))
    client = DistrictClient.from_url(broker_url).connect()
    console = Console(db, store, key, client, content_dir=tmp_path / "content",
                      content_base_url=content_base_url)
    console.follow_stations()
    server = ConsoleServer(console, store, Settings(max_upload_bytes=max_upload_bytes), port=0,
                           limiter=LoginLimiter(attempts=5, window_s=300)).start()
    return Running(server.url, server, console, store, db, db_path, key_path)


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
