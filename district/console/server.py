"""The console's HTTP server: stdlib `ThreadingHTTPServer`, server-rendered pages, polling for live parts.

Security, in the order a request meets it:
- request size: a body larger than allowed is never parsed (drained up to a bound and answered with the form
  and a message, or refused with 413 beyond that bound);
- session: a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure with `secure_cookie`); no
  session: pages redirect to /login (303), fragments and POSTs get 401;
- CSRF: every POST carries the session's token (`csrf` field), compared with hmac.compare_digest; the login form
  uses a double-submit token (cookie + field) since there is no session yet; a mismatch is a 403;
- login rate limiting per address and per user name;
- headers: a strict Content-Security-Policy (no inline script or style), no framing, no caching.
Any exception while answering is logged with its trace and answered with a plain 500 page: no trace reaches
the browser and the server keeps serving.
"""

from __future__ import annotations

import logging
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from zoneinfo import ZoneInfo

from district.console import views
from district.console.accounts import LoginLimiter, Sessions, csrf_ok, verify_password
from district.console.forms import Form, FormParseError, parse_form
from district.console.i18n import CATALOGUES, DEFAULT_LANG, Translator
from district.console.service import STATUSES, Console, Draft, FormError, Unconfirmed
from district.console.store import ConsoleStore, may_send
from district.mqtt import MqttError
from firmware.protocol.alert import ALERT_ID_PATTERN

log = logging.getLogger(__name__)

SESSION_COOKIE = "loa_session"
LOGIN_COOKIE = "loa_login"
LANG_COOKIE = "loa_lang"
MAX_FORM_BYTES = 64 * 1024
DRAFT_TTL_S = 600.0
_ALERT_ID = re.compile(ALERT_ID_PATTERN)
_STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
# A decoy hash: an unknown user name costs the same scrypt time as a wrong password.
_DECOY = "scrypt$16384$8$1$00000000000000000000000000000000$" + "00" * 32


@dataclass
class Settings:
    lang: str = DEFAULT_LANG
    tz: str = "Asia/Ho_Chi_Minh"
    max_upload_bytes: int = 20 * 1024 * 1024
    secure_cookie: bool = False
    session_s: float = 12 * 3600


class ConsoleServer:
    """Owns the HTTP server thread. `start()`, `url`, `stop()`."""

    def __init__(self, console: Console, store: ConsoleStore, settings: Settings | None = None, *,
                 bind: str = "127.0.0.1", port: int = 8080, sessions: Sessions | None = None,
                 limiter: LoginLimiter | None = None):
        self.console = console
        self.store = store
        self.settings = settings or Settings()
        self.tz = ZoneInfo(self.settings.tz)
        self.sessions = sessions or Sessions(lifetime_s=self.settings.session_s, store=store)
        self.limiter = limiter or LoginLimiter()
        self._drafts: dict[str, tuple[Draft, str, float]] = {}
        self._drafts_lock = threading.Lock()
        self._upload_dir = tempfile.TemporaryDirectory(prefix="loa-console-upload-")
        handler = type("Handler", (_Handler,), {"app": self})
        self.httpd = ThreadingHTTPServer((bind, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ConsoleServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="console-http", daemon=True)
        self._thread.start()
        log.info("console listening on %s", self.url)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(5)
        self._upload_dir.cleanup()

    # -- drafts of actual alerts, waiting for the typed confirmation --------------------------------------

    def keep_draft(self, d: Draft, user: str) -> str:
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._drafts_lock:
            for k in [k for k, (_, _, exp) in self._drafts.items() if exp <= now]:
                del self._drafts[k]
            self._drafts[token] = (d, user, now + DRAFT_TTL_S)
        return token

    def draft(self, token: str, user: str) -> Draft | None:
        with self._drafts_lock:
            entry = self._drafts.get(token)
        if entry is None or entry[1] != user or entry[2] <= time.monotonic():
            return None
        return entry[0]

    def drop_draft(self, token: str) -> bool:
        with self._drafts_lock:
            return self._drafts.pop(token, None) is not None


class _Handler(BaseHTTPRequestHandler):
    app: ConsoleServer
    server_version = "loa-console"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 60  # a client that stops sending mid-request frees its thread after this many seconds

    # -- plumbing ------------------------------------------------------------------------------------------

    def log_message(self, fmt: str, *args) -> None:
        log.debug("%s %s", self.client_address[0], fmt % args)

    def _cookies(self) -> SimpleCookie:
        c = SimpleCookie()
        try:
            c.load(self.headers.get("Cookie", ""))
        except CookieError:
            pass
        return c

    def _cookie(self, name: str) -> str | None:
        m = self._cookies().get(name)
        return m.value if m else None

    def _lang(self) -> str:
        lang = self._cookie(LANG_COOKIE)
        return lang if lang in CATALOGUES else self.app.settings.lang

    def _ctx(self, session=None) -> views.Ctx:
        return views.Ctx(Translator(self._lang()), session.user if session else None,
                         session.csrf if session else "", self.app.tz, urlsplit(self.path).path,
                         self.role if session else None)

    def _set_cookie(self, name: str, value: str, *, max_age: int, path: str = "/", http_only: bool = True) -> str:
        parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "SameSite=Strict"]
        if http_only:
            parts.append("HttpOnly")
        if self.app.settings.secure_cookie:
            parts.append("Secure")
        return "; ".join(parts)

    def _send(self, code: int, body: bytes, ctype: str, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "same-origin")
        self.send_header("Content-Security-Policy", _CSP)
        for k, v in headers or []:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _page(self, ctx: views.Ctx, page: views.Page, headers=None) -> None:
        self._send(page.code, views.render(ctx, page).encode("utf-8"), "text/html; charset=utf-8", headers)

    def _fragment(self, html: str) -> None:
        self._send(200, html.encode("utf-8"), "text/html; charset=utf-8")

    def _redirect(self, location: str, headers=None) -> None:
        self._send(303, b"", "text/plain", [("Location", location), *(headers or [])])

    def _error(self, code: int, key: str, session=None) -> None:
        ctx = self._ctx(session)
        self._page(ctx, views.error_page(ctx, code, key))

    role: str | None = None  # of this request's account, read afresh each request: a change applies at once

    def _session(self):
        s = self.app.sessions.get(self._cookie(SESSION_COOKIE))
        if s is None:
            return None
        self.role = self.app.store.role(s.user)
        if self.role is None:  # disabled (or removed) since login
            self.app.sessions.end_user(s.user)
            return None
        return s

    def _forbidden(self, ctx: views.Ctx, session, status: str) -> None:
        """An account whose role may not send `status` alerts: 403, audited; cancelling stays open to it."""
        self.app.store.audit(session.user, "alert-forbidden", status=status,
                             detail=f"role {self.role} may not send {status} alerts", ip=self._ip())
        log.warning("console: %s (%s) tried to send a %s alert", session.user, self.role, status)
        page = views.error_page(ctx, 403, "err_role")
        self._page(ctx, page)

    def _ip(self) -> str:
        return self.client_address[0]

    def _guard(self, method) -> None:
        try:
            method()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            log.exception("console: error answering %s %s", self.command, self.path[:200])
            self.close_connection = True
            try:
                self._error(500, "server_error")
            except Exception:
                pass

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_HEAD(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    # -- GET -----------------------------------------------------------------------------------------------

    def _get(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query)
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/login":
            return self._login_form(nxt=_safe_next(query.get("next", ["/"])[0]))
        if path.startswith("/lang/"):
            return self._set_lang(path[len("/lang/"):], _safe_next(query.get("next", ["/"])[0]))
        if path == "/favicon.ico":
            return self._send(204, b"", "text/plain")
        session = self._session()
        if session is None:
            if path.startswith("/fragment/"):
                return self._send(401, b"not logged in", "text/plain; charset=utf-8")
            return self._redirect("/login?next=" + quote(path, safe="/"))
        ctx = self._ctx(session)
        c = self.app.console
        if path == "/":
            now = time.time()
            return self._page(ctx, views.fleet_page(ctx, c.fleet(), [a for a in c.alerts() if a.active(now)]))
        if path == "/fragment/fleet":
            return self._fragment(views.fleet_fragment(ctx, c.fleet()))
        if path.startswith("/station/"):
            row = c.station(unquote(path[len("/station/"):]))
            if row is None:
                return self._error(404, "not_found", session)
            tele = c.db.last_telemetry(row.sid)
            return self._page(ctx, views.station_page(ctx, row, c.daily_uptime(row.sid, self.app.tz),
                                                      c.playlog(row.sid), tele, c.running_for(row, tele, time.time())))
        if path == "/alerts":
            return self._page(ctx, views.alerts_page(ctx, c.alerts(), time.time()))
        if path == "/alert/new":
            return self._page(ctx, views.choose_page(ctx))
        if path.startswith("/alert/new/"):
            status = path[len("/alert/new/"):]
            if status not in STATUSES:
                return self._error(404, "not_found", session)
            if not may_send(self.role, status):
                return self._page(ctx, views.error_page(ctx, 403, "err_role"))
            return self._page(ctx, self._form_page(ctx, status))
        m = re.fullmatch(r"/alert/([^/]+)/update", path)
        if m:
            a = self._alert_from(m.group(1))
            if a is None:
                return self._error(404, "not_found", session)
            if not may_send(self.role, a.status):
                return self._page(ctx, views.error_page(ctx, 403, "err_role"))
            if not c.active(a):
                return self._page(ctx, views.error_page(ctx, 409, "err_alert_ended"))
            values = {"headline": a.headline, "text": a.text, "severity": "unknown", "expires": "30m"}
            return self._page(ctx, self._update_form_page(ctx, a, values=values))
        if path.startswith("/alert/"):
            a = self._alert_from(path[len("/alert/"):])
            if a is None:
                return self._error(404, "not_found", session)
            sent = query.get("sent") == ["1"]
            return self._page(ctx, views.alert_page(ctx, a, c.acks(a), time.time(), sent=sent))
        if path.startswith("/fragment/acks/"):
            a = self._alert_from(path[len("/fragment/acks/"):])
            if a is None:
                return self._send(404, b"no such alert", "text/plain; charset=utf-8")
            return self._fragment(views.acks_fragment(ctx, a, c.acks(a)))
        if path == "/audit":
            return self._page(ctx, views.audit_page(ctx, self.app.store.audit_log()))
        return self._error(404, "not_found", session)

    def _alert_from(self, quoted: str):
        alert_id = unquote(quoted)
        if not _ALERT_ID.match(alert_id):
            return None
        return self.app.console.alert(alert_id)

    def _static(self, name: str) -> None:
        ctype = _STATIC.get(name)
        if ctype is None:
            return self._send(404, b"not found", "text/plain")
        body = resources.files("district.console").joinpath("static", name).read_bytes()
        self._send(200, body, ctype)

    def _set_lang(self, lang: str, nxt: str) -> None:
        if lang not in CATALOGUES:
            return self._error(404, "not_found")
        self._redirect(nxt, [("Set-Cookie", self._set_cookie(LANG_COOKIE, lang, max_age=365 * 86400,
                                                              http_only=False))])

    def _login_form(self, *, nxt: str = "/", user: str = "", error: str = "", code: int = 200) -> None:
        token = self._cookie(LOGIN_COOKIE)
        headers = []
        if not token or not re.fullmatch(r"[A-Za-z0-9_-]{20,100}", token):
            token = secrets.token_urlsafe(32)
            headers.append(("Set-Cookie", self._set_cookie(LOGIN_COOKIE, token, max_age=3600, path="/login")))
        ctx = self._ctx()
        self._page(ctx, views.login_page(ctx, login_csrf=token, user=user, nxt=nxt, error=error, code=code),
                   headers)

    def _form_page(self, ctx: views.Ctx, status: str, *, values: dict | None = None, error: str = ""):
        c = self.app.console
        return views.alert_form(ctx, status, c.scope_choices(), values=values, error=error,
                                audio_enabled=bool(c.content_dir and c.content_base_url),
                                max_upload_mb=self.app.settings.max_upload_bytes / 1e6)

    def _update_form_page(self, ctx: views.Ctx, a, *, values: dict | None = None, error: str = ""):
        c = self.app.console
        return views.alert_form(ctx, a.status, c.scope_choices(), values=values, error=error,
                                audio_enabled=bool(c.content_dir and c.content_base_url),
                                max_upload_mb=self.app.settings.max_upload_bytes / 1e6, updates=a)

    # -- POST ----------------------------------------------------------------------------------------------

    def _read_body(self, limit: int) -> bytes | None:
        """The body, or None when it is larger than `limit` (then drained if reasonably small, so the browser
        gets our answer; beyond that the connection is closed after the answer)."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise _Refuse(411)
        if length > limit:
            if length <= 4 * limit + MAX_FORM_BYTES:
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    left -= len(chunk)
            else:
                self.close_connection = True
            return None
        return self.rfile.read(length)

    def _post(self) -> None:
        try:
            self._post_routes()
        except _Refuse as r:
            self._send(r.code, HTTPStatus(r.code).phrase.encode(), "text/plain; charset=utf-8")

    def _post_routes(self) -> None:
        path = urlsplit(self.path).path
        if path == "/login":
            return self._login()
        session = self._session()
        if session is None:
            self.close_connection = True  # the body was not read
            return self._send(401, b"not logged in", "text/plain; charset=utf-8")
        update = re.fullmatch(r"/alert/([^/]+)/update", path)
        upload = path.startswith("/alert/new/") or update is not None
        limit = self.app.settings.max_upload_bytes + MAX_FORM_BYTES if upload else MAX_FORM_BYTES
        body = self._read_body(limit)
        ctx = self._ctx(session)
        if body is None:
            if upload and not self.close_connection:
                mb = f"{self.app.settings.max_upload_bytes / 1e6:g}"
                err = ctx.t("err_upload_too_large", mb=mb)
                if update is not None and (a := self._alert_from(update.group(1))) is not None:
                    return self._page(ctx, self._update_form_page(ctx, a, error=err))
                if path[len("/alert/new/"):] in STATUSES:
                    return self._page(ctx, self._form_page(ctx, path[len("/alert/new/"):], error=err))
            self.close_connection = True
            return self._error(413, "too_large", session)
        try:
            form = parse_form(self.headers.get("Content-Type", ""), body)
        except FormParseError as e:
            log.info("console: unreadable form from %s on %s: %s", self._ip(), path, e)
            return self._error(400, "err_bad_form", session)
        if not csrf_ok(session.csrf, form.get("csrf")):
            log.warning("console: CSRF token missing or wrong from %s (%s) on %s", self._ip(), session.user, path)
            return self._error(403, "err_csrf", session)
        if path == "/logout":
            return self._logout(session)
        if update is not None:
            return self._update(ctx, session, update.group(1), form)
        if upload:
            return self._new_alert(ctx, session, path[len("/alert/new/"):], form)
        if path == "/alert/confirm":
            return self._confirm(ctx, session, form)
        m = re.fullmatch(r"/alert/([^/]+)/cancel", path)
        if m:
            return self._cancel(ctx, session, unquote(m.group(1)))
        return self._error(404, "not_found", session)

    def _login(self) -> None:
        body = self._read_body(MAX_FORM_BYTES)
        if body is None:
            self.close_connection = True
            return self._error(413, "too_large")
        try:
            form = parse_form(self.headers.get("Content-Type", ""), body)
        except FormParseError:
            return self._error(400, "err_bad_form")
        t = Translator(self._lang())
        nxt = _safe_next(form.get("next", "/"))
        user = form.get("user").strip()[:64]
        cookie = self._cookie(LOGIN_COOKIE)
        if not cookie or not csrf_ok(cookie, form.get("csrf")):
            log.warning("console: login without a valid CSRF token from %s", self._ip())
            return self._error(403, "err_csrf")
        wait = self.app.limiter.retry_after(self._ip(), user)
        if wait > 0:
            return self._login_form(nxt=nxt, user=user, error=t("err_login_limited", s=int(wait) + 1), code=429)
        stored = self.app.store.password_hash(user) if user else None
        ok = verify_password(form.get("password"), stored or _DECOY) and stored is not None
        if not ok:
            self.app.limiter.failed(self._ip(), user)
            self.app.store.audit(user or "-", "login-failed", ip=self._ip())
            log.warning("console: failed login for %r from %s", user, self._ip())
            return self._login_form(nxt=nxt, user=user, error=t("err_login"), code=401)
        session = self.app.sessions.create(user)
        self.app.store.logged_in(user)
        self.app.store.audit(user, "login", ip=self._ip())
        log.info("console: %s logged in from %s", user, self._ip())
        self._redirect(nxt, [
            ("Set-Cookie", self._set_cookie(SESSION_COOKIE, session.token, max_age=int(self.app.settings.session_s))),
            ("Set-Cookie", self._set_cookie(LOGIN_COOKIE, "", max_age=0, path="/login")),
        ])

    def _logout(self, session) -> None:
        self.app.sessions.end(session.token)
        self.app.store.audit(session.user, "logout", ip=self._ip())
        self._redirect("/login", [("Set-Cookie", self._set_cookie(SESSION_COOKIE, "", max_age=0))])

    def _draft_from(self, form: Form, make) -> Draft:
        """Store the uploaded audio (if any) in a temporary file and call `make(values, audio_file, audio_name)`;
        FormError propagates. The temporary file is gone afterwards (the draft holds the content's copy)."""
        values = {k: form.get(k) for k in ("scope", "headline", "text", "severity", "expires")}
        upload = form.files.get("audio")
        tmp: Path | None = None
        try:
            if upload is not None:
                if len(upload.data) > self.app.settings.max_upload_bytes:
                    mb = f"{self.app.settings.max_upload_bytes / 1e6:g}"
                    raise FormError("err_upload_too_large", mb=mb)
                suffix = Path(upload.filename).suffix
                suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""
                tmp = Path(self.app._upload_dir.name) / f"{secrets.token_hex(8)}{suffix}"
                tmp.write_bytes(upload.data)
            return make(values, tmp, Path(upload.filename).name[:100] if upload else "")
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def _new_alert(self, ctx: views.Ctx, session, status: str, form: Form) -> None:
        if status not in STATUSES:
            return self._error(404, "not_found", session)
        if not may_send(self.role, status):
            return self._forbidden(ctx, session, status)
        values = {k: form.get(k) for k in ("scope", "headline", "text", "severity", "expires")}
        try:
            d = self._draft_from(form, lambda v, audio, name: self.app.console.draft(
                status=status, scope=v["scope"], text=v["text"], headline=v["headline"],
                severity=v["severity"] or "unknown", expires=v["expires"] or "30m", audio_file=audio,
                audio_name=name))
        except FormError as e:
            return self._page(ctx, self._form_page(ctx, status, values=values, error=ctx.t(e.key, **e.params)))
        if status == "actual":
            token = self.app.keep_draft(d, session.user)
            return self._page(ctx, views.confirm_page(ctx, token, d))
        self._send_alert(ctx, session, d, lambda err: self._form_page(ctx, status, values=values, error=err))

    def _update(self, ctx: views.Ctx, session, quoted_id: str, form: Form) -> None:
        """An update of an active alert: same status and scope, new content; actual ones are confirmed as new."""
        a = self._alert_from(quoted_id)
        if a is None:
            return self._error(404, "not_found", session)
        if not may_send(self.role, a.status):
            return self._forbidden(ctx, session, a.status)
        values = {k: form.get(k) for k in ("headline", "text", "severity", "expires")}
        try:
            d = self._draft_from(form, lambda v, audio, name: self.app.console.draft_update(
                a.id, text=v["text"], headline=v["headline"], severity=v["severity"] or "unknown",
                expires=v["expires"] or "30m", audio_file=audio, audio_name=name))
        except FormError as e:
            return self._page(ctx, self._update_form_page(ctx, a, values=values, error=ctx.t(e.key, **e.params)))
        if a.status == "actual":
            token = self.app.keep_draft(d, session.user)
            return self._page(ctx, views.confirm_page(ctx, token, d))
        self._send_alert(ctx, session, d, lambda err: self._update_form_page(ctx, a, values=values, error=err))

    def _send_alert(self, ctx, session, d: Draft, again) -> None:
        try:
            alert_id = self.app.console.send(d, user=session.user, ip=self._ip())
        except Unconfirmed as e:
            a = self.app.console.alert(e.alert_id)
            page = views.alert_page(ctx, a, self.app.console.acks(a), time.time())
            page.messages.append(("error", ctx.t("err_broker_unconfirmed", detail=str(e))))
            page.code = 503
            return self._page(ctx, page)
        except MqttError as e:
            page = again(ctx.t("err_broker", detail=str(e)))
            page.code = 503
            return self._page(ctx, page)
        except FormError as e:
            return self._page(ctx, again(ctx.t(e.key, **e.params)))
        self._redirect(f"/alert/{quote(alert_id)}?sent=1")

    def _confirm(self, ctx: views.Ctx, session, form: Form) -> None:
        if not may_send(self.role, "actual"):  # the role may have changed since the draft was made
            return self._forbidden(ctx, session, "actual")
        token = form.get("draft")
        d = self.app.draft(token, session.user)
        if d is None:
            return self._page(ctx, self._form_page(ctx, "actual", error=ctx.t("err_draft_gone")))
        typed = form.get("typed").strip()
        if typed != str(d.scope):
            self.app.store.audit(session.user, "actual-refused", status="actual", scope=str(d.scope),
                                 detail=f"typed {typed[:100]!r}", ip=self._ip())
            err = ctx.t("err_typed_scope", typed=typed[:100], scope=str(d.scope))
            return self._page(ctx, views.confirm_page(ctx, token, d, error=err))
        if not self.app.drop_draft(token):  # a double click: the first one sends
            return self._page(ctx, self._form_page(ctx, "actual", error=ctx.t("err_draft_gone")))
        self._send_alert(ctx, session, d, lambda err: views.confirm_page(ctx, self.app.keep_draft(d, session.user),
                                                                         d, error=err))

    def _cancel(self, ctx: views.Ctx, session, alert_id: str) -> None:
        a = self.app.console.alert(alert_id) if _ALERT_ID.match(alert_id) else None
        if a is None:
            return self._error(404, "not_found", session)
        try:
            self.app.console.cancel(alert_id, user=session.user, ip=self._ip())
        except MqttError as e:
            page = views.alert_page(ctx, a, self.app.console.acks(a), time.time())
            page.messages.append(("error", ctx.t("err_broker_cancel", detail=str(e))))
            page.code = 503
            return self._page(ctx, page)
        self._redirect(f"/alert/{quote(alert_id)}")


class _Refuse(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _safe_next(nxt: str) -> str:
    """Only a local path: never `//host` or `/\\host` (open redirects)."""
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt or any(ord(ch) < 32 for ch in nxt):
        return "/"
    return nxt
