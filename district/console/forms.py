"""Request bodies: `application/x-www-form-urlencoded` and `multipart/form-data` (the stdlib `cgi` module is
gone from Python 3.13). Strict and bounded: the caller has already capped the body size."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from urllib.parse import parse_qs

MAX_FIELDS = 50


class FormParseError(ValueError):
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


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    m = Message()
    m["content-type"] = value
    params = {k.lower(): v for k, v in (m.get_params() or [])[1:]}
    return m.get_content_type(), params


def parse_form(content_type: str, body: bytes) -> Form:
    ctype, params = _header_params(content_type or "")
    if ctype == "application/x-www-form-urlencoded":
        try:
            qs = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError) as e:
            raise FormParseError(str(e)) from None
        return Form({k: v[0] for k, v in qs.items()}, {})
    if ctype == "multipart/form-data":
        boundary = params.get("boundary", "")
        if not boundary or len(boundary) > 200:
            raise FormParseError("multipart without a usable boundary")
        return _multipart(body, boundary.encode("latin-1"))
    raise FormParseError(f"unsupported content type {ctype!r}")


def _multipart(body: bytes, boundary: bytes) -> Form:
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    delim = b"--" + boundary
    chunks = body.split(delim)
    if len(chunks) < 2:
        raise FormParseError("multipart body without parts")
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if not chunk.startswith(b"\r\n"):
            raise FormParseError("malformed multipart delimiter")
        head, sep, data = chunk[2:].partition(b"\r\n\r\n")
        if not sep:
            raise FormParseError("multipart part without headers")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disposition = ""
        for line in head.split(b"\r\n"):
            name, _, value = line.decode("utf-8", "replace").partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value.strip()
        m = Message()
        m["content-disposition"] = disposition
        name = m.get_param("name", header="content-disposition")
        if not name or not isinstance(name, str):
            raise FormParseError("multipart part without a name")
        if len(fields) + len(files) >= MAX_FIELDS:
            raise FormParseError("too many fields")
        filename = m.get_filename(None)
        if filename is not None:
            if filename:  # an empty file input sends filename="" and no data
                files[name] = Upload(filename, data)
        else:
            try:
                fields[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise FormParseError(f"field {name!r} is not UTF-8") from None
    return Form(fields, files)
