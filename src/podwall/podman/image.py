"""Build a tiny local image from Debian's busybox-static: no registry needed."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from podwall import proc
from podwall.errors import EnvironmentProblem

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
APPLETS = ("sh", "sleep", "httpd", "nc", "ip", "cat", "echo", "ls", "mkdir", "true")


def _busybox() -> Path:
    for c in BUSYBOX_CANDIDATES:
        p = Path(c)
        if p.is_file():
            return p
    raise EnvironmentProblem("busybox is not installed: apt-get install busybox-static")


def busybox_rootfs_tar() -> bytes:
    """A root filesystem with busybox and a few applet links, as an uncompressed tar."""
    data = _busybox().read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "www"):
            ti = tarfile.TarInfo(d)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(ti)
        ti = tarfile.TarInfo("bin/busybox")
        ti.size = len(data)
        ti.mode = 0o755
        tar.addfile(ti, io.BytesIO(data))
        for a in APPLETS:
            ln = tarfile.TarInfo(f"bin/{a}")
            ln.type = tarfile.SYMTYPE
            ln.linkname = "busybox"
            tar.addfile(ln)
        page = b"podwall\n"
        ti = tarfile.TarInfo("www/index.html")
        ti.size = len(page)
        tar.addfile(ti, io.BytesIO(page))
    return buf.getvalue()


def image_exists(tag: str) -> bool:
    return proc.run(["podman", "image", "exists", tag], check=False).returncode == 0


def ensure_busybox_image(tag: str = "localhost/podwall-box:latest") -> str:
    """Import the busybox image under `tag` unless it exists. Returns the tag."""
    if image_exists(tag):
        return tag
    proc.run(["podman", "import", "--change", "CMD=/bin/sh", "-", tag], input=busybox_rootfs_tar())
    return tag
