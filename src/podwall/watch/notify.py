"""sd_notify(3) over the unix datagram socket systemd passes in $NOTIFY_SOCKET (no libsystemd needed)."""

from __future__ import annotations

import os
import socket


def sd_notify(message: str, env: dict[str, str] | None = None) -> bool:
    """Send READY=1, STATUS=…, STOPPING=1; False when not run by systemd (no NOTIFY_SOCKET)."""
    path = (env if env is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not path:
        return False
    addr = "\0" + path[1:] if path.startswith("@") else path  # "@name": an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError:
        return False
    return True
