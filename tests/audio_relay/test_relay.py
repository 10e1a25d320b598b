"""The live relay against real local stream servers: plays MP3 and Ogg, fails over on stalls, garbage and
errors, comes back to the primary, loops the fallback file, and never blocks or raises in read()."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from firmware.audio.relay import open_stream
from firmware.core.sources import StreamSpec
from tests.audio_relay.conftest import (
    BLOCK,
    FAST,
    RATE,
    Player,
    Switches,
    add_stream,
    ffmpeg_children,
    random_bytes,
)


@pytest.fixture
def switches():
    return Switches()


@pytest.fixture
def relay(switches):
    opened = []

    def _open(urls, fallback=None, **kw):
        kw.setdefault("timings", FAST)
        src = open_stream(StreamSpec(tuple(urls), fallback), RATE, on_switch=switches, **kw)
        opened.append(src)
        return src

    yield _open
    for src in opened:
        src.close()


@pytest.mark.parametrize(
    ("kind", "ctype", "hz"),
    [("mp3", "audio/mpeg", 440), ("ogg", "application/ogg", 880), ("mp3", "application/octet-stream", 440)],
)
def test_stream_is_decoded_and_played(server, media, relay, switches, kind, ctype, hz):
    add_stream(server, "live", media[kind], content_type=ctype)
    src = relay([server.url("live")])
    with Player(src) as player:
        player.wait_for_freq(hz)
    assert switches.calls[0][:3] == (None, server.url("live"), "start")
    assert src.current == server.url("live")


def test_garbage_stream_is_switched_away_from(server, media, relay, switches):
    add_stream(server, "garbage", random_bytes())
    add_stream(server, "backup", media["mp3"])
    src = relay([server.url("garbage"), server.url("backup")])
    with Player(src) as player:
        _, to, reason, _ = switches.wait_for(lambda f, t, r, _: f == server.url("garbage"))
        player.wait_for_freq(440)
        assert player.errors == []
    assert to == server.url("backup")
    assert "undecodable" in reason or "decoder exited" in reason


def test_html_page_instead_of_audio_is_refused(server, media, relay, switches):
    server.add("portal", body=b"<html>Please log in to the 3G portal</html>", content_type="text/html")
    add_stream(server, "backup", media["mp3"])
    relay([server.url("portal"), server.url("backup")])
    _, _, reason, _ = switches.wait_for(lambda f, t, r, _: f == server.url("portal"))
    assert "not audio: Content-Type 'text/html'" in reason


@pytest.mark.parametrize("failure", ["404", "refused", "bad-url"])
def test_dead_primary_fails_over_at_once(server, media, relay, switches, failure):
    add_stream(server, "backup", media["mp3"])
    server.add("missing", status=404)
    primary = {
        "404": server.url("missing"),
        "refused": "http://127.0.0.1:9/live",
        "bad-url": "htp:/nonsense",
    }[failure]
    t0 = time.monotonic()
    # a stall timeout far above the bound: "at once" is told from "after waiting for a stall" on any machine
    src = relay([primary, server.url("backup")], timings=dataclasses.replace(FAST, stall_s=10.0))
    _, to, reason, at = switches.wait_for(lambda f, t, r, _: f == primary)
    assert to == server.url("backup") and at - t0 < 5.0
    assert {"404": "HTTP 404", "refused": "cannot connect", "bad-url": "not an http(s) URL"}[failure] in reason
    with Player(src) as player:
        player.wait_for_freq(440)


def test_stalled_stream_fails_over_within_the_stall_timeout(server, media, relay, switches):
    last_sent = [0.0]
    data = media["mp3"]

    def stalls():
        for i in range(0, 24_000, 2000):  # ~3 s of audio, then silence on the wire, connection open
            last_sent[0] = time.monotonic()
            yield data[i : i + 2000]
        server.release.wait(30)
        yield b""

    add_stream(server, "primary", stalls, bytes_per_s=8000)
    add_stream(server, "backup", media["mp3_b"])
    src = relay([server.url("primary"), server.url("backup")])
    with Player(src) as player:
        player.wait_for_freq(440)
        _, to, reason, at = switches.wait_for(lambda f, t, r, _: f == server.url("primary"))
        player.wait_for_freq(1000)
        assert player.max_read_s < 0.5, "read() blocked during the stall"  # the stall lasts 1 s
    assert to == server.url("backup") and reason.startswith("stalled: no data for")
    # Detected after stall_s, plus what the OS and ffmpeg had buffered; well within twice the timeout.
    assert FAST.stall_s - 0.2 <= at - last_sent[0] <= 2 * FAST.stall_s + 0.5


def test_primary_that_recovers_is_switched_back_to(server, media, relay, switches):
    primary = add_stream(server, "primary", media["mp3"])
    primary.status = 503
    add_stream(server, "backup", media["mp3_b"])
    src = relay([server.url("primary"), server.url("backup")])
    with Player(src) as player:
        player.wait_for_freq(1000)
        primary.status = 200
        _, _, reason, _ = switches.wait_for(lambda f, t, r, _: t == server.url("primary") and f is not None)
        player.wait_for_freq(440)
    assert reason == "recovered"
    assert src.current == server.url("primary")
    assert [c[1] for c in switches.calls] == [server.url("primary"), server.url("backup"), server.url("primary")]


def test_rechecks_of_a_dead_primary_back_off_to_the_maximum(server, media, relay, switches):
    server.add("primary", status=503)
    add_stream(server, "backup", media["mp3"])
    timings = dataclasses.replace(FAST, recheck_s=0.2, recheck_max_s=0.8)
    relay([server.url("primary"), server.url("backup")], timings=timings)
    done = threading.Event()

    def enough():
        return sum(1 for p, _ in server.request_times if p == "/primary") >= 6

    assert _wait(enough, 15, done), f"primary re-checked only {server.request_times}"
    times = [t for p, t in server.request_times if p == "/primary"]
    gaps = np.diff(times)
    assert gaps[0] >= 0.15  # the first re-check waits recheck_s
    assert gaps[2] > gaps[0] * 1.5  # then backs off
    assert max(gaps) < timings.recheck_max_s + 0.5  # capped


def test_all_streams_down_plays_the_fallback_file_in_a_loop(server, media, relay, switches):
    server.add("a", status=503)
    server.add("b", status=404)
    src = relay([server.url("a"), server.url("b")], media["fallback"])
    with Player(src) as player:
        _, to, _, _ = switches.wait_for(lambda f, t, r, _: t and t.startswith("file://"))
        player.wait_for_freq(660)
        start = player.blocks
        with player._cond:
            assert player._cond.wait_for(lambda: player.blocks > start + 100, 10)  # 2 s: the 0.7 s file looped
        assert abs(player.freq - 660) < 25
    assert to == f"file://{media['fallback']}"


class ToneSource:
    """A tiny Source standing in for the audio layer's file decoder: 0.3 s of 300 Hz."""

    opened = 0

    def __init__(self):
        t = np.arange(int(0.3 * RATE)) / RATE
        self._data = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
        self._pos = 0
        ToneSource.opened += 1
        self.rate = RATE

    def read(self, n):
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def close(self):
        pass


def test_fallback_open_decodes_the_fallback_when_given(server, media, relay, switches):
    ToneSource.opened = 0
    server.add("a", status=503)
    src = relay([server.url("a")], media["fallback"], fallback_open=lambda path: ToneSource())
    with Player(src) as player:
        player.wait_for_freq(300)
        with player._cond:
            assert player._cond.wait_for(lambda: ToneSource.opened >= 3, 10)


def test_nothing_available_gives_silence_and_is_reported(server, relay, switches):
    server.add("a", status=503)
    src = relay([server.url("a")], "/nonexistent/fallback.wav")
    with Player(src) as player:
        _, to, reason, _ = switches.wait_for(lambda f, t, r, _: f == server.url("a"))
        player.wait_for_silence()
        assert player.errors == [] and player.max_read_s < 0.5
    assert to is None
    assert "fallback file unusable" in reason and "silence" in reason


def test_no_urls_and_no_fallback_is_silence_not_a_crash(relay, switches):
    src = relay([])
    assert np.array_equal(src.read(BLOCK), np.zeros(BLOCK, dtype=np.float32))
    assert switches.calls[0][1] is None


def test_server_closing_the_stream_fails_over(server, media, relay, switches):
    data = media["mp3"]

    def short():
        yield from (data[i : i + 2000] for i in range(0, 16_000, 2000))

    add_stream(server, "primary", short)
    add_stream(server, "backup", media["mp3_b"])
    relay([server.url("primary"), server.url("backup")])
    _, _, reason, _ = switches.wait_for(lambda f, t, r, _: f == server.url("primary"))
    assert "closed the stream" in reason or "decoder exited" in reason


def test_close_stops_every_thread_and_reaps_ffmpeg(server, media, switches):
    add_stream(server, "primary", media["mp3"])
    server.add("dead", status=503)
    src = open_stream(
        StreamSpec((server.url("dead"), server.url("primary"))), RATE, on_switch=switches, timings=FAST
    )
    switches.wait_for(lambda f, t, r, _: t == server.url("primary"))
    with Player(src) as player:
        player.wait_for_freq(440)
    assert ffmpeg_children()
    src.close()
    src.close()  # safe twice
    assert not [t.name for t in threading.enumerate() if t.name.startswith("loa-relay")]
    assert ffmpeg_children() == []


def _wait(pred, timeout, event: threading.Event) -> bool:
    """Poll a condition owned by another process (the server's request log) on an Event with a timeout."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        event.wait(0.05)
    return True


def test_redirected_stream_is_followed(server, media, relay, switches):
    add_stream(server, "real", media["mp3"])
    server.add("short-link", redirect="/real")
    src = relay([server.url("short-link")])
    with Player(src) as player:
        player.wait_for_freq(440)
    assert len(switches.calls) == 1


def test_shoutcast_icy_status_line_is_accepted(media, relay):
    """SHOUTcast v1 answers `ICY 200 OK`, which many HTTP clients reject."""
    import socket

    stop = threading.Event()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(5)

    def serve():
        conn, _ = lsock.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"ICY 200 OK\r\nicy-name: Dai tinh\r\ncontent-type: audio/mpeg\r\n\r\n")
            data = media["mp3"]
            for i in range(0, len(data), 2000):
                if stop.wait(2000 / 12_000):
                    return
                try:
                    conn.sendall(data[i : i + 2000])
                except OSError:
                    return

    t = threading.Thread(target=serve, name="test-icy", daemon=True)
    t.start()
    try:
        src = relay([f"http://127.0.0.1:{lsock.getsockname()[1]}/stream"])
        with Player(src) as player:
            player.wait_for_freq(440)
        src.close()
    finally:
        stop.set()
        t.join(5)
        lsock.close()


@pytest.fixture
def mute_listener():
    """A TCP port that accepts connections (kernel backlog) but never answers: a hung server."""
    import socket

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    yield f"http://127.0.0.1:{lsock.getsockname()[1]}/live"
    lsock.close()


def test_server_that_never_answers_counts_as_stalled(mute_listener, media, relay, switches):
    t0 = time.monotonic()
    src = relay([mute_listener], media["fallback"])
    _, to, reason, at = switches.wait_for(lambda f, t, r, _: f == mute_listener)
    assert reason.startswith("stalled") and to.startswith("file://")
    assert at - t0 < 2 * FAST.stall_s + 0.5
    with Player(src) as player:
        player.wait_for_freq(660)


@pytest.mark.parametrize("state", ["playing", "hung-connect", "failing-over"])
def test_close_is_quick_so_an_alert_is_not_kept_waiting(server, media, mute_listener, switches, state):
    add_stream(server, "live", media["mp3"])
    urls = {
        "playing": [server.url("live")],
        "hung-connect": [mute_listener],
        "failing-over": [mute_listener, server.url("live")],
    }[state]
    # hung-connect: a connect timeout far above the bound, so waiting for it could not pass as "quick"
    timings = dataclasses.replace(FAST, connect_timeout_s=10.0) if state == "hung-connect" else FAST
    src = open_stream(StreamSpec(tuple(urls), media["fallback"]), RATE, on_switch=switches, timings=timings)
    if state == "playing":
        with Player(src) as player:
            player.wait_for_freq(440)
    elif state == "failing-over":
        switches.wait_for(lambda f, t, r, _: f == mute_listener)
    t = time.monotonic()
    src.close()
    assert time.monotonic() - t < 2.0
    assert not [t.name for t in threading.enumerate() if t.name.startswith("loa-relay")]
    assert ffmpeg_children() == []


def test_from_silence_back_to_a_stream_once_it_returns(server, media, relay, switches):
    live = add_stream(server, "live", media["mp3"])
    live.status = 503
    src = relay([server.url("live")])
    with Player(src) as player:
        switches.wait_for(lambda f, t, r, _: f == server.url("live") and t is None)
        player.wait_for_silence()
        live.status = 200
        _, _, reason, _ = switches.wait_for(lambda f, t, r, _: f is None and t == server.url("live") and r != "start")
        player.wait_for_freq(440)
    assert reason == "recovered"


def test_undecodable_fallback_file_ends_in_reported_silence(server, relay, switches, tmp_path):
    bad = tmp_path / "fallback.mp3"
    bad.write_bytes(b"this is not audio at all " * 100)
    server.add("a", status=503)
    src = relay([server.url("a")], str(bad))
    with Player(src) as player:
        _, _, reason, _ = switches.wait_for(lambda f, t, r, _: f == f"file://{bad}" and t is None)
        player.wait_for_silence()
        assert player.errors == []
    assert "decoder exited" in reason
