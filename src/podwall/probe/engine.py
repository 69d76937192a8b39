"""Bounded, parallel connection attempts from inside network namespaces.

One worker thread per source namespace enters it (see netns.py), creates every socket for that namespace
there (a socket stays in the namespace it was created in), starts non-blocking connects, and waits on all
of them together with poll() until each one completes or reaches its own deadline.

Classification (SPEC §6): connected or refused means the packet got through (ALLOW); EHOSTUNREACH, EACCES,
EPERM, ENETUNREACH or silence until the deadline means it did not (BLOCK). Anything else is an error and gets
no verdict at all: a probe that could not be made must never pass for a blocked cell.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import os
import resource
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from podwall.cells import Probe, ProbeResult, Verdict
from podwall.errors import EnvironmentProblem
from podwall.probe.netns import NamespaceError, entered, host_netns_ids

DEFAULT_TIMEOUT_MS = 300
MAX_THREADS = 64  # namespaces probed at once; more wait for a free slot
UDP_PAYLOAD = b"podwall-probe\n"  # listeners echo exactly this, nothing else (no reflector)

_ERRNO_RESULTS: dict[int, tuple[Verdict, str]] = {
    errno.ECONNREFUSED: (Verdict.ALLOW, "refused"),
    errno.EHOSTUNREACH: (Verdict.BLOCK, "unreachable"),
    errno.EACCES: (Verdict.BLOCK, "denied"),
    errno.EPERM: (Verdict.BLOCK, "denied"),
    errno.ENETUNREACH: (Verdict.BLOCK, "network unreachable"),
    errno.ETIMEDOUT: (Verdict.BLOCK, "timeout"),
}

IP_RECVERR = 11  # <linux/in.h>; not exported by the socket module
IPV6_RECVERR = 25  # <linux/in6.h>

_POLL_DONE = select.POLLOUT | select.POLLIN | select.POLLERR | select.POLLHUP


class ProbeError(EnvironmentProblem):
    """The prober itself failed (not a probe outcome)."""


def classify_errno(err: int) -> ProbeResult:
    """What a socket error says about the path: see the module docstring."""
    if err == 0:
        return ProbeResult(Verdict.ALLOW, "connected")
    if err in _ERRNO_RESULTS:
        verdict, detail = _ERRNO_RESULTS[err]
        return ProbeResult(verdict, detail)
    return ProbeResult(None, f"error: {errno.errorcode.get(err, str(err))} ({os.strerror(err)})")


def probe_all(
    probes: Sequence[Probe],
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    allow_retry: Callable[[Probe], bool] | None = None,
) -> list[ProbeResult]:
    """Probe every entry, in parallel, and return results in the same order.

    `timeout_ms` bounds each attempt. A probe that times out is retried once (with a fresh deadline) when
    `allow_retry(probe)` is true: give it the cells that are expected to be allowed, so that one lost SYN does
    not report a false block.
    """
    if timeout_ms <= 0:
        raise ValueError("timeout_ms must be positive")
    results: list[ProbeResult | None] = [None] * len(probes)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(probes):
        groups.setdefault(p.netns, []).append(i)
    if not groups:
        return []

    host_ids = host_netns_ids()  # read here, in the caller's thread, before any worker moves
    nthreads = min(len(groups), MAX_THREADS)
    window = _window_per_thread(nthreads)
    slots = threading.BoundedSemaphore(nthreads)
    failures: list[BaseException] = []
    threads: list[threading.Thread] = []

    def worker(path: str, indices: list[int]) -> None:
        try:
            try:
                with entered(path, host_ids):
                    _NamespaceProber(probes, indices, results, timeout_ms, allow_retry, window).run()
            except NamespaceError as exc:
                for i in indices:
                    if results[i] is None:
                        results[i] = ProbeResult(None, f"error: {exc}")
        except BaseException as exc:  # noqa: BLE001  a bug, not a network outcome: re-raised in the caller
            failures.append(exc)
        finally:
            slots.release()

    for path, indices in groups.items():
        slots.acquire()
        t = threading.Thread(target=worker, args=(path, indices), name=f"podwall-probe:{path}", daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    if failures:
        if isinstance(failures[0], OSError):  # e.g. EMFILE: the host, not the path, failed
            raise ProbeError(f"probing failed: {failures[0]}") from failures[0]
        raise failures[0]
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:  # would mean a worker bug; never hand back a silent gap
        raise RuntimeError(f"probe engine lost {len(missing)} results")
    return [r for r in results if r is not None]


def _window_per_thread(nthreads: int) -> int:
    """Sockets in flight per namespace, so that all threads together stay well inside RLIMIT_NOFILE."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    budget = max(64, min(8192, (soft - 256) // 2))
    return max(8, min(1024, budget // max(1, nthreads)))


@dataclass(order=True)
class _Attempt:
    deadline: int  # monotonic ns; first so that the heap orders by it
    seq: int
    index: int = field(compare=False)
    sock: socket.socket = field(compare=False)
    first_start: int = field(compare=False)
    attempt: int = field(compare=False)
    done: bool = field(default=False, compare=False)


class _NamespaceProber:
    """All probes of one namespace, run from the thread that is inside it."""

    def __init__(
        self,
        probes: Sequence[Probe],
        indices: list[int],
        results: list[ProbeResult | None],
        timeout_ms: int,
        allow_retry: Callable[[Probe], bool] | None,
        window: int,
    ):
        self.probes = probes
        self.results = results
        self.timeout_ns = timeout_ms * 1_000_000
        self.allow_retry = allow_retry
        self.window = window
        # (index, attempt number, first start time or 0)
        self.pending: deque[tuple[int, int, int]] = deque((i, 1, 0) for i in indices)
        self.inflight: dict[int, _Attempt] = {}
        self.deadlines: list[_Attempt] = []
        self.poller = select.poll()
        self.scopes: dict[str, int] = {}
        self.seq = 0

    def run(self) -> None:
        try:
            while self.pending or self.inflight:
                while self.pending and len(self.inflight) < self.window:
                    self._start(*self.pending.popleft())
                if not self.inflight:
                    continue
                wait_ms = max(0, -(-(self.deadlines[0].deadline - time.monotonic_ns()) // 1_000_000))
                for fd, ev in self.poller.poll(wait_ms):
                    att = self.inflight.get(fd)
                    if att is not None and ev & _POLL_DONE:
                        self._complete(att, ev)
                self._expire()
        finally:
            for att in self.inflight.values():
                att.sock.close()

    # -- one attempt ----------------------------------------------------------------------------------------

    def _start(self, index: int, attempt: int, first_start: int) -> None:
        probe = self.probes[index]
        now = time.monotonic_ns()
        first_start = first_start or now
        try:
            family, sockaddr = self._sockaddr(probe)
        except _ProbeSetupError as exc:
            self.results[index] = ProbeResult(None, f"error: {exc}")
            return
        kind = socket.SOCK_DGRAM if probe.proto == "udp" else socket.SOCK_STREAM
        try:
            sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        except OSError as exc:  # e.g. IPv6 disabled in this namespace: this probe cannot be made
            self.results[index] = ProbeResult(None, f"error: cannot create socket: {exc.strerror}")
            return
        if kind == socket.SOCK_STREAM:
            # Measured on kernel 6.18: without IPV6_RECVERR a TCP SYN answered by ICMPv6 admin-prohibited is
            # only a soft error, and connect() just times out. With it, the error reaches the socket at once.
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        att = _Attempt(now + self.timeout_ns, self._next_seq(), index, sock, first_start, attempt)
        err = sock.connect_ex(sockaddr)
        if probe.proto == "udp" and err == 0:
            try:
                sock.send(UDP_PAYLOAD)
            except OSError as exc:
                err = exc.errno or errno.EIO
            else:
                err = errno.EINPROGRESS  # now wait for a reply, an ICMP error, or silence
        if err != errno.EINPROGRESS:
            self._finish(att, classify_errno(err))
            return
        self.inflight[sock.fileno()] = att
        self.poller.register(sock.fileno(), select.POLLIN if probe.proto == "udp" else select.POLLOUT)
        heapq.heappush(self.deadlines, att)

    def _sockaddr(
        self, probe: Probe
    ) -> tuple[socket.AddressFamily, tuple[str, int] | tuple[str, int, int, int]]:
        if probe.proto not in ("tcp", "udp"):
            raise _ProbeSetupError(f"cannot probe protocol {probe.proto!r}")
        try:
            addr = ipaddress.ip_address(probe.address)
        except ValueError as exc:
            raise _ProbeSetupError(f"bad address {probe.address!r}") from exc
        if addr.version == 4:
            return socket.AF_INET, (str(addr), probe.port)
        scope = 0
        if addr.is_link_local:
            if not probe.interface:
                raise _ProbeSetupError(f"link-local {addr} needs an interface (scope)")
            scope = self._scope(probe.interface)
        return socket.AF_INET6, (str(addr), probe.port, 0, scope)

    def _scope(self, interface: str) -> int:
        # Interface indexes are per namespace: this runs in the worker thread, inside the source namespace.
        if interface not in self.scopes:
            try:
                self.scopes[interface] = socket.if_nametoindex(interface)
            except OSError as exc:
                raise _ProbeSetupError(f"no interface {interface!r} in the source namespace") from exc
        return self.scopes[interface]

    def _complete(self, att: _Attempt, events: int) -> None:
        if self.probes[att.index].proto == "udp":
            try:
                att.sock.recv(512)
                err = 0  # a reply: something answered from the other side
            except BlockingIOError:
                return  # spurious wake-up; keep waiting
            except OSError as exc:
                err = exc.errno or errno.EIO
        else:
            err = att.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0 and not events & select.POLLOUT:
                err = _queued_error(att.sock)
                if err == 0:
                    return  # nothing to read after all; keep waiting for the deadline
        self._finish(att, classify_errno(err))

    def _expire(self) -> None:
        now = time.monotonic_ns()
        while self.deadlines and (self.deadlines[0].done or self.deadlines[0].deadline <= now):
            att = heapq.heappop(self.deadlines)
            if att.done:
                continue
            probe = self.probes[att.index]
            if att.attempt == 1 and self.allow_retry is not None and self.allow_retry(probe):
                self._drop(att)
                self.pending.appendleft((att.index, 2, att.first_start))
                continue
            # UDP silence is not proof: no reply may also mean nobody answered. Say so.
            detail = "inferred" if probe.proto == "udp" else "timeout"
            self._finish(att, ProbeResult(Verdict.BLOCK, detail))

    def _finish(self, att: _Attempt, res: ProbeResult) -> None:
        self._drop(att)
        elapsed = (time.monotonic_ns() - att.first_start) / 1e6
        self.results[att.index] = ProbeResult(res.verdict, res.detail, round(elapsed, 3), att.attempt)

    def _drop(self, att: _Attempt) -> None:
        att.done = True
        fd = att.sock.fileno()
        if self.inflight.pop(fd, None) is not None:
            self.poller.unregister(fd)
        att.sock.close()

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq


def _queued_error(sock: socket.socket) -> int:
    """errno of the first ICMP error queued on the socket (IP_RECVERR), 0 if none."""
    try:
        _data, ancillary, _flags, _addr = sock.recvmsg(0, 512, socket.MSG_ERRQUEUE)
    except OSError:
        return 0
    for _level, _type, payload in ancillary:
        if len(payload) >= 4:  # struct sock_extended_err starts with __u32 ee_errno
            return int.from_bytes(payload[:4], "little" if sys.byteorder == "little" else "big")
    return 0


class _ProbeSetupError(Exception):
    """The probe cannot even be attempted (bad address, missing scope interface)."""
