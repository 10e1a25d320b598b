"""The console over real HTTP (http.client, no browser): who may do what, CSRF, bad input, audit entries."""

from __future__ import annotations

import http.client
import re
import time
from urllib.parse import urlencode, urlsplit

import pytest

from district.mqtt import DistrictClient
from firmware.protocol.keys import generate
from tests.console.conftest import PASSWORD, USER, Browser, multipart, start_console


@pytest.mark.parametrize("path", ["/", "/alerts", "/alert/new/test", "/audit", "/station/hv%2Fhb%2Fs1"])
def test_pages_redirect_to_login_without_a_session(running, path):
    r, _ = Browser(running.url).get(path)
    assert r.status == 303
    assert r.getheader("Location").startswith("/login?next=")


def test_live_fragments_and_posts_are_refused_without_a_session(running):
    b = Browser(running.url)
    assert b.get("/fragment/fleet")[0].status == 401
    assert b.post("/alert/new/test", {"scope": "hv", "text": "x"})[0].status == 401
    assert b.post("/alert/x/cancel", {})[0].status == 401


def test_a_forged_session_cookie_is_not_a_session(running):
    b = Browser(running.url)
    b.cookies["loa_session"] = "forged-token-0123456789abcdef"
    assert b.get("/")[0].status == 303


def test_login_sets_a_strict_httponly_session_cookie_and_logout_ends_it(fleet):
    b = Browser(fleet.url)
    token = b.csrf("/login")
    conn = http.client.HTTPConnection(b.host, b.port, timeout=10)
    conn.request("POST", "/login", urlencode({"csrf": token, "user": USER, "password": PASSWORD}).encode(),
                 {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"loa_login={b.cookies['loa_login']}"})
    r = conn.getresponse()
    r.read()
    cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("loa_session=")]
    assert r.status == 303 and cookies
    assert "HttpOnly" in cookies[0] and "SameSite=Strict" in cookies[0] and "Max-Age=" in cookies[0]
    b.cookies["loa_session"] = cookies[0].split(";")[0].split("=", 1)[1]
    r, body = b.get("/")
    assert r.status == 200 and "hv/hb" in body
    csrf = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
    old = dict(b.cookies)
    assert b.post("/logout", {"csrf": csrf})[0].status == 303
    b.cookies = old  # a copied cookie is worthless after logout
    assert b.get("/")[0].status == 303


def test_wrong_password_shows_the_form_again_and_is_audited(fleet):
    b = Browser(fleet.url)
    r, body = b.login(password="wrong-password")
    assert r.status == 401
    assert "Sai tên đăng nhập hoặc mật khẩu" in body
    assert [e.action for e in fleet.store.audit_log()] == ["login-failed"]


def test_login_is_rate_limited_per_user_name(fleet):
    b = Browser(fleet.url)
    for _ in range(5):
        fleet.clock.t += 10  # a person retyping (the limiter's clock, not a sleep)
        assert b.login(password="nope-nope")[0].status == 401
    r, body = b.login()  # even the right password waits now: a few seconds
    assert r.status == 429
    assert "Quá nhiều lần đăng nhập sai. Hãy thử lại sau 2 giây." in body


def test_the_office_behind_one_proxy_address_is_not_locked_out_by_one_persons_typos(fleet):
    """Issue 13, defect 2: behind the reverse proxy the whole office shares one address."""
    from district.console.accounts import hash_password

    fleet.store.add_user("truc-ban", hash_password("mat-khau-truc-ban"), role="officer")
    typist, other = Browser(fleet.url), Browser(fleet.url)
    for _ in range(5):
        fleet.clock.t += 10  # retyping takes a few seconds (the limiter's clock, not a sleep)
        assert typist.login(password="sai-mat-khau")[0].status == 401
    r, _ = other.login("truc-ban", "mat-khau-truc-ban")  # another officer, same address, at once
    assert r.status == 303
    fleet.clock.t += 3  # the typist waits a few seconds (the limiter's clock, not a sleep)
    r, _ = typist.login()
    assert r.status == 303 and typist.get("/")[0].status == 200
    assert [e.ip for e in fleet.store.audit_log() if e.action == "login"] == ["127.0.0.1", "127.0.0.1"]


def test_knowing_a_user_name_cannot_keep_that_officer_out(fleet):
    attacker, officer = Browser(fleet.url), Browser(fleet.url)
    for _ in range(30):
        fleet.clock.t += 10  # as fast as the limiter lets it
        assert attacker.login(password="doan-mo")[0].status == 401
    r, body = officer.login()
    assert r.status == 429 and "8 giây" in body  # the longest wait there is
    fleet.clock.t += 8
    assert officer.login()[0].status == 303


def test_a_long_wait_is_shown_in_minutes(broker, tmp_path):
    from district.console.accounts import LoginLimiter
    from tests.console.conftest import Clock, stop_console

    clock = Clock()  # a district that set a long delay after one failure
    r = start_console(broker.url, tmp_path, generate("hv"), limiter=LoginLimiter(account_delays_s=(300.0,), now=clock),
                      clock=clock)
    try:
        b = Browser(r.url)
        assert b.login(password="sai-sai-sai")[0].status == 401
        resp, body = b.login()
        assert resp.status == 429 and "Hãy thử lại sau 5 phút." in body and "300" not in body
        b.get("/lang/en?next=/login")
        resp, body = b.login()
        assert resp.status == 429 and "Try again in 5 minutes." in body
    finally:
        stop_console(r)


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(fleet):
    liar = Browser(fleet.url)
    for i in range(11):  # one address pretending to be eleven: the address's own delay still comes
        assert liar.login(f"ten-{i}", "sai-sai-sai", headers={"X-Forwarded-For": f"198.51.100.{i}"})[0].status == 401
    r, _ = liar.login(headers={"X-Forwarded-For": "198.51.100.99"})
    assert r.status == 429
    assert {e.ip for e in fleet.store.audit_log()} == {"127.0.0.1"}


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(broker, tmp_path):
    from tests.console.conftest import seed_station, stop_console

    r = start_console(broker.url, tmp_path, generate("hv"), trusted_proxies=("127.0.0.1",))
    try:
        seed_station(r.db, "hv/hb/s1")
        pc1, pc2 = Browser(r.url), Browser(r.url)
        for _ in range(11):  # one office PC typing wrong, many times
            r.clock.t += 10
            assert pc1.login(password="sai-sai-sai", headers={"X-Forwarded-For": "6.6.6.6, 10.1.1.1"})[0].status == 401
        r2, _ = pc1.login("khac", "sai-sai-sai", headers={"X-Forwarded-For": "10.1.1.1"})
        assert r2.status == 429  # that PC's address is throttled ...
        r2, _ = pc2.login("khac", "sai-sai-sai", headers={"X-Forwarded-For": "10.1.1.2"})
        assert r2.status == 401  # ... the PC beside it is not
        assert {e.ip for e in r.store.audit_log()} == {"10.1.1.1", "10.1.1.2"}
    finally:
        stop_console(r)


def test_login_without_its_csrf_token_is_refused(fleet):
    b = Browser(fleet.url)
    r, _ = b.post("/login", {"user": USER, "password": PASSWORD})
    assert r.status == 403
    b.csrf("/login")  # has the cookie now, but sends another token
    r, _ = b.post("/login", {"csrf": "not-the-token", "user": USER, "password": PASSWORD})
    assert r.status == 403


def test_login_redirect_stays_on_this_site(fleet):
    b = Browser(fleet.url)
    token = b.csrf("/login")
    r, _ = b.post("/login", {"csrf": token, "user": USER, "password": PASSWORD, "next": "//evil.example/x"})
    assert r.status == 303 and r.getheader("Location") == "/"


def test_posts_without_the_csrf_token_are_refused_and_send_nothing(logged_in, fleet):
    body, ctype = multipart({"scope": "hv", "text": "Kiểm tra"})
    r, _ = logged_in.request("POST", "/alert/new/test", body, {"Content-Type": ctype})
    assert r.status == 403
    r, _ = logged_in.post("/alert/new/test", {"csrf": "wrong", "scope": "hv", "text": "x"})
    assert r.status == 403
    assert logged_in.post("/logout", {})[0].status == 403
    assert fleet.store.alerts() == []


def test_test_alert_is_published_recorded_audited_and_cancel_is_one_post(logged_in, fleet, broker):
    seen = []
    with DistrictClient.from_url(broker.url) as watcher:
        watcher.subscribe(["loa/v1/hv/alert"], lambda m: seen.append(m))
        csrf = logged_in.csrf("/alert/new/test")
        body, ctype = multipart({"csrf": csrf, "scope": "hv", "text": "Bản tin kiểm tra", "expires": "15m"})
        r, _ = logged_in.request("POST", "/alert/new/test", body, {"Content-Type": ctype})
        assert r.status == 303
        alert_id = r.getheader("Location").split("/alert/")[1].split("?")[0]
        r, page = logged_in.get(r.getheader("Location"))
        assert r.status == 200 and "KIỂM TRA — không phát ra loa" in page and alert_id in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        r, _ = logged_in.post(f"/alert/{alert_id}/cancel", {"csrf": csrf})
        assert r.status == 303
    a = fleet.store.alert(alert_id)
    assert a.status == "test" and a.scope == "hv" and a.cancelled_at is not None
    assert sorted(a.expected) == ["hv/hb/s1", "hv/hb/s2", "hv/hn/s3"]
    log = fleet.store.audit_log()
    assert [(e.action, e.user, e.status, e.scope, e.alert_id) for e in log[:2]] == [
        ("cancel", USER, "test", "hv", alert_id),
        ("alert", USER, "test", "hv", alert_id),
    ]
    r, page = logged_in.get("/audit")
    assert page.count(alert_id) >= 2


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"scope": "hv", "text": "   "}, "Hãy nhập nội dung hoặc chọn tệp âm thanh"),
        ({"scope": "hv/xx", "text": "x"}, "không có trạm nào đã biết"),
        ({"scope": "../../etc", "text": "x"}, "không có trạm nào đã biết"),
        ({"scope": "hv", "text": "x", "expires": "99y"}, "Thời gian hiệu lực không hợp lệ"),
        ({"scope": "hv", "text": "x" * 2001}, "Nội dung dài quá 2000 ký tự"),
    ],
)
def test_bad_alert_input_shows_the_form_again_with_a_message(logged_in, fleet, fields, message):
    csrf = logged_in.csrf("/alert/new/exercise")
    body, ctype = multipart({"csrf": csrf, **fields})
    r, page = logged_in.request("POST", "/alert/new/exercise", body, {"Content-Type": ctype})
    assert r.status == 400
    assert message in page
    assert 'id="alert-form"' in page and "Traceback" not in page
    assert fleet.store.alerts() == []


def test_oversize_upload_shows_the_form_again(logged_in, fleet):
    csrf = logged_in.csrf("/alert/new/test")
    body, ctype = multipart({"csrf": csrf, "scope": "hv", "text": ""}, {"audio": ("big.wav", b"\0" * 400_000)})
    r, page = logged_in.request("POST", "/alert/new/test", body, {"Content-Type": ctype})
    assert r.status == 400
    assert "Tệp tải lên quá lớn" in page
    assert fleet.store.alerts() == []


def test_uploaded_audio_is_stored_by_sha256_and_sent_as_its_url(logged_in, fleet, tmp_path):
    import hashlib

    data = b"RIFF....WAVEfmt fake audio bytes"
    csrf = logged_in.csrf("/alert/new/test")
    body, ctype = multipart({"csrf": csrf, "scope": "hv/hb", "text": ""}, {"audio": ("bao-bao.wav", data)})
    r, _ = logged_in.request("POST", "/alert/new/test", body, {"Content-Type": ctype})
    assert r.status == 303
    sha = hashlib.sha256(data).hexdigest()
    assert (tmp_path / "content" / f"{sha}.wav").read_bytes() == data
    a = fleet.store.alerts()[0]
    assert a.audio_url == f"http://127.0.0.1:9/content/{sha}.wav"


def test_actual_alert_needs_the_scope_typed_exactly(logged_in, fleet, broker):
    csrf = logged_in.csrf("/alert/new/actual")
    body, ctype = multipart({"csrf": csrf, "scope": "hv/hb", "text": "Lũ quét"})
    r, page = logged_in.request("POST", "/alert/new/actual", body, {"Content-Type": ctype})
    assert r.status == 200 and 'id="confirm-form"' in page
    assert "Phạm vi có 2 trạm" in page
    draft = re.search(r'name="draft" value="([^"]+)"', page).group(1)
    r, page = logged_in.post("/alert/confirm", {"csrf": csrf, "draft": draft, "typed": "hv"})
    assert r.status == 400 and "không đúng phạm vi" in page
    assert fleet.store.alerts() == []
    assert fleet.store.audit_log()[0].action == "actual-refused"
    r, _ = logged_in.post("/alert/confirm", {"csrf": csrf, "draft": draft, "typed": "hv/hb"})
    assert r.status == 303
    assert fleet.store.alerts()[0].status == "actual"
    r, page = logged_in.post("/alert/confirm", {"csrf": csrf, "draft": draft, "typed": "hv/hb"})  # double click
    assert len(fleet.store.alerts()) == 1 and "hết hạn hoặc đã được gửi" in page


def test_garbage_requests_never_crash_the_server(logged_in, fleet):
    for method, path, body, headers in [
        ("POST", "/alert/new/test", b"\xff\xfe garbage", {"Content-Type": "multipart/form-data; boundary=x"}),
        ("POST", "/alert/new/test", b"a=1", {"Content-Type": "text/plain"}),
        ("POST", "/alert/confirm", b"%%%", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("GET", "/alert/%00%ff", None, {}),
        ("GET", "/station/nope", None, {}),
        ("GET", "/static/../server.py", None, {}),
        ("GET", "/alert/new/real", None, {}),
        ("POST", "/alert/x/cancel", b"csrf=x", {"Content-Type": "application/x-www-form-urlencoded"}),
    ]:
        r, page = logged_in.request(method, path, body, headers)
        assert r.status in (400, 403, 404), (method, path, r.status)
        assert "Traceback" not in page
    assert logged_in.get("/")[0].status == 200


def test_english_is_one_click_away(logged_in):
    r, _ = logged_in.get("/lang/en?next=/alerts")
    assert r.status == 303 and r.getheader("Location") == "/alerts"
    r, page = logged_in.get("/alerts")
    assert "Active alerts" in page and 'lang="en"' in page


def test_security_headers(logged_in):
    r, _ = logged_in.get("/")
    assert "script-src 'self'" in r.getheader("Content-Security-Policy")
    assert r.getheader("X-Frame-Options") == "DENY" and r.getheader("Cache-Control") == "no-store"


def test_the_start_page_offers_the_cancel_button_of_every_active_alert(logged_in, fleet):
    csrf = logged_in.csrf("/alert/new/exercise")
    body, ctype = multipart({"csrf": csrf, "scope": "hv/hn", "text": "Diễn tập"})
    r, _ = logged_in.request("POST", "/alert/new/exercise", body, {"Content-Type": ctype})
    alert_id = r.getheader("Location").split("/alert/")[1].split("?")[0]
    _, page = logged_in.get("/")
    assert f'<button type="submit" class="cancel" data-alert="{alert_id}">' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert logged_in.post(f"/alert/{alert_id}/cancel", {"csrf": csrf})[0].status == 303
    _, page = logged_in.get("/")
    assert 'class="cancel"' not in page


def test_broker_down_the_alert_is_not_sent_and_a_cancel_says_it_failed(logged_in, fleet, broker):
    csrf = logged_in.csrf("/alert/new/exercise")
    body, ctype = multipart({"csrf": csrf, "scope": "hv", "text": "Diễn tập"})
    r, _ = logged_in.request("POST", "/alert/new/exercise", body, {"Content-Type": ctype})
    alert_id = r.getheader("Location").split("/alert/")[1].split("?")[0]
    broker.stop()
    client = fleet.console.client
    deadline = time.monotonic() + 10
    while client.connected and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a condition with a deadline: paho notices the closed socket
    assert not client.connected
    body, ctype = multipart({"csrf": csrf, "scope": "hv", "text": "Diễn tập 2"})
    r, page = logged_in.request("POST", "/alert/new/exercise", body, {"Content-Type": ctype})
    assert r.status == 503 and "chưa kết nối tới máy chủ MQTT" in page and 'id="alert-form"' in page
    assert len(fleet.store.alerts()) == 1
    assert fleet.store.audit_log()[0].action == "alert-failed"
    r, page = logged_in.post(f"/alert/{alert_id}/cancel", {"csrf": csrf})
    assert r.status == 503 and "CHƯA HỦY ĐƯỢC" in page and 'class="cancel"' in page  # still cancellable
    assert fleet.store.alert(alert_id).cancelled_at is None
    assert fleet.store.audit_log()[0].action == "cancel-failed"


def test_what_stations_and_officers_write_is_escaped_and_faults_show(logged_in, fleet):
    from datetime import UTC, datetime

    from firmware.protocol.reports import StationIds, Telemetry

    now = datetime.now(UTC)
    fleet.db.add_telemetry(StationIds("hv", "hb", "s1"), Telemetry(
        id="t1", station="s1", ts=now, uptime_s=7200, link_uptime_s=60, state="fault",
        detail="<img src=x onerror=alert(1)> amplifier", outbox_depth=0), now.timestamp())
    _, page = logged_in.get("/")
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt; amplifier" in page
    assert 'id="count-faults">1<' in page
    csrf = logged_in.csrf("/alert/new/test")
    body, ctype = multipart({"csrf": csrf, "scope": "hv", "text": "<script>alert(1)</script>", "headline": '"><b>'})
    r, _ = logged_in.request("POST", "/alert/new/test", body, {"Content-Type": ctype})
    _, page = logged_in.get(r.getheader("Location"))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '"><b>' not in page


def raw(url: str, data: bytes) -> bytes:
    import socket

    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
            if b"\r\n\r\n" in out and (b"connection: close" in out.lower() or out.startswith(b"HTTP/1.0")):
                break
        return out


def test_malformed_http_is_answered_and_the_server_keeps_serving(logged_in, fleet):
    cookie = "; ".join(f"{k}={v}" for k, v in logged_in.cookies.items())
    answers = [
        raw(fleet.url, b"GET / HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n"),
        raw(fleet.url, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n"),
        raw(fleet.url, f"POST /alert/new/test HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Length: -5\r\n\r\n".encode()),
        raw(fleet.url, b"GET / HTTP/1.1\r\n\r\n"),  # HTTP/1.1 without Host
        raw(fleet.url, f"POST /alert/new/test HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Length: 99999999999\r\n"
                       "Content-Type: multipart/form-data; boundary=x\r\n\r\n".encode()),
        raw(fleet.url, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"),
        raw(fleet.url, b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ]
    assert answers[0].startswith(b"HTTP/1.1 ")  # an unknown version is answered as HTTP/1.1, not crashed on
    codes = [a.split(b" ", 2)[1] for a in answers[1:]]
    # headers too large: 431; uvicorn (h11) refuses a negative length and HTTP/1.1 without Host with 400;
    # a body over the limit is refused without being read (413), so is a body without a length (411)
    assert codes == [b"431", b"400", b"400", b"413", b"413", b"411"], codes
    assert all(b"Traceback" not in a for a in answers)
    assert logged_in.get("/")[0].status == 200


def test_stations_are_known_from_their_status_even_without_the_collector(logged_in, fleet, broker):
    import json

    with DistrictClient.from_url(broker.url) as station:
        station.publish("loa/v1/hv/hx/s9/status", json.dumps(
            {"v": 1, "state": "online", "station": "s9", "boot_id": "b9"}).encode(), retain=True)
        station.publish("loa/v1/hv/hx/s8/status", b'{"state": "online", "station": "not-s8"}', retain=True)
        deadline = time.monotonic() + 10
        while fleet.console.station("hv/hx/s9") is None and time.monotonic() < deadline:
            time.sleep(0.05)  # a condition with a deadline: the console stores it from paho's thread
    assert fleet.console.station("hv/hx/s9").state == "online"
    assert fleet.console.station("hv/hx/s8") is None  # malformed: refused, not stored
    _, page = logged_in.get("/alert/new/test")
    assert 'value="hv/hx/s9"' in page and 'value="hv/hx"' in page


def test_a_restarted_console_keeps_its_staff_logged_in_and_a_logout_holds(logged_in, fleet):
    from district.console.server import ConsoleServer, Settings

    fleet.server.stop()  # an upgrade, a crash, systemd: the process is gone, its memory with it
    fleet.server = ConsoleServer(fleet.console, fleet.store, Settings(), port=0).start()
    logged_in.port = fleet.server.port
    r, page = logged_in.get("/")
    assert r.status == 200 and 'id="logout"' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # the session's own CSRF token came back
    cookies = dict(logged_in.cookies)
    assert logged_in.post("/logout", {"csrf": csrf})[0].status == 303
    fleet.server.stop()
    fleet.server = ConsoleServer(fleet.console, fleet.store, Settings(), port=0).start()
    logged_in.port = fleet.server.port
    logged_in.cookies = cookies  # the old cookie, presented again (a copy kept by someone else)
    assert logged_in.get("/")[0].status == 303  # to /login: logged out stays logged out


def test_an_error_inside_the_console_is_a_plain_500_page_logged_with_its_trace(logged_in, fleet, caplog):
    fleet.db.close()  # the database goes away under the running console (a disk failing, a bad upgrade)
    with caplog.at_level("ERROR", logger="district.console.server"):
        r, page = logged_in.get("/")
    assert r.status == 500 and "Lỗi máy chủ" in page and "Traceback" not in page
    assert r.getheader("Content-Security-Policy") and r.getheader("X-Frame-Options") == "DENY"
    assert any(rec.exc_info for rec in caplog.records if "error answering GET /" in rec.getMessage())
    r, page = logged_in.get("/login")  # and it keeps serving
    assert r.status == 200 and 'id="login-form"' in page


def test_templates_and_static_files_are_package_data():
    import tomllib
    from pathlib import Path

    import district.console

    here = Path(district.console.__file__).parent
    globs = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["*"]
    shipped = [p for p in [*here.glob("templates/*"), *here.glob("static/*")] if p.is_file()]
    assert shipped and all(any(p.match(g) for g in globs) for p in shipped), shipped


def test_the_station_daemon_does_not_import_the_web_stack():
    import subprocess
    import sys

    code = ("import sys, firmware.app, firmware.cli; "
            "web = sorted(m for m in ('starlette', 'jinja2', 'uvicorn', 'multipart', 'python_multipart') "
            "if m in sys.modules); print(web); sys.exit(1 if web else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
