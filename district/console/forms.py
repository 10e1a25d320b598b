"""Request bodies: `application/x-www-form-urlencoded` and `multipart/form-data`, parsed by Starlette with
python-multipart. Strict and bounded: the caller has already read the body under its size limit (`read_body`),
so nothing here ever sees more than that limit; the parser's own caps bound the number of fields and files."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request

MAX_FIELDS = 50
MAX_FILES = 4
_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class FormParseError(ValueError):
    pass


class BodyTooLarge(Exception):
    """The body is larger than the limit. `drained`: it was read (and thrown away) so the browser gets our
    answer; otherwise the connection must be closed after the answer."""

    def __init__(self, drained: bool):
        super().__init__("request body too large")
        self.drained = drained


class LengthRequired(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes


@dataclass
class Form:
    fields: dict[str, str]
    files: dict[str, Upload]

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, never more than `limit` bytes of it kept. Raises BodyTooLarge (drained when the declared
    length is at most 4 x limit + 64 KiB, so a too-large upload gets a page instead of a reset) or
    LengthRequired (no Content-Length: chunked bodies are not accepted)."""
    try:
        length = int(request.headers.get("content-length", ""))
    except ValueError:
        raise LengthRequired() from None
    if length < 0:
        raise LengthRequired()
    if length > limit:
        if length > 4 * limit + 64 * 1024:
            raise BodyTooLarge(drained=False)
        try:
            async for _ in request.stream():
                pass
        except ClientDisconnect:
            pass
        raise BodyTooLarge(drained=True)
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise BodyTooLarge(drained=False)
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_form(request: Request, body: bytes) -> Form:
    """The form in `body` (already read and bounded), decoded by Starlette's parsers."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in _TYPES:
        raise FormParseError(f"unsupported content type {ctype!r}")
    given = False

    async def replay():
        nonlocal given
        if given:
            return {"type": "http.disconnect"}
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    replayed = Request(request.scope, replay)
    try:
        data = await replayed.form(max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=len(body) + 1)
    except (MultiPartException, HTTPException, ValueError) as e:
        raise FormParseError(str(getattr(e, "detail", e))) from None
    try:
        fields: dict[str, str] = {}
        files: dict[str, Upload] = {}
        for name, value in data.multi_items():
            if isinstance(value, UploadFile):
                if value.filename:  # an empty file input sends filename="" and no data
                    files.setdefault(name, Upload(value.filename, await value.read()))
            else:
                fields.setdefault(name, value)
        return Form(fields, files)
    finally:
        await data.close()
