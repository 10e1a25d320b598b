"""Passwords, sessions, CSRF tokens and the login rate limiter, without HTTP."""

from __future__ import annotations

import sqlite3

import pytest

from district.console.accounts import (
    LoginLimiter,
    Sessions,
    check_name,
    check_new_password,
    client_address,
    csrf_ok,
    hash_password,
    parse_trusted_proxies,
    verify_password,
)
from district.console.store import ConsoleStore


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_passwords_are_salted_scrypt_hashes_that_verify():
    h1, h2 = hash_password("mật khẩu dài"), hash_password("mật khẩu dài")
    assert h1.startswith("scrypt$16384$8$1$") and h1 != h2  # a fresh salt each time
    assert "mật khẩu" not in h1
    assert verify_password("mật khẩu dài", h1) and verify_password("mật khẩu dài", h2)
    assert not verify_password("mật khẩu dai", h1)
    assert not verify_password("", h1)


def test_malformed_or_foreign_hashes_never_verify():
    for stored in ("", "plain", "bcrypt$x$y$z$aa$bb", "scrypt$16384$8$1$zz$00", "scrypt$1$8$1$00$00"):
        assert not verify_password("x", stored)


def test_new_passwords_and_names_are_checked():
    assert check_new_password("short") and check_new_password("long-enough") is None
    assert check_name("nguyen.van-a_1") is None
    assert check_name("") and check_name("a b") and check_name("x" * 65) and check_name("<script>")


def test_sessions_expire_after_their_lifetime_and_when_idle():
    clock = Clock()
    s = Sessions(lifetime_s=100, idle_s=30, now=clock)
    a = s.create("an")
    assert len(a.token) >= 40 and a.csrf != a.token
    clock.t += 25
    assert s.get(a.token) is a  # used: the idle timer restarts
    clock.t += 25
    assert s.get(a.token) is a
    clock.t += 31
    assert s.get(a.token) is None  # idle too long
    b = s.create("binh")
    for _ in range(3):
        clock.t += 25
        assert s.get(b.token) is b
    clock.t += 24
    assert s.get(b.token) is b  # 99 s old
    clock.t += 2
    assert s.get(b.token) is None  # absolute lifetime reached although in use
    assert s.get("") is None and s.get(None) is None and s.get("forged") is None


def test_ending_sessions():
    s = Sessions()
    a, b, c = s.create("an"), s.create("an"), s.create("binh")
    s.end(a.token)
    assert s.get(a.token) is None and s.get(b.token) is b
    s.end_user("an")
    assert s.get(b.token) is None and s.get(c.token) is c


def test_csrf_comparison():
    assert csrf_ok("abc", "abc")
    assert not csrf_ok("abc", "abd") and not csrf_ok("abc", "") and not csrf_ok("abc", None)


def test_login_limiter_delays_grow_per_account_and_never_lock():
    clock = Clock()
    lim = LoginLimiter(now=clock)
    waits = []
    for _ in range(9):
        waits.append(lim.retry_after("10.0.0.1", "an"))
        clock.t += waits[-1]  # the guesser waits exactly as long as asked, then fails again
        lim.failed("10.0.0.1", "an")
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 8]  # growing, capped at a few seconds
    assert lim.retry_after("10.0.0.1", "AN") == 8  # user names are case-insensitive
    clock.t += 8
    assert lim.retry_after("10.0.0.1", "an") == 0  # then the right password is tried: never minutes


def test_login_limiter_keeps_one_persons_typos_to_that_person_and_a_success_resets_the_account():
    clock = Clock()
    lim = LoginLimiter(now=clock)
    for _ in range(5):
        lim.failed("10.0.0.1", "an")
    assert lim.retry_after("10.0.0.1", "an") == 2
    assert lim.retry_after("10.0.0.1", "binh") == 0  # same (shared) address, another officer: at once
    assert lim.retry_after("10.0.0.9", "an") == 2  # the account is throttled from anywhere
    for _ in range(6):  # more failures from that address, on other names: the address gets its delay too
        lim.failed("10.0.0.1", "x")
    assert lim.retry_after("10.0.0.1", "binh") == 1
    clock.t += 2
    lim.succeeded("10.0.0.1", "an")
    clock.t += 0.5
    lim.failed("10.0.0.1", "an")
    assert lim.retry_after("10.0.0.2", "an") == 0  # the account counts from zero again after its success
    assert lim.retry_after("10.0.0.1", "binh") == 2  # the address does not: 12 failures


def test_login_limiter_forgets_a_key_after_its_quiet_time():
    clock = Clock()
    lim = LoginLimiter(now=clock, forget_s=900)
    for _ in range(7):
        lim.failed("10.0.0.1", "an")
    clock.t += 899
    assert lim.retry_after("10.0.0.1", "an") == 0  # 8 s passed long ago anyway
    clock.t += 1
    lim.failed("10.0.0.1", "an")
    assert lim.retry_after("10.0.0.1", "an") == 0  # a first failure again, not the 8th


@pytest.mark.parametrize("peer, forwarded, want", [
    ("203.0.113.5", ["198.51.100.7"], "203.0.113.5"),  # not a proxy: whatever it writes is ignored
    ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),  # the trusted proxy says who connected to it
    ("127.0.0.1", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),  # the client's own claim is further left
    ("127.0.0.1", ["6.6.6.6", "198.51.100.7, 10.0.0.2"], "198.51.100.7"),  # through two trusted proxies
    ("127.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # all trusted: the farthest one
    ("127.0.0.1", [], "127.0.0.1"),  # the proxy added nothing
    ("127.0.0.1", ["nonsense"], "127.0.0.1"),  # garbage is never an address
    ("::1", ["2001:db8::7"], "::1"),  # IPv6 loopback is not 127.0.0.1
])
def test_client_address_believes_x_forwarded_for_only_from_trusted_proxies(peer, forwarded, want):
    trusted = parse_trusted_proxies(["127.0.0.1", "10.0.0.0/24"])
    assert client_address(peer, forwarded, trusted) == want


def test_a_bad_trusted_proxy_is_named():
    with pytest.raises(ValueError, match="--trusted-proxy 'proxy.example': not an IP address or network"):
        parse_trusted_proxies(["10.0.0.1", "proxy.example"])


def test_waits_are_said_as_a_person_says_them():
    from district.console.i18n import Translator
    from district.console.views import wait_text

    vi, en = Translator("vi"), Translator("en")
    assert [wait_text(vi, s) for s in (0.2, 1, 2.5, 59, 60, 61, 300)] == [
        "1 giây", "1 giây", "3 giây", "59 giây", "1 phút", "2 phút", "5 phút"]
    assert [wait_text(en, s) for s in (1, 8, 300)] == ["1 second", "8 seconds", "5 minutes"]


def test_store_keeps_accounts_and_disabled_ones_have_no_hash(tmp_path):
    store = ConsoleStore(tmp_path / "d.sqlite")
    assert store.add_user("an", hash_password("mat-khau-1"))
    assert not store.add_user("an", hash_password("other-pass"))
    assert verify_password("mat-khau-1", store.password_hash("an"))
    assert store.set_disabled("an", True) and store.password_hash("an") is None and not store.is_enabled("an")
    assert store.set_disabled("an", False) and store.is_enabled("an")
    assert not store.set_disabled("nobody", True)
    store.audit("an", "alert", status="test", scope="hv", alert_id="hv-1", detail="x", ip="127.0.0.1")
    [e] = store.audit_log()
    assert (e.user, e.action, e.status, e.scope, e.alert_id, e.ip) == ("an", "alert", "test", "hv", "hv-1",
                                                                       "127.0.0.1")
    store.close()


def test_sessions_kept_in_the_store_survive_a_restart_as_hashes_only(tmp_path):
    clock = Clock()
    store = ConsoleStore(tmp_path / "d.sqlite")
    before = Sessions(lifetime_s=1000, idle_s=100, now=clock, store=store, touch_every_s=10)
    a, b = before.create("an"), before.create("binh")
    clock.t += 50
    assert before.get(a.token) is a  # used at 50 (stored: more than touch_every_s since creation)
    raw = sqlite3.connect(tmp_path / "d.sqlite").execute("SELECT * FROM console_sessions").fetchall()
    assert len(raw) == 2 and not any(a.token in map(str, row) or b.token in map(str, row) for row in raw)

    after = Sessions(lifetime_s=1000, idle_s=100, now=clock, store=store, touch_every_s=10)  # a new process
    clock.t += 60
    restored = after.get(a.token)
    assert (restored.user, restored.csrf, restored.expires) == ("an", a.csrf, a.expires)
    assert after.get(b.token) is None  # b was last used at 0: idle for 110 s
    assert after.get("forged") is None and after.get("x" * 10_000) is None
    after.end(a.token)
    assert Sessions(now=clock, store=store).get(a.token) is None  # logged out for every process
    c = after.create("an")
    after.end_user("an")
    assert Sessions(now=clock, store=store).get(c.token) is None
    d = after.create("binh")
    clock.t += 1001
    assert Sessions(lifetime_s=1000, now=clock, store=store).get(d.token) is None  # the absolute lifetime holds
    store.close()
