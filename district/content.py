"""District side of content delivery: a quick-start HTTP file server with Range support, and `add` which puts
an audio file into a served directory under its sha256 name.

The server is for a quick start, a training room or tests; production should use nginx (docs/content.md).
It serves only regular files directly inside DIR (no listing, no sub-directories, no `..`), GET and HEAD,
one byte range per request (`bytes=a-b`, `bytes=a-`, `bytes=-n`; several ranges get the whole file, as
RFC 9110 allows), `If-Range` and `If-None-Match`. A file named `<sha256>.<ext>` gets that sha256 as its
ETag and is cacheable forever (its name changes when its bytes do).
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import re
import shutil
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

_HASH_NAME = re.compile(r"([0-9a-f]{64})(\.[A-Za-z0-9]{1,8})?")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_COPY_CHUNK = 64 * 1024

mimetypes.add_type("audio/ogg", ".ogg")
mimetypes.add_type("audio/ogg", ".opus")
mimetypes.add_type("audio/mpeg", ".mp3")
mimetypes.add_type("audio/flac", ".flac")


def etag_for(path: Path, st: os.stat_result) -> str:
    m = _HASH_NAME.fullmatch(path.name)
    if m:
        return f'"{m.group(1)}"'
    return f'"{st.st_size:x}-{int(st.st_mtime_ns):x}"'


def parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """(first, last) inclusive for a satisfiable single range; None to serve the whole file; "416" if the
    range lies beyond the end."""
    m = _RANGE.fullmatch(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # malformed or several ranges: ignore Range, send 200
    if not m.group(1):  # suffix: the last n bytes
        n = int(m.group(2))
        if n == 0:
            return "416"
        return (max(0, size - n), size - 1) if size else "416"
    first = int(m.group(1))
    if m.group(2) and int(m.group(2)) < first:
        return None  # invalid: ignored
    if first >= size:
        return "416"
    last = int(m.group(2)) if m.group(2) else size - 1
    return first, min(last, size - 1)


class ContentHandler(BaseHTTPRequestHandler):
    server_version = "loa-content/0.1"
    root: Path  # set by make_server on a subclass

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class names it so)
        log.info("%s %s", self.address_string(), format % args)

    def _serve(self, *, body: bool) -> None:
        path = self._file()
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND, "no such file")
            return
        try:
            f = open(path, "rb")  # noqa: SIM115 (closed by the with below; open errors answer 404)
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "no such file")
            return
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = etag_for(path, st)
            if etag in (self.headers.get("If-None-Match") or ""):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self._common_headers(path, etag)
                self.end_headers()
                return
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if rng and if_range and if_range.strip() != etag:
                rng = None  # the client's partial copy is of another version: send it all
            span = parse_range(rng, size) if rng else None
            if span == "416":
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if span is None:
                first, last = 0, size - 1
                self.send_response(HTTPStatus.OK)
            else:
                first, last = span
                self.send_response(HTTPStatus.PARTIAL_CONTENT)
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            length = max(0, last - first + 1)
            self._common_headers(path, etag)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if body and length:
                f.seek(first)
                self._copy(f, length)

    def _common_headers(self, path: Path, etag: str) -> None:
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.send_header("Content-Type", ctype)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        if _HASH_NAME.fullmatch(path.name):
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
        else:
            self.send_header("Cache-Control", "no-cache")

    def _copy(self, f, length: int) -> None:
        try:
            while length > 0:
                chunk = f.read(min(_COPY_CHUNK, length))
                if not chunk:
                    break
                self.wfile.write(chunk)
                length -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            log.info("%s closed the connection", self.address_string())

    def _file(self) -> Path | None:
        name = unquote(urlsplit(self.path).path).lstrip("/")
        if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
            return None
        path = self.root / name
        return path if path.is_file() else None


class ContentServer:
    """A threaded server for DIR on (bind, port); port 0 picks a free one. `.url` is its base URL."""

    def __init__(self, directory: str | os.PathLike, *, bind: str = "127.0.0.1", port: int = 8080):
        root = Path(directory).resolve()
        if not root.is_dir():
            raise NotADirectoryError(f"content directory {str(directory)!r} does not exist")
        handler = type("BoundContentHandler", (ContentHandler,), {"root": root})
        self.httpd = ThreadingHTTPServer((bind, port), handler)
        self.httpd.daemon_threads = True
        self.root = root
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> ContentServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="loa-content-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> ContentServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def add_file(src: str | os.PathLike, directory: str | os.PathLike) -> tuple[Path, str, int]:
    """Copy `src` into `directory` as `<sha256>.<ext>` (atomically); return (path, sha256, size)."""
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"{str(src)!r} is not a file")
    h = hashlib.sha256()
    size = 0
    with open(src, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    sha = h.hexdigest()
    ext = src.suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", src.suffix) else ""
    dest_dir = Path(directory)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{sha}{ext}"
    if not dest.exists():
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(src, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    return dest, sha, size
