"""Host facts and the few host changes podwall may make when asked (br_netfilter)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from podwall import proc
from podwall.errors import EnvironmentProblem

SYSCTLS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
MODULES_LOAD = Path("/etc/modules-load.d/podwall.conf")
SYSCTL_D = Path("/etc/sysctl.d/90-podwall.conf")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctl(name: str) -> str | None:
    try:
        return _sysctl_path(name).read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class BrNetfilter:
    loaded: bool  # /proc/sys/net/bridge exists (module loaded or built in)
    iptables: str | None
    ip6tables: str | None

    @property
    def active(self) -> bool:
        return self.iptables == "1" and self.ip6tables == "1"

    def describe(self) -> str:
        if not self.loaded:
            return "br_netfilter is not loaded"
        return f"bridge-nf-call-iptables={self.iptables}, bridge-nf-call-ip6tables={self.ip6tables}"


def br_netfilter_status() -> BrNetfilter:
    return BrNetfilter(
        loaded=Path("/proc/sys/net/bridge").is_dir(),
        iptables=read_sysctl(SYSCTLS[0]),
        ip6tables=read_sysctl(SYSCTLS[1]),
    )


def enable_br_netfilter(persist: bool = True) -> list[str]:
    """Load br_netfilter, set both sysctls to 1 and persist them. Returns what was changed, line by line."""
    changes: list[str] = []
    st = br_netfilter_status()
    if not st.loaded:
        proc.run(["modprobe", "br_netfilter"])
        changes.append("loaded kernel module br_netfilter")
    for name in SYSCTLS:
        if read_sysctl(name) != "1":
            try:
                _sysctl_path(name).write_text("1\n")
            except OSError as exc:
                raise EnvironmentProblem(f"cannot set {name}=1: {exc.strerror}") from exc
            changes.append(f"set {name}=1 (affects every bridge on this host)")
    if persist:
        want_mod = "br_netfilter\n"
        want_sysctl = "".join(f"{n} = 1\n" for n in SYSCTLS)
        for path, text in ((MODULES_LOAD, want_mod), (SYSCTL_D, want_sysctl)):
            try:
                if not path.exists() or path.read_text() != text:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
                    changes.append(f"wrote {path} (persists across reboots)")
            except OSError as exc:
                raise EnvironmentProblem(f"cannot write {path}: {exc.strerror}") from exc
    return changes
