"""Host facts and the few host changes podwall may make when asked (br_netfilter).

Same-bridge container traffic reaches the inet forward hook only when br_netfilter is loaded and
`net.bridge.bridge-nf-call-iptables`/`-ip6tables` are 1 (ENVIRONMENT.md). That affects every bridge on the
host, so podwall turns it on only when asked (`doctor --fix`, `apply --enable-br-netfilter`), persists it, and
says what it changed. Paths are taken under `root` so that tests can use a temporary directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from podwall import proc
from podwall.errors import EnvironmentProblem

SYSCTLS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
MODULES_LOAD = Path("/etc/modules-load.d/podwall.conf")
SYSCTL_D = Path("/etc/sysctl.d/90-podwall.conf")
_HEADER = "# written by podwall: same-bridge container traffic must reach nftables\n"
_PERSIST = {
    MODULES_LOAD: _HEADER + "br_netfilter\n",
    SYSCTL_D: _HEADER + "".join(f"{n} = 1\n" for n in SYSCTLS),
}
_SYSCTL_DIRS = ("usr/lib/sysctl.d", "run/sysctl.d", "etc/sysctl.d")
_MODULES_DIRS = ("usr/lib/modules-load.d", "run/modules-load.d", "etc/modules-load.d")


def _under(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def _sysctl_path(name: str, root: Path = Path("/")) -> Path:
    return root / "proc/sys" / name.replace(".", "/")


def read_sysctl(name: str, root: Path = Path("/")) -> str | None:
    try:
        return _sysctl_path(name, root).read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class BrNetfilter:
    loaded: bool  # /proc/sys/net/bridge exists (module loaded or built in)
    iptables: str | None
    ip6tables: str | None
    module_persisted: bool = False  # some modules-load.d file loads br_netfilter at boot
    sysctl_persisted: bool = False  # the sysctl config sets both keys to 1 at boot
    podwall_files: bool = False  # podwall's own two files are in place, as podwall writes them

    @property
    def active(self) -> bool:
        return self.iptables == "1" and self.ip6tables == "1"

    @property
    def persisted(self) -> bool:
        return self.module_persisted and self.sysctl_persisted

    def describe(self) -> str:
        if not self.loaded:
            return "br_netfilter is not loaded"
        return f"bridge-nf-call-iptables={self.iptables}, bridge-nf-call-ip6tables={self.ip6tables}"

    def changes(self) -> list[str]:
        """What enable_br_netfilter() would change, in words, for the user to read first. Pure."""
        out = [] if self.loaded else ["load the br_netfilter kernel module (modprobe br_netfilter)"]
        out += [
            f"set {n} = 1 (now {v or 'unset'}; affects every bridge on this host)"
            for n, v in zip(SYSCTLS, (self.iptables, self.ip6tables), strict=True)
            if v != "1"
        ]
        if not self.podwall_files:
            out.append(f"write {MODULES_LOAD} and {SYSCTL_D} (persist across reboots)")
        return out


def _conf_files(root: Path, dirs: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        try:
            files += sorted((root / d).glob("*.conf"))
        except OSError:
            pass
    return files


def _boot_sysctls(root: Path) -> dict[str, str]:
    """The values sysctl config files set at boot (a later file wins; /etc/sysctl.conf comes last)."""
    found: dict[str, str] = {}
    for f in [*_conf_files(root, _SYSCTL_DIRS), root / "etc/sysctl.conf"]:
        try:
            lines = f.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            m = re.match(r"\s*-?([\w./-]+)\s*=\s*(\S*)", line)
            if m:
                found[m.group(1).replace("/", ".")] = m.group(2)
    return found


def _module_persisted(root: Path) -> bool:
    for f in _conf_files(root, _MODULES_DIRS):
        try:
            if any(ln.split("#")[0].strip() == "br_netfilter" for ln in f.read_text().splitlines()):
                return True
        except OSError:
            continue
    return False


def _podwall_files(root: Path) -> bool:
    try:
        return all(_under(root, p).read_text() == text for p, text in _PERSIST.items())
    except OSError:
        return False


def br_netfilter_status(root: Path = Path("/")) -> BrNetfilter:
    boot = _boot_sysctls(root)
    return BrNetfilter(
        loaded=(root / "proc/sys/net/bridge").is_dir(),
        iptables=read_sysctl(SYSCTLS[0], root),
        ip6tables=read_sysctl(SYSCTLS[1], root),
        module_persisted=_module_persisted(root),
        sysctl_persisted=all(boot.get(n) == "1" for n in SYSCTLS),
        podwall_files=_podwall_files(root),
    )


def enable_br_netfilter(persist: bool = True, root: Path = Path("/")) -> list[str]:
    """Load br_netfilter, set both sysctls to 1 and persist them. Returns what was changed, line by line."""
    changes: list[str] = []
    if not (root / "proc/sys/net/bridge").is_dir():
        proc.run(["modprobe", "br_netfilter"])  # EnvironmentProblem when kmod or the module is missing
        if not (root / "proc/sys/net/bridge").is_dir():
            raise EnvironmentProblem(
                "modprobe br_netfilter succeeded, yet /proc/sys/net/bridge is still missing"
            )
        changes.append("loaded kernel module br_netfilter")
    for name in SYSCTLS:
        if read_sysctl(name, root) != "1":
            try:
                _sysctl_path(name, root).write_text("1\n")
            except OSError as exc:
                raise EnvironmentProblem(f"cannot set {name}=1: {exc.strerror}") from exc
            changes.append(f"set {name}=1 (affects every bridge on this host)")
    if persist:
        for path, text in _PERSIST.items():
            target = _under(root, path)
            try:
                if not target.exists() or target.read_text() != text:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_suffix(".tmp")
                    tmp.write_text(text)
                    os.replace(tmp, target)  # boot never reads a half-written file
                    changes.append(f"wrote {path} (persists across reboots)")
            except OSError as exc:
                raise EnvironmentProblem(f"cannot write {path}: {exc.strerror}") from exc
    return changes


def running_programs(root: Path = Path("/")) -> frozenset[str]:
    """Command names (comm) of the processes this host runs, to spot firewalld or dockerd."""
    names = set()
    for p in (root / "proc").glob("[0-9]*/comm"):
        try:
            names.add(p.read_text().strip())
        except OSError:
            continue  # exited meanwhile
    return frozenset(names)
