"""A real HTTP server on 127.0.0.1:<free port> that misbehaves on purpose, for content and relay tests.

Each route is a `Route` whose fields can be changed while the server runs (a stream that goes down and comes
back). Files: `status` (404...), `cut_after` (close after N body bytes, for the first `cut_times` requests),
`stall_after` (send N bytes then hang until the test ends), `ignore_range` (always 200), `body` (the bytes
served, which may be wrong on purpose). Streams: `stream` (an iterator factory giving chunks forever),
`bytes_per_s` (pacing), `content_type`, `redirect` (a 302 to that URL). Every request is recorded in `server.requests` as (path, Range).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-")


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    cut_after: int | None = None
    cut_times: int = 1
    stall_after: int | None = None
    ignore_range: bool = False
    stream: Callable[[], Iterator[bytes]] | None = None
    bytes_per_s: float | None = None
    redirect: str | None = None
    hits: int = 0


class FaultServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.request_times: list[tuple[str, float]] = []  # (path, time.monotonic())
        self.release = threading.Event()  # ends every stall and stream when the test is over
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="test-faultserver", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def add(self, path: str, **kw) -> Route:
        route = Route(**kw)
        self.routes["/" + path.lstrip("/")] = route
        return route

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def range_requests(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == "/" + path.lstrip("/")]

    # -- handler -------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        rng = h.headers.get("Range")
        self.requests.append((h.path, rng))
        self.request_times.append((h.path, time.monotonic()))
        route = self.routes.get(h.path)
        if route is None:
            h.send_error(404)
            return
        route.hits += 1
        if route.redirect is not None:
            h.send_response(302)
            h.send_header("Location", route.redirect)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if route.status != 200:
            h.send_error(route.status)
            return
        try:
            if route.stream is not None:
                self._stream(h, route)
            else:
                self._file(h, route, rng)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _file(self, h, route: Route, rng: str | None) -> None:
        body = route.body
        start = 0
        m = _RANGE.match(rng or "")
        if m and not route.ignore_range and int(m.group(1)) < len(body):
            start = int(m.group(1))
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            h.send_response(200)
        part = body[start:]
        h.send_header("Content-Type", route.content_type)
        h.send_header("Content-Length", str(len(part)))
        h.end_headers()
        if route.cut_after is not None and route.hits <= route.cut_times:
            h.wfile.write(part[: route.cut_after])
            h.wfile.flush()
            h.close_connection = True
            return
        if route.stall_after is not None:
            h.wfile.write(part[: route.stall_after])
            h.wfile.flush()
            self.release.wait(30)
            h.close_connection = True
            return
        h.wfile.write(part)

    def _stream(self, h, route: Route) -> None:
        h.send_response(200)
        h.send_header("Content-Type", route.content_type)
        h.send_header("Cache-Control", "no-cache")
        h.end_headers()
        h.close_connection = True
        start = time.monotonic()
        sent = 0
        for chunk in route.stream():
            if self.release.is_set() or route.status != 200 or route.stream is None:
                return
            h.wfile.write(chunk)
            h.wfile.flush()
            sent += len(chunk)
            if route.bytes_per_s:
                ahead = sent / route.bytes_per_s - (time.monotonic() - start)
                if ahead > 0 and self.release.wait(ahead):
                    return
