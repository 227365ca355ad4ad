"""A relay on Pebble's HTTP-01 port that holds the CA's validation request.

For the hostile-load scenario a challenge token must stay published while it is measured.
The relay sits where Pebble validates (`httpPort`) and forwards to certkeeper's listener, but
it holds the first validation request until told to go on: meanwhile certkeeper keeps the
token published (it is waiting for the CA), the benchmark learns the token from the request
path, and can hammer that very path. Pebble gives a validation request 15 s, so the hold is
kept shorter than that. When let through, the request goes to certkeeper on a new connection
(as Pebble's own would) and the relay records whether and how fast it was answered.
"""

from __future__ import annotations

import socket
import threading
import time

PREFIX = b"/.well-known/acme-challenge/"


class ChallengeRelay:
    def __init__(self, listen_port: int, target_port: int, hold_timeout: float = 14.0):
        self.target_port = target_port
        self.hold_timeout = hold_timeout
        self.token: str | None = None
        self.seen = threading.Event()
        self.release = threading.Event()
        self.requests = 0
        # What happened to the held validation request once let through: answered (status
        # line and seconds from forwarding to the first response bytes) or dropped.
        self.forwarded: dict | None = None
        self.forwarded_event = threading.Event()
        self.server = socket.create_server(("127.0.0.1", listen_port), reuse_port=False)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    conn.close()
                    return
                head += chunk
            self.requests += 1
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            held = path.startswith(PREFIX) and self.token is None
            if held:
                self.token = path[len(PREFIX):].decode()
                self.seen.set()
                self.release.wait(self.hold_timeout)
            started = time.monotonic()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                upstream.sendall(head)
                first = upstream.recv(65536)
            except OSError as err:
                first, upstream = b"", None
                error = f"{type(err).__name__}: {err}"
            else:
                error = None if first else "connection closed without an answer"
            if held:
                self.forwarded = {
                    "status": first.split(b"\r\n", 1)[0].decode(errors="replace") if first else None,
                    "error": error,
                    "seconds": time.monotonic() - started,
                }
                self.forwarded_event.set()
            if not first or upstream is None:
                conn.close()
                return
            upstream.settimeout(None)
            conn.sendall(first)
        except OSError:
            conn.close()
            return
        threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()
        _pump(conn, upstream)

    def close(self) -> None:
        self.release.set()
        # shutdown() wakes the thread blocked in accept(); close() alone would leave the
        # socket listening until that call returned.
        try:
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.close()
        self._thread.join(5)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
