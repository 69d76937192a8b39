"""doctor's pure checks (hand-written Facts) and podwall.host's br_netfilter logic (in a temporary root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podwall.doctor import (
    CONTAINERS_CONF_FIX,
    Facts,
    RunQuirk,
    RunResult,
    Status,
    classify_run_failure,
    exit_code,
    firewall_driver,
    run_checks,
)
from podwall.host import BrNetfilter, br_netfilter_status, enable_br_netfilter, running_programs

BR_ON = BrNetfilter(True, "1", "1", module_persisted=True, sysctl_persisted=True, podwall_files=True)
GOOD = Facts(
    podman_version="4.3.1",
    network_backend="netavark",
    netavark_version="1.4.0",
    nft_version="1.0.6",
    nft_tables=("ip filter", "ip nat"),
    netavark_iptables_chains=True,
    br=BR_ON,
    run=RunResult(ok=True),
)

RUNC_RLIMIT = (
    "Error: runc: runc create failed: unable to start container process: error during container init: error "
    "setting rlimits for ready process: error setting rlimit type 7: operation not permitted: "
    "OCI permission denied"
)
CRUN_HYBRID = (
    "Error: crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2: OCI runtime error"
)
CRUN_RLIMIT = "Error: crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted: OCI permission denied"


def by_id(facts: Facts) -> dict[str, list]:  # type: ignore[type-arg]
    out: dict[str, list] = {}  # type: ignore[type-arg]
    for c in run_checks(facts):
        out.setdefault(c.id, []).append(c)
    return out


def test_healthy_host_exits_0() -> None:
    checks = run_checks(GOOD)
    assert {c.status for c in checks} == {Status.OK}
    assert exit_code(checks) == 0


@pytest.mark.parametrize(
    ("stderr", "quirk"),
    [
        (RUNC_RLIMIT, RunQuirk.RLIMIT_NOFILE),
        (CRUN_RLIMIT, RunQuirk.RLIMIT_NOFILE),
        (CRUN_HYBRID, RunQuirk.CRUN_HYBRID_CGROUPS),
        ("Error: image not known", None),
    ],
)
def test_run_quirks_are_recognised(stderr: str, quirk: RunQuirk | None) -> None:
    assert classify_run_failure(stderr) is quirk


def test_run_quirk_is_explained_with_the_dropin_never_applied() -> None:
    facts = Facts(**{**GOOD.__dict__, "run": RunResult(ok=False, error=RUNC_RLIMIT, ok_with_fix=True)})
    (c,) = by_id(facts)["podman-run"]
    assert c.status is Status.FAIL and not c.auto_fix
    assert "open-files limit" in c.detail and "the container starts" in c.detail
    assert c.fix and "/etc/containers/containers.conf.d/" in c.fix and CONTAINERS_CONF_FIX in c.fix
    assert exit_code(run_checks(facts)) == 1
    hybrid = Facts(**{**GOOD.__dict__, "run": RunResult(ok=False, error=CRUN_HYBRID, ok_with_fix=False)})
    (c,) = by_id(hybrid)["podman-run"]
    assert "hybrid" in c.detail and "still fails" in c.detail


def test_unknown_run_failure_shows_the_error() -> None:
    facts = Facts(**{**GOOD.__dict__, "run": RunResult(ok=False, error="Error: something new\n")})
    (c,) = by_id(facts)["podman-run"]
    assert c.status is Status.FAIL and "something new" in c.detail and c.fix is None


def test_missing_podman_cannot_be_checked() -> None:
    facts = Facts(nft_version="1.0.6", br=BR_ON, podman_error="podman is not installed (or not on PATH)")
    checks = by_id(facts)
    assert checks["podman"][0].status is Status.UNKNOWN and "not installed" in checks["podman"][0].detail
    assert checks["podman-run"][0].status is Status.UNKNOWN
    assert exit_code(run_checks(facts)) == 3


def test_cni_backend_fails() -> None:
    facts = Facts(**{**GOOD.__dict__, "network_backend": "cni"})
    assert by_id(facts)["network-backend"][0].status is Status.FAIL


@pytest.mark.parametrize(
    ("tables", "chains", "netavark", "driver"),
    [
        (("inet netavark",), False, "1.14.0", "nftables"),
        (("ip filter",), True, "1.4.0", "iptables"),
        ((), False, "1.4.0", "iptables"),  # too old for nftables
        ((), False, "1.14.0", None),  # nothing loaded yet
        (("inet netavark", "ip filter"), True, "1.4.0", None),  # both: stale table
    ],
)
def test_firewall_driver(tables: tuple[str, ...], chains: bool, netavark: str, driver: str | None) -> None:
    f = Facts(nft_tables=tables, netavark_iptables_chains=chains, netavark_version=netavark)
    assert firewall_driver(f)[0] == driver


def test_two_netavark_drivers_warn() -> None:
    facts = Facts(**{**GOOD.__dict__, "nft_tables": ("inet netavark", "ip filter")})
    (c,) = by_id(facts)["firewall-driver"]
    assert c.status is Status.WARN and "nft delete table inet netavark" in (c.fix or "")


def test_interference_is_reported() -> None:
    facts = Facts(
        **{
            **GOOD.__dict__,
            "forward_drop_chains": ("ip filter FORWARD",),
            "programs": frozenset({"firewalld", "dockerd", "bash"}),
            "rootless": True,
        }
    )
    checks = by_id(facts)
    assert "ip filter FORWARD" in checks["forward-drop"][0].detail
    assert checks["firewalld"][0].status is Status.WARN
    assert checks["docker"][0].status is Status.WARN
    assert checks["rootless"][0].status is Status.WARN
    assert exit_code(run_checks(facts)) == 1


def test_br_netfilter_states() -> None:
    off = Facts(**{**GOOD.__dict__, "br": BrNetfilter(True, "0", "1")})
    (c,) = by_id(off)["br-netfilter"]
    assert c.status is Status.FAIL and c.auto_fix and "doctor --fix" in (c.fix or "")
    unloaded = Facts(**{**GOOD.__dict__, "br": BrNetfilter(False, None, None)})
    assert "not loaded" in by_id(unloaded)["br-netfilter"][0].detail
    volatile = Facts(**{**GOOD.__dict__, "br": BrNetfilter(True, "1", "1")})
    (c,) = by_id(volatile)["br-netfilter"]
    assert c.status is Status.INFO and "not persisted" in c.detail
    assert exit_code(run_checks(volatile)) == 0  # working now: not a problem


# --- podwall.host in a fake root -------------------------------------------------------------------------


def fake_root(tmp_path: Path, *, loaded: bool = True, values: tuple[str, str] = ("0", "0")) -> Path:
    if loaded:
        d = tmp_path / "proc/sys/net/bridge"
        d.mkdir(parents=True)
        (d / "bridge-nf-call-iptables").write_text(values[0] + "\n")
        (d / "bridge-nf-call-ip6tables").write_text(values[1] + "\n")
    return tmp_path


def test_enable_sets_and_persists_then_is_idempotent(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    before = br_netfilter_status(root)
    assert before.loaded and not before.active and not before.persisted
    planned = before.changes()
    assert len(planned) == 3 and "bridge-nf-call-iptables = 1" in planned[0]
    done = enable_br_netfilter(root=root)
    assert len(done) == 4  # two sysctls, two files
    after = br_netfilter_status(root)
    assert after.active and after.persisted and after.podwall_files and after.changes() == []
    assert "br_netfilter" in (root / "etc/modules-load.d/podwall.conf").read_text()
    assert "net.bridge.bridge-nf-call-ip6tables = 1" in (root / "etc/sysctl.d/90-podwall.conf").read_text()
    assert enable_br_netfilter(root=root) == []


def test_persistence_elsewhere_is_recognised(tmp_path: Path) -> None:
    root = fake_root(tmp_path, values=("1", "1"))
    (root / "etc/sysctl.d").mkdir(parents=True)
    (root / "etc/sysctl.d/10-bridge.conf").write_text(
        "# comment = 0\nnet.bridge.bridge-nf-call-iptables=1\nnet/bridge/bridge-nf-call-ip6tables = 1\n"
    )
    (root / "usr/lib/modules-load.d").mkdir(parents=True)
    (root / "usr/lib/modules-load.d/x.conf").write_text("overlay\nbr_netfilter  # for k8s\n")
    st = br_netfilter_status(root)
    assert st.persisted and not st.podwall_files
    (root / "etc/sysctl.conf").write_text("net.bridge.bridge-nf-call-iptables = 0\n")  # applied last: wins
    assert not br_netfilter_status(root).sysctl_persisted


def test_unloaded_module_needs_modprobe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_root(tmp_path, loaded=False)
    st = br_netfilter_status(root)
    assert not st.loaded and st.changes()[0].startswith("load the br_netfilter")
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **_: object) -> None:
        calls.append(list(argv))
        fake_root(tmp_path)  # the module appears

    monkeypatch.setattr("podwall.host.proc.run", fake_run)
    done = enable_br_netfilter(root=root)
    assert calls == [["modprobe", "br_netfilter"]] and done[0] == "loaded kernel module br_netfilter"
    assert br_netfilter_status(root).active


def test_running_programs(tmp_path: Path) -> None:
    for pid, comm in ((1, "init"), (42, "firewalld")):
        (tmp_path / f"proc/{pid}").mkdir(parents=True)
        (tmp_path / f"proc/{pid}/comm").write_text(comm + "\n")
    assert running_programs(tmp_path) == {"init", "firewalld"}
