"""A minimal HTTP/1.0 client for live streams.

Not urllib: the reader needs short socket timeouts to notice a stop request and keep reading after them
(urllib's response object is dead after one timeout), it must accept SHOUTcast's `ICY 200 OK` status line,
and asking HTTP/1.0 keeps chunked encoding out of the audio.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import ssl
import threading
import time
import urllib.parse

log = logging.getLogger(__name__)


class HttpError(Exception):
    pass


class HttpStream:
    """GET a stream with HTTP/1.0 (no chunked encoding), follow up to 5 redirects, read with timeouts."""

    MAX_HEADER = 16384

    def __init__(self, url: str, timeout: float, ssl_context: ssl.SSLContext | None):
        self.url = url
        self.timeout = timeout
        self._ssl = ssl_context
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = False

    def open(self, stop: threading.Event) -> tuple[bytes, str]:
        """Connect and read the headers; return (first body bytes, content type)."""
        url = self.url
        for _ in range(6):
            status, headers, body = self._request(url)
            if status in (301, 302, 303, 307, 308) and headers.get("location"):
                url = urllib.parse.urljoin(url, headers["location"])
                self._drop()
                if stop.is_set():
                    return b"", ""
                continue
            if status != 200:
                raise HttpError(f"HTTP {status} {headers.get(':reason', '')}".strip())
            if "chunked" in headers.get("transfer-encoding", "").lower():
                raise HttpError("unsupported Transfer-Encoding: chunked")
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            return body, ctype
        raise HttpError("too many redirects")

    def recv(self, timeout: float) -> bytes | None:
        """Up to 16 KiB; None when nothing came within `timeout`; b"" at the end of the stream."""
        sock = self._sock
        if sock is None:
            return b""
        try:
            sock.settimeout(timeout)
            return sock.recv(16384)
        except (TimeoutError, ssl.SSLWantReadError):
            return None
        except OSError:
            if self._closed:
                return b""
            raise

    def close(self) -> None:
        self._closed = True
        self._drop()

    def _drop(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _connect(self, host: str, port: int) -> socket.socket:
        """Connect without blocking `close()`: the socket is registered before anything can block on it,
        and the TCP handshake is awaited in short slices that check for a close."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # the one wait we cannot cut
        last: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, addr in infos:
            sock = socket.socket(family, kind, proto)
            with self._lock:
                if self._closed:
                    sock.close()
                    raise HttpError("closed")
                self._sock = sock
            try:
                self._handshake(sock, addr)
                return sock
            except TimeoutError:
                self._drop()
                raise
            except OSError as e:
                self._drop()
                last = e
        raise last

    def _handshake(self, sock: socket.socket, addr) -> None:
        sock.setblocking(False)
        err = sock.connect_ex(addr)
        deadline = time.monotonic() + self.timeout
        while err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            if self._closed:
                raise HttpError("closed")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("connect timed out")
            _, writable, _ = select.select([], [sock], [], min(left, 0.1))
            if writable:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        sock.settimeout(self.timeout)

    def _request(self, url: str) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            sock = self._connect(parts.hostname, port)
            if parts.scheme == "https":
                ctx = self._ssl or ssl.create_default_context()
                sock = ctx.wrap_socket(sock, server_hostname=parts.hostname)
                with self._lock:
                    self._sock = sock
        except HttpError:
            raise
        except TimeoutError as e:
            raise HttpError(f"cannot connect to {parts.hostname}:{port}: timed out") from e
        except OSError as e:
            raise HttpError(f"cannot connect to {parts.hostname}:{port}: {e.strerror or e}") from e
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        req = (
            f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: loa-station/0.1 (relay)\r\n"
            "Accept: */*\r\nIcy-MetaData: 0\r\nConnection: close\r\n\r\n"
        )
        try:
            sock.sendall(req.encode("ascii", "strict"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    raise HttpError("connection closed before the response headers")
                head += chunk
                if len(head) > self.MAX_HEADER:
                    raise HttpError("response headers too long")
        except TimeoutError as e:
            raise HttpError(f"stalled: no response within {self.timeout} s") from e
        except UnicodeEncodeError as e:
            raise HttpError(f"bad characters in URL {url!r}") from e
        except OSError as e:
            raise HttpError(f"connection error: {e}") from e
        raw, _, body = head.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        fields = lines[0].split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(("HTTP/", "ICY")) or not fields[1].isdigit():
            raise HttpError(f"not an HTTP response: {lines[0][:60]!r}")
        headers = {":reason": fields[2] if len(fields) > 2 else ""}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return int(fields[1]), headers, body
