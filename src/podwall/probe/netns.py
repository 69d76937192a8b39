"""Entering a network namespace from one thread.

A network namespace belongs to a thread, not to the process, so podwall enters a container's namespace in a
dedicated worker thread (Python 3.11 has no os.setns, hence ctypes). That thread is never a pool thread: it
runs one job and dies, and it also tries to go back to its original namespace first, so nothing else ever
runs in a foreign namespace by accident.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, TypeVar

from podwall.errors import EnvironmentProblem

CLONE_NEWNET = 0x40000000

T = TypeVar("T")

_libc: ctypes.CDLL | None = None


class NamespaceError(EnvironmentProblem):
    """A source or destination namespace cannot be entered (gone, not a netns, or the host's own)."""


class HostNamespaceError(NamespaceError):
    """The path names the host's own namespace: a probe from there would prove nothing about a container."""


@dataclass(frozen=True)
class NsId:
    dev: int
    ino: int

    @classmethod
    def of_stat(cls, st: os.stat_result) -> NsId:
        return cls(st.st_dev, st.st_ino)


def _setns_fn() -> Callable[[int, int], int]:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fn = _libc.setns
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """Move the calling thread into the namespace `fd` refers to."""
    if _setns_fn()(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def current_netns() -> NsId:
    """The namespace of the calling thread (not of the process: /proc/self would name the main thread's)."""
    return NsId.of_stat(os.stat("/proc/thread-self/ns/net"))


def host_netns_ids() -> frozenset[NsId]:
    """Namespaces that count as "the host": the caller's own, and init's when we can see it.

    Read these in the caller's thread, before any worker moves.
    """
    ids = {current_netns()}
    try:
        ids.add(NsId.of_stat(os.stat("/proc/1/ns/net")))
    except OSError:
        pass  # hidepid or another pid namespace: the caller's own namespace is still refused
    return frozenset(ids)


def open_netns(path: str, host_ids: frozenset[NsId]) -> int:
    """Open a namespace file and refuse the host's own namespace.

    The check runs on the opened descriptor, the very object setns will use: a pid reused by a host process
    between `podman inspect` and now is caught here.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NamespaceError(f"cannot open network namespace {path}: {exc.strerror}") from exc
    try:
        if NsId.of_stat(os.fstat(fd)) in host_ids:
            raise HostNamespaceError(
                f"{path} is the host's own network namespace (container gone and pid reused?): not probing from it"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def run_in_netns(path: str, job: Callable[[], T], host_ids: frozenset[NsId] | None = None) -> T:
    """Run `job` in a fresh thread that has entered `path`; return its result or raise its exception."""
    ids = host_ids if host_ids is not None else host_netns_ids()
    box: dict[str, object] = {}

    def target() -> None:
        try:
            with entered(path, ids):
                box["value"] = job()
        except BaseException as exc:  # noqa: BLE001  handed to the caller, re-raised there
            box["error"] = exc

    t = threading.Thread(target=target, name=f"podwall-netns:{path}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


class entered:
    """Context manager: the calling thread is inside `path` for the duration of the block.

    Use it only in a thread created for that purpose. On exit it switches back to the thread's original
    namespace; if that fails the thread must die (the caller's thread function simply returns).
    """

    def __init__(self, path: str, host_ids: frozenset[NsId]):
        self.path = path
        self.host_ids = host_ids
        self._home = -1

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            # The main thread outlives the job: never let it wander into a container's namespace.
            raise NamespaceError("refusing to setns in the main thread")
        fd = open_netns(self.path, self.host_ids)
        try:
            self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(fd)
            except OSError as exc:
                os.close(self._home)
                self._home = -1
                what = "not a network namespace" if exc.errno == errno.EINVAL else exc.strerror
                raise NamespaceError(f"cannot enter network namespace {self.path}: {what}") from exc
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._home < 0:
            return
        try:
            setns(self._home)
        except OSError:
            # Still foreign: the thread function returns right after this, so the thread dies with it.
            pass
        finally:
            os.close(self._home)
            self._home = -1
