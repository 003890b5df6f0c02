"""A loopback TCP proxy the test controls: cut, blackhole or refuse connections on demand."""

from __future__ import annotations

import queue
import selectors
import socket
import struct
import threading
import time

from .ports import free_port

RECV_SIZE = 64 * 1024
# Stop reading a side once this much is waiting for the other side: backpressure
# instead of unbounded memory when one peer is slow.
MAX_PENDING = 1024 * 1024
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0


def _rst_close(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0) so the peer sees an abrupt failure, not a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Half:
    """One direction of a connection: bytes read from src waiting to go to dst."""

    def __init__(self, src: socket.socket, dst: socket.socket):
        self.src, self.dst = src, dst
        self.buf = bytearray()
        self.eof = False       # src sent FIN
        self.shut = False      # FIN propagated to dst


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client, self.upstream = client, upstream
        self.up = _Half(client, upstream)
        self.down = _Half(upstream, client)
        # What the client sent, when the proxy records (record()).
        self.sent: bytearray | None = None

    def socks(self):
        return (self.client, self.upstream)

    def done(self) -> bool:
        return self.up.shut and self.down.shut


class TcpProxy:
    """Forward 127.0.0.1:<self.port> to (target_host, target_port) from a background thread."""

    host = "127.0.0.1"

    def __init__(self, target_host: str, target_port: int, port: int | None = None):
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._accept_times: list[float] = []
        self._blackhole = False
        self._refuse = False
        self._record = False
        self._recorded: list[bytearray] = []
        self._conns: dict[socket.socket, _Conn] = {}
        self._commands: "queue.Queue[tuple]" = queue.Queue()
        self._sel = selectors.DefaultSelector()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, port or free_port()))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        # Self-pipe so commands from the test thread wake the loop immediately.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=f"TcpProxy:{self.port}",
                                        daemon=True)
        self._thread.start()

    # ---- public control (called from the test thread) ------------------
    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._accept_times)

    @property
    def accept_times(self) -> list[float]:
        """time.monotonic() of every accepted connection, refused ones included."""
        with self._lock:
            return list(self._accept_times)

    @property
    def active(self) -> int:
        """Number of currently forwarded connections."""
        return self._call("count")

    def cut(self) -> int:
        """RST every current connection (both sides); keep listening. Returns how many."""
        return self._call("cut")

    def blackhole(self, on: bool = True) -> None:
        """Stop (or resume) moving bytes in both directions without closing anything.

        Nothing is read while on, so the peers' data waits in kernel buffers, as in
        a network partition; resuming delivers it. cut() first to drop it instead.
        """
        self._call("blackhole", bool(on))

    def refuse(self, on: bool = True) -> None:
        """Accept then immediately RST new connections (they still count in .accepted)."""
        self._call("refuse", bool(on))

    def record(self, on: bool = True) -> None:
        """Record (or stop recording) what clients send, per connection accepted from now on."""
        self._call("record", bool(on))

    def client_bytes(self) -> list[bytes]:
        """What each recorded connection's client sent towards the broker, in accept order."""
        return self._call("recorded")

    def set_target(self, host: str, port: int) -> None:
        """Send new connections elsewhere; current ones are left alone."""
        self._call("target", (host, port))

    def wait_accepted(self, n: int, timeout: float = 10.0) -> None:
        """Block until at least n connections have been accepted."""
        deadline = time.monotonic() + timeout
        while self.accepted < n:
            if time.monotonic() >= deadline:
                raise AssertionError(f"proxy accepted {self.accepted} < {n} in {timeout}s")
            time.sleep(0.01)

    def close(self) -> None:
        if not self._running:
            return
        try:
            self._call("stop")
        except (TimeoutError, RuntimeError):
            pass
        self._thread.join(COMMAND_TIMEOUT)
        for s in (self._wake_w,):
            s.close()

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TcpProxy 127.0.0.1:{self.port} -> {self._target[0]}:{self._target[1]}>"

    def _call(self, cmd: str, arg=None):
        if not self._running or not self._thread.is_alive():
            raise RuntimeError("proxy is closed")
        done: "queue.Queue" = queue.Queue(maxsize=1)
        self._commands.put((cmd, arg, done))
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        try:
            return done.get(timeout=COMMAND_TIMEOUT)
        except queue.Empty:
            raise TimeoutError(f"proxy did not process {cmd!r}") from None

    # ---- event loop (background thread only) ---------------------------
    def _loop(self) -> None:
        try:
            while self._running:
                for key, mask in self._sel.select(timeout=0.5):
                    what = key.data
                    if what == "accept":
                        self._accept()
                    elif what == "wake":
                        self._drain_commands()
                    else:
                        self._service(what, key.fileobj, mask)
        finally:
            self._shutdown()

    def _drain_commands(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                cmd, arg, done = self._commands.get_nowait()
            except queue.Empty:
                return
            result = None
            if cmd == "cut":
                conns = self._unique_conns()
                result = len(conns)
                for conn in conns:
                    self._abort(conn)
            elif cmd == "blackhole":
                self._blackhole = arg
                self._update_all()
            elif cmd == "refuse":
                self._refuse = arg
            elif cmd == "target":
                self._target = arg
            elif cmd == "record":
                self._record = arg
            elif cmd == "recorded":
                result = [bytes(b) for b in self._recorded]
            elif cmd == "count":
                result = len(self._unique_conns())
            elif cmd == "stop":
                self._running = False
            done.put(result)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            with self._lock:
                self._accept_times.append(time.monotonic())
            if self._refuse:
                _rst_close(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=CONNECT_TIMEOUT)
            except OSError:
                # Target down: the client sees a reset, like a dead broker behind a LB.
                _rst_close(client)
                continue
            conn = _Conn(client, upstream)
            if self._record:
                conn.sent = bytearray()
                self._recorded.append(conn.sent)
            for s in conn.socks():
                s.setblocking(False)
                # MQTT packets are small; Nagle would add latency the real path lacks.
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._conns[s] = conn
            self._update(conn)

    def _service(self, conn: _Conn, sock: socket.socket, mask: int) -> None:
        if conn.client not in self._conns:
            return  # already torn down earlier in this select round
        try:
            if mask & selectors.EVENT_READ:
                half = conn.up if sock is conn.client else conn.down
                data = sock.recv(RECV_SIZE)
                if data:
                    half.buf += data
                    if half is conn.up and conn.sent is not None:
                        conn.sent += data
                else:
                    half.eof = True
            # Write eagerly whichever way has data: saves a select round per chunk.
            for half in (conn.up, conn.down):
                if half.buf and not self._blackhole:
                    try:
                        n = half.dst.send(half.buf)
                        del half.buf[:n]
                    except (BlockingIOError, InterruptedError):
                        pass
                if half.eof and not half.buf and not half.shut:
                    half.dst.shutdown(socket.SHUT_WR)
                    half.shut = True
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            # A reset on one side is passed on as a reset to the other.
            self._abort(conn)
            return
        if conn.done():
            self._close(conn)
        else:
            self._update(conn)

    def _unique_conns(self) -> list[_Conn]:
        # _conns is keyed by socket, so each connection appears twice.
        return list({id(c): c for c in self._conns.values()}.values())

    def _update_all(self) -> None:
        for conn in self._unique_conns():
            self._update(conn)

    def _update(self, conn: _Conn) -> None:
        for sock, inbound, outbound in ((conn.client, conn.up, conn.down),
                                        (conn.upstream, conn.down, conn.up)):
            events = 0
            if not self._blackhole:
                if not inbound.eof and len(inbound.buf) < MAX_PENDING:
                    events |= selectors.EVENT_READ
                if outbound.buf:
                    events |= selectors.EVENT_WRITE
            self._set_events(sock, events, conn)

    def _set_events(self, sock: socket.socket, events: int, conn: _Conn) -> None:
        # selectors rejects an empty mask, so an idle socket is unregistered instead.
        try:
            registered = self._sel.get_key(sock).events
        except KeyError:
            registered = 0
        if events == registered:
            return
        if not events:
            self._sel.unregister(sock)
        elif registered:
            self._sel.modify(sock, events, conn)
        else:
            self._sel.register(sock, events, conn)

    def _forget(self, conn: _Conn) -> None:
        for s in conn.socks():
            self._conns.pop(s, None)
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass

    def _abort(self, conn: _Conn) -> None:
        self._forget(conn)
        for s in conn.socks():
            _rst_close(s)

    def _close(self, conn: _Conn) -> None:
        self._forget(conn)
        for s in conn.socks():
            s.close()

    def _shutdown(self) -> None:
        for conn in self._unique_conns():
            self._abort(conn)
        for s in (self._listener, self._wake_r):
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        self._sel.close()
        # Fail any command still queued so callers do not wait for the timeout.
        while True:
            try:
                _, _, done = self._commands.get_nowait()
            except queue.Empty:
                break
            done.put(None)
