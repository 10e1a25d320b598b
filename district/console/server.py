"""The console's web app: Starlette (ASGI) routes, Jinja2 templates (views.py), served by uvicorn on a thread.

Security, in the order a request meets it:
- request size: a body larger than allowed is never parsed (drained up to a bound and answered with the form
  and a message, or refused with 413 and the connection closed beyond that bound); uvicorn (h11) bounds the
  request line and headers;
- session: a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure with `secure_cookie`); no
  session: pages redirect to /login (303), fragments and POSTs get 401;
- CSRF: every POST carries the session's token (`csrf` field), compared with hmac.compare_digest; the login form
  uses a double-submit token (cookie + field) since there is no session yet; a mismatch is a 403;
- login throttling per account and per client address: growing delays of a few seconds, never a lock; the
  client address comes from X-Forwarded-For only when the peer is a configured trusted proxy;
- headers on every answer (pages, fragments, static files, errors): a strict Content-Security-Policy (no inline
  script or style), no framing, nosniff, no caching.
Any exception while answering is logged with its trace and answered with a plain 500 page (`_Guard`): no trace
reaches the browser and the server keeps serving.

The work (publishing, cancelling, reading the fleet) is blocking: it runs in Starlette's thread pool, so the
event loop only moves bytes and slow 3G clients cost a socket, not a thread.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from district.console import views
from district.console.accounts import (
    LoginLimiter,
    Session,
    Sessions,
    client_address,
    csrf_ok,
    parse_trusted_proxies,
    verify_password,
)
from district.console.forms import BodyTooLarge, Form, FormParseError, LengthRequired, parse_form, read_body
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
MAX_HEADER_BYTES = 32 * 1024  # all request headers together; h11 bounds them only while they arrive in pieces
DRAFT_TTL_S = 600.0
START_TIMEOUT_S = 10.0
_ALERT_ID = re.compile(ALERT_ID_PATTERN)
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
_HEADERS = (("cache-control", "no-store"), ("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"),
            ("referrer-policy", "same-origin"), ("content-security-policy", _CSP))
_CLOSE = {"connection": "close"}
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
    """Owns the listening socket and the uvicorn thread. `start()` (returns self), `url`, `stop()`.

    The socket is bound here, so a port in use fails at once (OSError) and port 0 gets its real port at once."""

    def __init__(self, console: Console, store: ConsoleStore, settings: Settings | None = None, *,
                 bind: str = "127.0.0.1", port: int = 8080, sessions: Sessions | None = None,
                 limiter: LoginLimiter | None = None, trusted_proxies: tuple[str, ...] | list[str] = ()):
        self.console = console
        self.trusted_proxies = parse_trusted_proxies(trusted_proxies)  # ValueError on a bad one
        self.store = store
        self.settings = settings or Settings()
        self.tz = ZoneInfo(self.settings.tz)
        self.sessions = sessions or Sessions(lifetime_s=self.settings.session_s, store=store)
        self.limiter = limiter or LoginLimiter()
        self._drafts: dict[str, tuple[Draft, str, float]] = {}
        self._drafts_lock = threading.Lock()
        self._upload_dir = tempfile.TemporaryDirectory(prefix="loa-console-upload-")
        self.app = _Web(self).app()
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self._sock = socket.create_server((bind, port), family=family, backlog=128)
        self._uvicorn: _Uvicorn | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> ConsoleServer:
        config = uvicorn.Config(self.app, http="h11", loop="asyncio", lifespan="off", log_config=None,
                                access_log=False, server_header=False, timeout_keep_alive=30,
                                # uvicorn would believe X-Forwarded-For from 127.0.0.1 by default: our own
                                # rule (trusted_proxies, accounts.client_address) decides instead
                                proxy_headers=False,
                                timeout_graceful_shutdown=5, h11_max_incomplete_event_size=16 * 1024)
        self._uvicorn = _Uvicorn(config)
        self._thread = threading.Thread(target=self._uvicorn.run_on, args=(self._sock,), name="console-http",
                                        daemon=True)
        self._thread.start()
        if not self._uvicorn.ready.wait(START_TIMEOUT_S) or not self._uvicorn.started:
            self.stop()
            raise OSError(f"the console's web server did not start on {self.url}")
        log.info("console listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            if self._thread.is_alive():
                log.warning("console: the web server thread did not stop within 10 s")
        self._sock.close()
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


class _Uvicorn(uvicorn.Server):
    """uvicorn's server with a `ready` event: set once startup finished (started or failed)."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets=None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()

    def run_on(self, sock: socket.socket) -> None:
        try:
            self.run(sockets=[sock])
        except BaseException:
            log.exception("console: the web server stopped on an error")
        finally:
            self.ready.set()


class _Guard:
    """The outermost layer: security headers on every answer; headers too large in total refused (431); any
    exception logged with its trace and answered with a plain 500 page (when nothing was sent yet), never a
    traceback; the server keeps serving."""

    def __init__(self, app, server: ConsoleServer):
        self.inner = app
        self.server = server

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        started = False

        async def secured(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for k, v in _HEADERS:
                    headers[k] = v
            await send(message)

        if sum(len(k) + len(v) for k, v in scope.get("headers", ())) > MAX_HEADER_BYTES:
            return await _text(431, "Request Header Fields Too Large", close=True)(scope, receive, secured)
        try:
            await self.inner(scope, receive, secured)
        except ClientDisconnect:
            return
        except Exception:
            log.exception("console: error answering %s %s", scope.get("method"), scope.get("path", "")[:200])
            if started:
                return
            try:
                lang = Request(scope).cookies.get(LANG_COOKIE)
                ctx = views.Ctx(Translator(lang if lang in CATALOGUES else self.server.settings.lang), None, "",
                                self.server.tz)
                body = views.render(ctx, views.error_page(ctx, 500, "server_error"))
                await HTMLResponse(body, 500, headers=_CLOSE)(scope, receive, secured)
            except Exception:
                log.exception("console: could not even answer 500")


@dataclass(frozen=True, slots=True)
class _Who:
    """The session of a request and its account's role, read afresh each request: a change applies at once."""

    session: Session
    role: str

    @property
    def user(self) -> str:
        return self.session.user


def _redirect(location: str, cookies: list[str] = ()) -> Response:
    r = Response(b"", 303, headers={"location": location}, media_type="text/plain")
    for c in cookies:
        r.headers.append("set-cookie", c)
    return r


def _text(code: int, text: str, *, close: bool = False) -> Response:
    return PlainTextResponse(text, code, headers=_CLOSE if close else None)


def _raw_path(req: Request) -> str:
    raw = req.scope.get("raw_path")
    return raw.decode("latin-1").split("?")[0] if raw else req.url.path


class _Web:
    """The routes. GET handlers and the work of POST handlers are plain functions, run in the thread pool."""

    def __init__(self, srv: ConsoleServer):
        self.srv = srv
        self.c = srv.console

    def app(self) -> Starlette:
        get, post = ["GET", "HEAD"], ["POST"]
        routes = [
            Mount("/static", StaticFiles(packages=[("district.console", "static")]), name="static"),
            Route("/favicon.ico", lambda req: Response(b"", 204, media_type="text/plain"), methods=get),
            Route("/login", self.login_form, methods=get),
            Route("/login", self.login, methods=post),
            Route("/lang/{lang}", self.set_lang, methods=get),
            Route("/logout", self.posted(self.logout), methods=post),
            Route("/", self.page(self.fleet), methods=get),
            Route("/fragment/fleet", self.page(self.fleet_fragment, fragment=True), methods=get),
            Route("/fragment/acks/{aid}", self.page(self.acks_fragment, fragment=True), methods=get),
            Route("/station/{sid:path}", self.page(self.station), methods=get),
            Route("/alerts", self.page(self.alerts), methods=get),
            Route("/audit", self.page(self.audit), methods=get),
            Route("/alert/new", self.page(self.choose), methods=get),
            Route("/alert/new/{status}", self.page(self.new_form), methods=get),
            Route("/alert/new/{status}", self.posted(self.new_alert, upload=self.new_too_large), methods=post),
            Route("/alert/confirm", self.posted(self.confirm), methods=post),
            Route("/alert/{aid}/update", self.page(self.update_form), methods=get),
            Route("/alert/{aid}/update", self.posted(self.update, upload=self.update_too_large), methods=post),
            Route("/alert/{aid}/cancel", self.posted(self.cancel), methods=post),
            Route("/alert/{aid}", self.page(self.alert), methods=get),
            Route("/{rest:path}", self.page(self.not_found), methods=get),
            Route("/{rest:path}", self.posted(self.not_found_post), methods=post),
        ]
        # _Guard inside Starlette's own error middleware: ours answers with the console's 500 page and does not
        # re-raise; Starlette's would answer a bare "Internal Server Error"
        return Starlette(routes=routes, middleware=[Middleware(_Guard, server=self.srv)])

    # -- plumbing ------------------------------------------------------------------------------------------

    def lang(self, req: Request) -> str:
        lang = req.cookies.get(LANG_COOKIE)
        return lang if lang in CATALOGUES else self.srv.settings.lang

    def ctx(self, req: Request, who: _Who | None = None) -> views.Ctx:
        return views.Ctx(Translator(self.lang(req)), who.user if who else None, who.session.csrf if who else "",
                         self.srv.tz, _raw_path(req), who.role if who else None)

    def ip(self, req: Request) -> str:
        """The client's address (X-Forwarded-For is believed only from a trusted proxy, see accounts.py)."""
        peer = req.client.host if req.client else "-"
        return client_address(peer, req.headers.getlist("x-forwarded-for"), self.srv.trusted_proxies)

    def cookie(self, name: str, value: str, *, max_age: int, path: str = "/", http_only: bool = True) -> str:
        parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "SameSite=Strict"]
        if http_only:
            parts.append("HttpOnly")
        if self.srv.settings.secure_cookie:
            parts.append("Secure")
        return "; ".join(parts)

    def render(self, ctx: views.Ctx, page: views.Page, cookies: list[str] = (), *, close: bool = False) -> Response:
        r = HTMLResponse(views.render(ctx, page), page.code, headers=_CLOSE if close else None)
        for c in cookies:
            r.headers.append("set-cookie", c)
        return r

    def error(self, ctx: views.Ctx, code: int, key: str, *, close: bool = False) -> Response:
        return self.render(ctx, views.error_page(ctx, code, key), close=close)

    def who(self, req: Request) -> _Who | None:
        s = self.srv.sessions.get(req.cookies.get(SESSION_COOKIE))
        if s is None:
            return None
        role = self.srv.store.role(s.user)
        if role is None:  # disabled (or removed) since login
            self.srv.sessions.end_user(s.user)
            return None
        return _Who(s, role)

    def alert_from(self, alert_id: str):
        return self.c.alert(alert_id) if _ALERT_ID.match(alert_id) else None

    def page(self, handler: Callable, *, fragment: bool = False) -> Callable:
        """A GET that needs a session: without one, pages go to /login and fragments get 401."""
        def endpoint(req: Request) -> Response:
            who = self.who(req)
            if who is None:
                if fragment:
                    return _text(401, "not logged in")
                return _redirect("/login?next=" + quote(_raw_path(req), safe="/"))
            return handler(req, who, self.ctx(req, who), **req.path_params)
        return endpoint

    def posted(self, handler: Callable, *, upload: Callable | None = None) -> Callable:
        """A POST that needs a session and its CSRF token; the body is read under its limit first. `upload`:
        the route takes an audio file (a larger limit) and `upload(req, who, ctx, error)` shows its form again
        when the file is too large."""
        async def endpoint(req: Request) -> Response:
            who = await run_in_threadpool(self.who, req)
            if who is None:
                return _text(401, "not logged in", close=True)  # the body was not read
            ctx = self.ctx(req, who)
            limit = self.srv.settings.max_upload_bytes + MAX_FORM_BYTES if upload else MAX_FORM_BYTES
            try:
                body = await read_body(req, limit)
            except LengthRequired:
                return _text(411, "Length Required", close=True)
            except BodyTooLarge as e:
                if upload is not None and e.drained:
                    mb = f"{self.srv.settings.max_upload_bytes / 1e6:g}"
                    shown = await run_in_threadpool(upload, req, who, ctx, ctx.t("err_upload_too_large", mb=mb))
                    if shown is not None:
                        return shown
                return self.error(ctx, 413, "too_large", close=True)
            try:
                form = await parse_form(req, body)
            except FormParseError as e:
                log.info("console: unreadable form from %s on %s: %s", self.ip(req), req.url.path, e)
                return self.error(ctx, 400, "err_bad_form")
            if not csrf_ok(who.session.csrf, form.get("csrf")):
                log.warning("console: CSRF token missing or wrong from %s (%s) on %s", self.ip(req), who.user,
                            req.url.path)
                return self.error(ctx, 403, "err_csrf")
            return await run_in_threadpool(handler, req, who, ctx, form, **req.path_params)
        return endpoint

    def forbidden(self, req: Request, who: _Who, ctx: views.Ctx, status: str) -> Response:
        """An account whose role may not send `status` alerts: 403, audited; cancelling stays open to it."""
        self.srv.store.audit(who.user, "alert-forbidden", status=status,
                             detail=f"role {who.role} may not send {status} alerts", ip=self.ip(req))
        log.warning("console: %s (%s) tried to send a %s alert", who.user, who.role, status)
        return self.error(ctx, 403, "err_role")

    # -- GET -----------------------------------------------------------------------------------------------

    def not_found(self, req, who, ctx, rest: str = "") -> Response:
        return self.error(ctx, 404, "not_found")

    def fleet(self, req, who, ctx) -> Response:
        now = time.time()
        return self.render(ctx, views.fleet_page(ctx, self.c.fleet(), [a for a in self.c.alerts() if a.active(now)]))

    def fleet_fragment(self, req, who, ctx) -> Response:
        return HTMLResponse(views.fleet_fragment(ctx, self.c.fleet()))

    def station(self, req, who, ctx, sid: str) -> Response:
        row = self.c.station(sid)
        if row is None:
            return self.error(ctx, 404, "not_found")
        tele = self.c.db.last_telemetry(row.sid)
        return self.render(ctx, views.station_page(ctx, row, self.c.daily_uptime(row.sid, self.srv.tz),
                                                   self.c.playlog(row.sid), tele,
                                                   self.c.running_for(row, tele, time.time())))

    def alerts(self, req, who, ctx) -> Response:
        return self.render(ctx, views.alerts_page(ctx, self.c.alerts(), time.time()))

    def choose(self, req, who, ctx) -> Response:
        return self.render(ctx, views.choose_page(ctx))

    def new_form(self, req, who, ctx, status: str) -> Response:
        if status not in STATUSES:
            return self.error(ctx, 404, "not_found")
        if not may_send(who.role, status):
            return self.error(ctx, 403, "err_role")
        return self.render(ctx, self.form_page(ctx, status))

    def update_form(self, req, who, ctx, aid: str) -> Response:
        a = self.alert_from(aid)
        if a is None:
            return self.error(ctx, 404, "not_found")
        if not may_send(who.role, a.status):
            return self.error(ctx, 403, "err_role")
        if not self.c.active(a):
            return self.error(ctx, 409, "err_alert_ended")
        values = {"headline": a.headline, "text": a.text, "severity": "unknown", "expires": "30m"}
        return self.render(ctx, self.form_page(ctx, a.status, values=values, updates=a))

    def alert(self, req, who, ctx, aid: str) -> Response:
        a = self.alert_from(aid)
        if a is None:
            return self.error(ctx, 404, "not_found")
        sent = req.query_params.getlist("sent") == ["1"]
        return self.render(ctx, views.alert_page(ctx, a, self.c.acks(a), time.time(), sent=sent))

    def acks_fragment(self, req, who, ctx, aid: str) -> Response:
        a = self.alert_from(aid)
        if a is None:
            return _text(404, "no such alert")
        return HTMLResponse(views.acks_fragment(ctx, a, self.c.acks(a)))

    def audit(self, req, who, ctx) -> Response:
        return self.render(ctx, views.audit_page(ctx, self.srv.store.audit_log()))

    def set_lang(self, req: Request) -> Response:
        lang = req.path_params["lang"]
        if lang not in CATALOGUES:
            return self.error(self.ctx(req), 404, "not_found")
        return _redirect(_safe_next(req.query_params.get("next", "/")),
                         [self.cookie(LANG_COOKIE, lang, max_age=365 * 86400, http_only=False)])

    def login_form(self, req: Request, *, nxt: str | None = None, user: str = "", error: str = "",
                   code: int = 200) -> Response:
        token = req.cookies.get(LOGIN_COOKIE)
        cookies = []
        if not token or not re.fullmatch(r"[A-Za-z0-9_-]{20,100}", token):
            token = secrets.token_urlsafe(32)
            cookies.append(self.cookie(LOGIN_COOKIE, token, max_age=3600, path="/login"))
        if nxt is None:
            nxt = _safe_next(req.query_params.get("next", "/"))
        ctx = self.ctx(req)
        return self.render(ctx, views.login_page(ctx, login_csrf=token, user=user, nxt=nxt, error=error, code=code),
                           cookies)

    def form_page(self, ctx: views.Ctx, status: str, *, values: dict | None = None, error: str = "",
                  updates=None) -> views.Page:
        return views.alert_form(ctx, status, self.c.scope_choices(), values=values, error=error,
                                audio_enabled=bool(self.c.content_dir and self.c.content_base_url),
                                max_upload_mb=self.srv.settings.max_upload_bytes / 1e6, updates=updates)

    # -- POST ----------------------------------------------------------------------------------------------

    def not_found_post(self, req, who, ctx, form, rest: str = "") -> Response:
        return self.error(ctx, 404, "not_found")

    async def login(self, req: Request) -> Response:
        ctx = self.ctx(req)
        try:
            body = await read_body(req, MAX_FORM_BYTES)
        except LengthRequired:
            return _text(411, "Length Required", close=True)
        except BodyTooLarge:
            return self.error(ctx, 413, "too_large", close=True)
        try:
            form = await parse_form(req, body)
        except FormParseError:
            return self.error(ctx, 400, "err_bad_form")
        return await run_in_threadpool(self.check_login, req, form)

    def check_login(self, req: Request, form: Form) -> Response:
        t = Translator(self.lang(req))
        nxt = _safe_next(form.get("next", "/"))
        user = form.get("user").strip()[:64]
        cookie = req.cookies.get(LOGIN_COOKIE)
        ip = self.ip(req)
        if not cookie or not csrf_ok(cookie, form.get("csrf")):
            log.warning("console: login without a valid CSRF token from %s", ip)
            return self.error(self.ctx(req), 403, "err_csrf")
        wait = self.srv.limiter.retry_after(ip, user)
        if wait > 0:
            log.info("console: login of %r from %s waits %.1f s (earlier failures)", user, ip, wait)
            return self.login_form(req, nxt=nxt, user=user, error=t("err_login_limited",
                                                                    wait=views.wait_text(t, wait)), code=429)
        stored = self.srv.store.password_hash(user) if user else None
        ok = verify_password(form.get("password"), stored or _DECOY) and stored is not None
        if not ok:
            self.srv.limiter.failed(ip, user)
            self.srv.store.audit(user or "-", "login-failed", ip=ip)
            log.warning("console: failed login for %r from %s", user, ip)
            return self.login_form(req, nxt=nxt, user=user, error=t("err_login"), code=401)
        self.srv.limiter.succeeded(ip, user)
        session = self.srv.sessions.create(user)
        self.srv.store.logged_in(user)
        self.srv.store.audit(user, "login", ip=ip)
        log.info("console: %s logged in from %s", user, ip)
        return _redirect(nxt, [
            self.cookie(SESSION_COOKIE, session.token, max_age=int(self.srv.settings.session_s)),
            self.cookie(LOGIN_COOKIE, "", max_age=0, path="/login"),
        ])

    def logout(self, req, who, ctx, form) -> Response:
        self.srv.sessions.end(who.session.token)
        self.srv.store.audit(who.user, "logout", ip=self.ip(req))
        return _redirect("/login", [self.cookie(SESSION_COOKIE, "", max_age=0)])

    def new_too_large(self, req, who, ctx, error: str) -> Response | None:
        status = req.path_params["status"]
        return self.render(ctx, self.form_page(ctx, status, error=error)) if status in STATUSES else None

    def update_too_large(self, req, who, ctx, error: str) -> Response | None:
        a = self.alert_from(req.path_params["aid"])
        return None if a is None else self.render(ctx, self.form_page(ctx, a.status, error=error, updates=a))

    def draft_from(self, form: Form, make) -> Draft:
        """Store the uploaded audio (if any) in a temporary file and call `make(values, audio_file, audio_name)`;
        FormError propagates. The temporary file is gone afterwards (the draft holds the content's copy)."""
        values = {k: form.get(k) for k in ("scope", "headline", "text", "severity", "expires")}
        upload = form.files.get("audio")
        tmp: Path | None = None
        try:
            if upload is not None:
                if len(upload.data) > self.srv.settings.max_upload_bytes:
                    mb = f"{self.srv.settings.max_upload_bytes / 1e6:g}"
                    raise FormError("err_upload_too_large", mb=mb)
                suffix = Path(upload.filename).suffix
                suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""
                tmp = Path(self.srv._upload_dir.name) / f"{secrets.token_hex(8)}{suffix}"
                tmp.write_bytes(upload.data)
            return make(values, tmp, Path(upload.filename).name[:100] if upload else "")
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def new_alert(self, req, who, ctx, form: Form, status: str) -> Response:
        if status not in STATUSES:
            return self.error(ctx, 404, "not_found")
        if not may_send(who.role, status):
            return self.forbidden(req, who, ctx, status)
        values = {k: form.get(k) for k in ("scope", "headline", "text", "severity", "expires")}
        try:
            d = self.draft_from(form, lambda v, audio, name: self.c.draft(
                status=status, scope=v["scope"], text=v["text"], headline=v["headline"],
                severity=v["severity"] or "unknown", expires=v["expires"] or "30m", audio_file=audio,
                audio_name=name))
        except FormError as e:
            return self.render(ctx, self.form_page(ctx, status, values=values, error=ctx.t(e.key, **e.params)))
        if status == "actual":
            return self.render(ctx, views.confirm_page(ctx, self.srv.keep_draft(d, who.user), d))
        return self.send_alert(req, who, ctx, d, lambda err: self.form_page(ctx, status, values=values, error=err))

    def update(self, req, who, ctx, form: Form, aid: str) -> Response:
        """An update of an active alert: same status and scope, new content; actual ones are confirmed as new."""
        a = self.alert_from(aid)
        if a is None:
            return self.error(ctx, 404, "not_found")
        if not may_send(who.role, a.status):
            return self.forbidden(req, who, ctx, a.status)
        values = {k: form.get(k) for k in ("headline", "text", "severity", "expires")}
        try:
            d = self.draft_from(form, lambda v, audio, name: self.c.draft_update(
                a.id, text=v["text"], headline=v["headline"], severity=v["severity"] or "unknown",
                expires=v["expires"] or "30m", audio_file=audio, audio_name=name))
        except FormError as e:
            return self.render(ctx, self.form_page(ctx, a.status, values=values, error=ctx.t(e.key, **e.params),
                                                   updates=a))
        if a.status == "actual":
            return self.render(ctx, views.confirm_page(ctx, self.srv.keep_draft(d, who.user), d))
        return self.send_alert(req, who, ctx, d,
                               lambda err: self.form_page(ctx, a.status, values=values, error=err, updates=a))

    def send_alert(self, req, who, ctx, d: Draft, again: Callable[[str], views.Page]) -> Response:
        try:
            alert_id = self.c.send(d, user=who.user, ip=self.ip(req))
        except Unconfirmed as e:
            a = self.c.alert(e.alert_id)
            page = views.alert_page(ctx, a, self.c.acks(a), time.time())
            page.messages.append(("error", ctx.t("err_broker_unconfirmed", detail=str(e))))
            page.code = 503
            return self.render(ctx, page)
        except MqttError as e:
            page = again(ctx.t("err_broker", detail=str(e)))
            page.code = 503
            return self.render(ctx, page)
        except FormError as e:
            return self.render(ctx, again(ctx.t(e.key, **e.params)))
        return _redirect(f"/alert/{quote(alert_id)}?sent=1")

    def confirm(self, req, who, ctx, form: Form) -> Response:
        if not may_send(who.role, "actual"):  # the role may have changed since the draft was made
            return self.forbidden(req, who, ctx, "actual")
        token = form.get("draft")
        d = self.srv.draft(token, who.user)
        if d is None:
            return self.render(ctx, self.form_page(ctx, "actual", error=ctx.t("err_draft_gone")))
        typed = form.get("typed").strip()
        if typed != str(d.scope):
            self.srv.store.audit(who.user, "actual-refused", status="actual", scope=str(d.scope),
                                 detail=f"typed {typed[:100]!r}", ip=self.ip(req))
            err = ctx.t("err_typed_scope", typed=typed[:100], scope=str(d.scope))
            return self.render(ctx, views.confirm_page(ctx, token, d, error=err))
        if not self.srv.drop_draft(token):  # a double click: the first one sends
            return self.render(ctx, self.form_page(ctx, "actual", error=ctx.t("err_draft_gone")))
        return self.send_alert(req, who, ctx, d, lambda err: views.confirm_page(
            ctx, self.srv.keep_draft(d, who.user), d, error=err))

    def cancel(self, req, who, ctx, form: Form, aid: str) -> Response:
        a = self.alert_from(aid)
        if a is None:
            return self.error(ctx, 404, "not_found")
        try:
            self.c.cancel(a.id, user=who.user, ip=self.ip(req))
        except MqttError as e:
            page = views.alert_page(ctx, a, self.c.acks(a), time.time())
            page.messages.append(("error", ctx.t("err_broker_cancel", detail=str(e))))
            page.code = 503
            return self.render(ctx, page)
        return _redirect(f"/alert/{quote(a.id)}")


def _safe_next(nxt: str) -> str:
    """Only a local path: never `//host` or `/\\host` (open redirects)."""
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt or any(ord(ch) < 32 for ch in nxt):
        return "/"
    return nxt
