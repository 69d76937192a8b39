"""Event sources: the events file followed with inotify, and `podman events --format json`.

Podman's `file` event logger appends one JSON line per event, and `podman events` itself polls that file
about every 250 ms (SPEC §5), so the file, followed with inotify, is the fast path. `podman events` is kept
as well: it is the only source with the journald logger, and it is where a reconnect is noticed. Both feed
one queue; the daemon drops the second copy of each event (Event.key).
"""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from podwall import proc
from podwall.watch.events import Event, parse_event

DEFAULT_EVENTS_FILE = Path("/run/libpod/events/events.log")  # rootful default (engine tmp_dir/events)

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
PR_SET_PDEATHSIG = 1
TAIL_CHECK = 512  # bytes before the offset compared on each read (several events: their timestamps differ)


@dataclass(frozen=True)
class Received:
    event: Event
    source: str  # "file" | "podman-events"
    at: float  # wall clock when it reached the daemon


@dataclass(frozen=True)
class StreamEnded:
    """`podman events` ended (Podman restarted, logger rotated…): resync, since events may be lost."""

    reason: str


Item = Received | StreamEnded


class _Inotify:
    """The three inotify calls through ctypes: no new dependency."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd = int(fd)

    def watch(self, path: Path, mask: int) -> None:
        if self.libc.inotify_add_watch(self.fd, os.fsencode(path), mask) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")

    def drain(self) -> None:
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)


class EventsFileTail(threading.Thread):
    """Follows the events file from its current end; survives truncation, rotation and re-creation.

    inotify watches the directory (so a rotated or re-created file is seen too); a 1 s timeout re-checks
    the file anyway, so a missed notification costs at most a second, never an event.
    """

    def __init__(self, path: Path, out: queue.Queue[Item], stop: threading.Event) -> None:
        super().__init__(name="events-file", daemon=True)
        self.path = path
        self.out = out
        self.stop_flag = stop
        self.offset = 0
        self.inode: int | None = None
        self.buf = b""
        self.seen_tail = b""  # the last bytes before `offset`, to notice a file rewritten in place
        self.inotify_ok = False
        try:  # start at the end: what happened before is covered by the initial full apply
            st = path.stat()
            self.offset, self.inode = st.st_size, st.st_ino
            with open(path, "rb") as fh:
                fh.seek(max(0, self.offset - TAIL_CHECK))
                self.seen_tail = fh.read(self.offset - fh.tell())
        except OSError:
            pass

    def _read_new(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if st.st_ino != self.inode or st.st_size < self.offset:  # rotated or truncated: read it all
            self.inode, self.offset, self.buf, self.seen_tail = st.st_ino, 0, b"", b""
        if st.st_size == self.offset and not self.seen_tail:
            return
        with open(self.path, "rb") as fh:
            # The bytes just before our offset must still be the ones we read: otherwise the file was
            # rewritten in place (truncated and refilled to at least the same size) and is read again.
            back = min(len(self.seen_tail), self.offset)
            fh.seek(self.offset - back)
            data = fh.read()
            if data[:back] != self.seen_tail[-back:] if back else False:
                fh.seek(0)
                data, back, self.offset, self.buf, self.seen_tail = fh.read(), 0, 0, b"", b""
        data = data[back:]
        if not data:
            return
        self.offset += len(data)
        self.seen_tail = (self.seen_tail + data)[-TAIL_CHECK:]
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        now = time.time()
        for line in lines:
            ev = parse_event(line) if line.strip() else None
            if ev is not None:
                self.out.put(Received(ev, "file", now))

    def run(self) -> None:
        ino: _Inotify | None = None
        try:
            ino = _Inotify()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            ino.watch(
                self.path.parent,
                IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM,
            )
            self.inotify_ok = True
        except OSError:
            ino = None  # no inotify: fall back to a fast poll of the file
        poller = select.poll()
        if ino is not None:
            poller.register(ino.fd, select.POLLIN)
        try:
            while not self.stop_flag.is_set():
                if ino is not None:
                    if poller.poll(1000):
                        ino.drain()
                else:
                    time.sleep(0.02)
                self._read_new()
        finally:
            if ino is not None:
                ino.close()


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the daemon dies, even by kill -9 (no orphaned `podman events`)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class PodmanEventStream(threading.Thread):
    """`podman events --format json`, restarted with a backoff whenever it ends."""

    def __init__(self, out: queue.Queue[Item], stop: threading.Event, podman: str = "podman") -> None:
        super().__init__(name="podman-events", daemon=True)
        self.out = out
        self.stop_flag = stop
        self.podman = podman
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def run(self) -> None:
        backoff = 0.2
        while not self.stop_flag.is_set():
            exe = proc.which(self.podman)
            started = time.monotonic()
            if exe is None:
                reason = f"{self.podman} not found"
            else:
                reason = self._follow(exe)
            if self.stop_flag.is_set():
                break
            self.restarts += 1
            self.out.put(StreamEnded(reason))
            backoff = 0.2 if time.monotonic() - started > 10 else min(backoff * 2, 5.0)
            self.stop_flag.wait(backoff)

    def _follow(self, exe: str) -> str:
        # The child is started from this long-lived thread: PDEATHSIG fires when the forking thread exits.
        child = subprocess.Popen(  # noqa: S603 - argument list, no shell
            [exe, "events", "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        self.child = child
        assert child.stdout is not None
        try:
            for line in child.stdout:
                ev = parse_event(line)
                if ev is not None:
                    self.out.put(Received(ev, "podman-events", time.time()))
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
        err = (child.stderr.read().decode(errors="replace").strip() if child.stderr else "")[:300]
        return f"podman events exited with {child.returncode}" + (f": {err}" if err else "")

    def close(self) -> None:
        child = self.child
        if child is not None and child.poll() is None:
            try:
                child.kill()
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise
