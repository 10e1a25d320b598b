"""An in-process TCP proxy for fault tests: pass, drop, stall and cut connections between stations and broker.

    with FaultProxy(upstream_port=broker.port) as proxy:
        station connects to proxy.url
        proxy.cut()        # close every connection now and refuse new ones (a dead 3G link, a pulled cable)
        proxy.restore()    # pass traffic again; clients reconnect
        proxy.drop()       # keep connections open but silently discard every byte (a black hole: only
                           # keepalive timeouts notice)
        proxy.stall()      # stop moving bytes in both directions (TCP backpressure builds up)
        proxy.flap()       # close every connection once, keep accepting (a link that blips)
        proxy.set_upstream(other.port)   # fail over to another broker (new connections go there)

One thread, one selector; loopback only. Counters (`accepted`, `refused`, `bytes_up`, `bytes_down`) let tests
wait on what happened rather than sleeping.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MODES = ("pass", "drop", "stall", "cut")


@dataclass(eq=False)
class _Conn:
    client: socket.socket
    upstream: socket.socket
    out: dict = field(default_factory=dict)  # socket -> bytearray waiting to be written to it

    def peer(self, s: socket.socket) -> socket.socket:
        return self.upstream if s is self.client else self.client


class FaultProxy:
    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1", port: int = 0,
                 name: str = "loa-fault-proxy"):
        self.upstream = (upstream_host, upstream_port)
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", port))
        self._lsock.listen(1024)
        self._lsock.setblocking(False)
        self.port = self._lsock.getsockname()[1]
        self.mode = "pass"
        self.accepted = 0
        self.refused = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._conns: dict[socket.socket, _Conn] = {}
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._lsock, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._pending: list = []
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    # -- control (any thread) ------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"proxy mode {mode!r}: expected one of {', '.join(MODES)}")
        self._call(lambda: self._apply(mode))

    def cut(self) -> None:
        self.set_mode("cut")

    def restore(self) -> None:
        self.set_mode("pass")

    def drop(self) -> None:
        self.set_mode("drop")

    def stall(self) -> None:
        self.set_mode("stall")

    def set_upstream(self, port: int, host: str = "127.0.0.1") -> None:
        """Send new connections to another broker (a cluster failover); open ones are closed."""
        def switch() -> None:
            self.upstream = (host, port)
            self._close_all()

        self._call(switch)

    def flap(self) -> None:
        """Close every open connection once; new ones are accepted (mode unchanged)."""
        self._call(self._close_all)

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Block until `predicate(proxy)` holds (checked after every accept, close and mode change)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def close(self) -> None:
        self._stop = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(5)
        self._close_all()
        for s in (self._lsock, self._wake_r, self._wake_w):
            s.close()
        self._sel.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- proxy thread --------------------------------------------------------------------------------------

    def _call(self, fn) -> None:
        if threading.current_thread() is self._thread or not self._thread.is_alive():
            fn()
            self._notify()
            return
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        with self._lock:
            self._pending.append(run)
        self._wake()
        done.wait(5)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _apply(self, mode: str) -> None:
        log.info("proxy :%d -> %s", self.port, mode)
        before, self.mode = self.mode, mode
        # A cut ends every connection. Leaving "drop" ends them too: the bytes it swallowed are gone, so the
        # streams could not be resumed (a real black hole's TCP would retransmit; ours cannot).
        if mode == "cut" or before == "drop" and mode != "drop":
            self._close_all()

    def _close_all(self) -> None:
        for conn in {id(c): c for c in self._conns.values()}.values():
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        for s in (conn.client, conn.upstream):
            self._conns.pop(s, None)
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            try:
                s.close()
            except OSError:
                pass
        self._notify()

    def _accept(self) -> None:
        try:
            client, _ = self._lsock.accept()
        except (BlockingIOError, OSError):
            return
        if self.mode == "cut":
            self.refused += 1
            client.close()
            self._notify()
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            self.refused += 1
            client.close()  # the broker is down: the client sees its connection closed, like a refused one
            self._notify()
            return
        for s in (client, upstream):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(client, upstream, {client: bytearray(), upstream: bytearray()})
        self._conns[client] = conn
        self._conns[upstream] = conn
        self._sel.register(client, selectors.EVENT_READ, conn)
        self._sel.register(upstream, selectors.EVENT_READ, conn)
        self.accepted += 1
        self._notify()

    def _interest(self, s: socket.socket, conn: _Conn) -> int:
        if self.mode == "stall":
            return 0
        ev = selectors.EVENT_READ
        if conn.out[s]:
            ev |= selectors.EVENT_WRITE
        return ev

    def _run(self) -> None:
        registered: dict[socket.socket, int] = {}
        while not self._stop:
            with self._lock:
                pending, self._pending = self._pending, []
            for fn in pending:
                fn()
                self._notify()
            for s, conn in list(self._conns.items()):
                want = self._interest(s, conn)
                if registered.get(s) != want:
                    try:
                        if want:
                            try:
                                self._sel.modify(s, want, conn)
                            except KeyError:
                                self._sel.register(s, want, conn)
                        else:
                            self._sel.unregister(s)
                    except (KeyError, ValueError, OSError):
                        pass
                    registered[s] = want
            for s in [s for s in registered if s not in self._conns]:
                registered.pop(s)
            for key, mask in self._sel.select(timeout=0.5):
                if key.data == "listen":
                    self._accept()
                elif key.data == "wake":
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                else:
                    self._io(key.fileobj, key.data, mask)

    def _io(self, s: socket.socket, conn: _Conn, mask: int) -> None:
        if s not in self._conns:
            return
        if mask & selectors.EVENT_READ:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                self._close(conn)  # one side closed: close both, as a TCP middlebox would
                return
            if data and self.mode == "pass":
                peer = conn.peer(s)
                conn.out[peer] += data
                if s is conn.client:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
            # mode "drop": read and forget
        if mask & selectors.EVENT_WRITE and conn.out[s]:
            try:
                n = s.send(conn.out[s])
                del conn.out[s][:n]
            except BlockingIOError:
                pass
            except OSError:
                self._close(conn)
