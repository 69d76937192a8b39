"""Temporary listeners inside a destination namespace, for the length of one verify run.

A UDP port with nothing behind it answers with ICMP port-unreachable, and the kernel rate-limits those per
peer, so in bulk a closed UDP port mostly answers with silence. A listener that echoes the probe turns an
allowed UDP cell into a proven "connected". TCP needs none (a RST already proves reachability) but is
supported for symmetry.

The listener binds 0.0.0.0:PORT and [::]:PORT in a dedicated thread that has entered the namespace. A port
that something else already holds is left alone (`in_use`): a real service answers there. It echoes only
podwall's own probe payload, so it is never a reflector for anything else.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from podwall.probe.engine import UDP_PAYLOAD
from podwall.probe.netns import NamespaceError, NsId, entered, host_netns_ids

PortProto = tuple[int, str]  # (port, "tcp" | "udp")
Bound = tuple[int, str, int]  # (port, proto, family)

_READY_TIMEOUT_S = 5.0


class Listener:
    """`with Listener(netns, [(5353, "udp")]) as lst:` … probes … (stopped and closed on exit)."""

    def __init__(
        self,
        netns: str,
        ports: Iterable[PortProto],
        *,
        families: Iterable[int] = (socket.AF_INET, socket.AF_INET6),
        host_ids: frozenset[NsId] | None = None,
    ):
        self.netns = netns
        self.ports = sorted(set(ports))
        for port, proto in self.ports:
            if proto not in ("tcp", "udp") or not 0 < port < 65536:
                raise ValueError(f"cannot listen on {port}/{proto}")
        self.families = tuple(families)
        self.host_ids = host_ids
        self.bound: list[Bound] = []
        self.in_use: list[Bound] = []  # something already listens there
        self.unavailable: list[Bound] = []  # e.g. IPv6 disabled in that namespace
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._serve_error: BaseException | None = None
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("listener already started")
        host_ids = self.host_ids if self.host_ids is not None else host_netns_ids()
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(
            target=self._run, args=(host_ids,), name=f"podwall-listen:{self.netns}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(_READY_TIMEOUT_S):
            self.stop()
            raise NamespaceError(f"listener in {self.netns} did not come up within {_READY_TIMEOUT_S:.0f}s")
        if self._start_error is not None:
            self.stop()
            raise self._start_error
        return self

    def stop(self) -> None:
        """Stop the thread and close every socket; re-raise a failure that happened while serving."""
        if self._thread is None:
            return
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass  # pipe full: the thread is already being told to stop
        self._thread.join()
        self._thread = None
        os.close(self._stop_r)
        os.close(self._stop_w)
        if self._serve_error is not None:
            err, self._serve_error = self._serve_error, None
            raise err

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the thread -----------------------------------------------------------------------------------------

    def _run(self, host_ids: frozenset[NsId]) -> None:
        socks: dict[int, tuple[socket.socket, str]] = {}
        try:
            with entered(self.netns, host_ids):
                for port, proto in self.ports:
                    for family in self.families:
                        sock = self._bind(port, proto, family)
                        if sock is not None:
                            socks[sock.fileno()] = (sock, proto)
                self._ready.set()
                self._serve(socks)
        except BaseException as exc:  # noqa: BLE001  raised by start() (before ready) or stop() (while serving)
            if self._ready.is_set():
                self._serve_error = exc
            else:
                self._start_error = exc
        finally:
            for sock, _ in socks.values():
                sock.close()
            self._ready.set()

    def _bind(self, port: int, proto: str, family: int) -> socket.socket | None:
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        try:
            sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
                self.unavailable.append((port, proto, family))
                return None
            raise
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # the IPv4 socket has 0.0.0.0
            if proto == "tcp":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
            if proto == "tcp":
                sock.listen(512)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                self.in_use.append((port, proto, family))
                return None
            if exc.errno == errno.EADDRNOTAVAIL:
                self.unavailable.append((port, proto, family))
                return None
            raise
        self.bound.append((port, proto, family))
        return sock

    def _serve(self, socks: dict[int, tuple[socket.socket, str]]) -> None:
        poller = select.poll()
        poller.register(self._stop_r, select.POLLIN)
        for fd in socks:
            poller.register(fd, select.POLLIN)
        while True:
            for fd, _ev in poller.poll():
                if fd == self._stop_r:
                    return
                sock, proto = socks[fd]
                if proto == "udp":
                    _echo(sock)
                else:
                    _accept_and_close(sock)


def _echo(sock: socket.socket) -> None:
    while True:
        try:
            data, peer = sock.recvfrom(512)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # a queued ICMP error for an earlier reply; nothing to do with it
        if data == UDP_PAYLOAD:
            try:
                sock.sendto(data, peer)
            except OSError:
                pass  # the reply path is blocked or full: the prober sees silence, which is the truth


def _accept_and_close(sock: socket.socket) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # e.g. ECONNABORTED: the prober already gave up
        conn.close()
