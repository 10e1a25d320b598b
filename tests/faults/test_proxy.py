"""The fault proxy itself: what each mode does to bytes and connections (an echo server behind it)."""

from __future__ import annotations

import socket
import threading

import pytest

from simulator.proxy import FaultProxy


class Echo:
    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, name="echo", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.close()


def client(proxy: FaultProxy) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    assert proxy.wait_for(lambda p: p.open_connections >= 1, 5) or proxy.refused
    return s


def roundtrip(s: socket.socket, data: bytes, timeout: float = 5.0) -> bytes:
    s.settimeout(timeout)
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def test_pass_forwards_both_ways(echo):
    with FaultProxy(echo.port) as proxy, client(proxy) as s:
        assert roundtrip(s, b"xin chao") == b"xin chao"
        assert proxy.bytes_up == proxy.bytes_down == 8


def test_drop_swallows_bytes_but_keeps_the_connection_then_restore_ends_it(echo):
    with FaultProxy(echo.port) as proxy, client(proxy) as s:
        proxy.drop()
        s.sendall(b"lost")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(4096)  # nothing comes back, and the connection is not closed either
        proxy.restore()
        s.settimeout(5)
        assert s.recv(4096) == b""  # the swallowed stream cannot resume: closed


def test_stall_holds_bytes_until_restored(echo):
    with FaultProxy(echo.port) as proxy, client(proxy) as s:
        proxy.stall()
        s.sendall(b"later")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(4096)
        proxy.restore()
        s.settimeout(5)
        assert s.recv(4096) == b"later"


def test_cut_closes_connections_and_refuses_new_ones_until_restored(echo):
    with FaultProxy(echo.port) as proxy:
        s = client(proxy)
        proxy.cut()
        s.settimeout(5)
        assert s.recv(4096) == b""
        s.close()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s2:
            s2.settimeout(5)
            assert s2.recv(4096) == b""  # accepted and closed at once: a refused connection
        assert proxy.refused == 1
        proxy.restore()
        with client(proxy) as s3:
            assert roundtrip(s3, b"back") == b"back"


def test_set_upstream_moves_new_connections_to_another_server(echo):
    other = Echo()
    try:
        with FaultProxy(echo.port) as proxy:
            with client(proxy) as s:
                assert roundtrip(s, b"a") == b"a"
                proxy.set_upstream(other.port)
                s.settimeout(5)
                assert s.recv(4096) == b""  # open connections are closed by the failover
            with client(proxy) as s:
                assert roundtrip(s, b"b") == b"b"
            assert other.accepted == 1 and echo.accepted == 1
    finally:
        other.close()
