"""Staff accounts of the console: scrypt password hashes, sessions, CSRF tokens, login throttling, client address.

Passwords are stored as `scrypt$n$r$p$<salt hex>$<hash hex>` (hashlib.scrypt, 16-byte random salt, n=2**14,
r=8, p=1: about 16 MiB and 50 ms per check, cheap for a login, expensive for a guesser with a stolen database).
Sessions live in memory and, when given a store, in the database as sha256(token): a console restarted (an
upgrade, a crash, systemd) keeps its staff logged in, and the token itself never touches the disk (a stolen
database holds nothing a browser could present). Each session has its own CSRF token; forms carry it and every
POST is checked with hmac.compare_digest.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD = 8
NAME_MAX = 64


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; False for a wrong password or a malformed record."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = bytes.fromhex(digest)
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(want)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def check_new_password(password: str) -> str | None:
    """A reason to refuse a new password, or None."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    return None


def check_name(name: str) -> str | None:
    if not name or len(name) > NAME_MAX or not all(ch.isalnum() or ch in "._-" for ch in name):
        return f"user name {name!r}: 1-{NAME_MAX} letters, digits, '.', '_' or '-'"
    return None


@dataclass
class Session:
    token: str
    user: str
    csrf: str
    expires: float
    created: float = field(default=0.0)


class SessionStore(Protocol):
    """Where sessions outlive the process (`ConsoleStore`). Keys are sha256(token) in hex, never the token."""

    def save_session(self, key: str, user: str, csrf: str, expires: float, created: float, used: float) -> None: ...
    def load_session(self, key: str) -> tuple[str, str, float, float, float] | None: ...  # user csrf expires created used
    def touch_session(self, key: str, used: float) -> None: ...
    def delete_sessions(self, *, key: str | None = None, user: str | None = None, dead_at: float | None = None,
                        idle_s: float = 0.0) -> None: ...


def session_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    """Random session tokens (32 bytes, url-safe) with an absolute lifetime and an idle timeout.

    With a `store`, every session is also kept there (by `session_key`), so a new process finds it; the last use
    is written at most every `touch_every_s`, so the idle timeout of a restored session is that much lenient."""

    def __init__(self, *, lifetime_s: float = 12 * 3600, idle_s: float = 2 * 3600,
                 now: Callable[[], float] = time.time, store: SessionStore | None = None,
                 touch_every_s: float = 60.0):
        self.lifetime_s = lifetime_s
        self.idle_s = idle_s
        self._now = now
        self._store = store
        self._touch_every_s = touch_every_s
        self._lock = threading.Lock()
        self._by_token: dict[str, tuple[Session, float, float]] = {}  # token -> (session, last used, last stored)

    def create(self, user: str) -> Session:
        now = self._now()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now + self.lifetime_s, now)
        with self._lock:
            self._prune(now)
            self._by_token[s.token] = (s, now, now)
            if self._store is not None:
                self._store.save_session(session_key(s.token), user, s.csrf, s.expires, now, now)
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        now = self._now()
        with self._lock:
            entry = self._by_token.get(token) or self._restore(token)
            if entry is None:
                return None
            s, used, stored = entry
            if now >= s.expires or now - used >= self.idle_s:
                self._drop(token)
                return None
            if self._store is not None and now - stored >= self._touch_every_s:
                self._store.touch_session(session_key(token), now)
                stored = now
            self._by_token[token] = (s, now, stored)
            return s

    def _restore(self, token: str) -> tuple[Session, float, float] | None:
        if self._store is None or len(token) > 200:
            return None
        row = self._store.load_session(session_key(token))
        if row is None:
            return None
        user, csrf, expires, created, used = row
        return Session(token, user, csrf, expires, created), used, used

    def _drop(self, token: str) -> None:
        self._by_token.pop(token, None)
        if self._store is not None:
            self._store.delete_sessions(key=session_key(token))

    def end(self, token: str | None) -> None:
        with self._lock:
            self._drop(token or "")

    def end_user(self, user: str) -> None:
        with self._lock:
            for t in [t for t, (s, _, _) in self._by_token.items() if s.user == user]:
                del self._by_token[t]
            if self._store is not None:
                self._store.delete_sessions(user=user)

    def _prune(self, now: float) -> None:
        dead = [t for t, (s, used, _) in self._by_token.items() if now >= s.expires or now - used >= self.idle_s]
        for t in dead:
            del self._by_token[t]
        if self._store is not None:
            self._store.delete_sessions(dead_at=now, idle_s=self.idle_s + self._touch_every_s)


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ACCOUNT_DELAYS_S = (0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0)  # wait after the 1st, 2nd, ... failure; then the last
CLIENT_DELAYS_S = (0.0,) * 10 + (1.0, 2.0, 4.0, 8.0)  # an office shares addresses: ten typos are nobody's fault


class LoginLimiter:
    """Growing delays after failed logins, per account and per client address, never a lock.

    After the n-th failure in a row on a key, the next try on that key waits `delays[n-1]` seconds (the last
    entry beyond the table), counted from that failure; a key is forgotten `forget_s` after its last failure.
    So a guesser gets one try every few seconds per account and per address, while a correct password is
    refused for at most the current short delay: nobody can lock an officer out by knowing the user name,
    and one person's typos behind a shared address never lock out the others (the address has more slack).
    A success resets its account's count (whoever succeeded knows the password) but not the address's (a
    guesser with one valid account must not reset the count it spreads over other names)."""

    def __init__(self, *, account_delays_s: tuple[float, ...] = ACCOUNT_DELAYS_S,
                 client_delays_s: tuple[float, ...] = CLIENT_DELAYS_S, forget_s: float = 900.0,
                 now: Callable[[], float] = time.monotonic):
        self.account_delays_s = account_delays_s
        self.client_delays_s = client_delays_s
        self.forget_s = forget_s
        self._now = now
        self._lock = threading.Lock()
        self._fails: dict[str, tuple[int, float]] = {}  # key -> (failures in a row, time of the last one)

    def _keys(self, ip: str, user: str) -> tuple[tuple[str, tuple[float, ...]], ...]:
        return (f"ip:{ip}", self.client_delays_s), (f"user:{user.lower()}", self.account_delays_s)

    def retry_after(self, ip: str, user: str) -> float:
        """Seconds until a login of `user` from `ip` may be tried; 0 when allowed now."""
        now = self._now()
        wait = 0.0
        with self._lock:
            for key, delays in self._keys(ip, user):
                n, last = self._fails.get(key, (0, 0.0))
                if n == 0 or now - last >= self.forget_s:
                    continue
                wait = max(wait, last + delays[min(n, len(delays)) - 1] - now)
        return max(0.0, wait)

    def failed(self, ip: str, user: str) -> None:
        now = self._now()
        with self._lock:
            for key, _ in self._keys(ip, user):
                n, last = self._fails.get(key, (0, 0.0))
                self._fails[key] = (1 if now - last >= self.forget_s else n + 1, now)
            if len(self._fails) > 10000:  # a flood of made-up names: forget the oldest keys
                for key in sorted(self._fails, key=lambda k: self._fails[k][1])[:5000]:
                    del self._fails[key]

    def succeeded(self, ip: str, user: str) -> None:
        with self._lock:
            self._fails.pop(f"user:{user.lower()}", None)


def client_address(peer: str, forwarded_for: list[str], trusted: tuple[IPNetwork, ...]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the right-most address of
    X-Forwarded-For that is not itself a trusted proxy (what a client writes there itself is further left and
    is never believed). A malformed entry, or none at all, leaves the last trusted hop's address."""
    if not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        client = hop
        if not _trusted(hop, trusted):
            break
    return client


def parse_trusted_proxies(values: list[str] | tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """Addresses or networks (`10.0.0.1`, `10.0.0.0/24`, `::1`); ValueError naming the bad one."""
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxy {v!r}: not an IP address or network") from None
    return tuple(out)


def _trusted(address: str, trusted: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in trusted)
