"""`podwall doctor` on this very machine: what it says must match what the machine does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from podwall.doctor import classify_run_failure

pytestmark = pytest.mark.e2e


def doctor(env: dict[str, str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    cp = subprocess.run(
        [sys.executable, "-m", "podwall", "doctor", "--format", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert cp.returncode in (0, 1, 3), cp.stderr
    report = json.loads(cp.stdout)
    assert report["rc"] == cp.returncode
    return cp.returncode, report


def checks(report: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["id"]: c for c in report["checks"]}


def test_doctor_reports_this_host(e2e_env: dict[str, str], test_image: str) -> None:
    rc, report = doctor(e2e_env)
    c = checks(report)
    version = json.loads(
        subprocess.run(
            ["podman", "version", "--format", "json"], capture_output=True, text=True, check=True
        ).stdout
    )["Client"]["Version"]
    assert c["podman"]["status"] == "ok" and version in c["podman"]["detail"]
    assert c["network-backend"]["status"] == "ok" and "netavark" in c["network-backend"]["detail"]
    nft = subprocess.run(["nft", "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
    assert nft.lstrip("v") in c["nft"]["detail"]
    # the test environment carries the containers.conf fix: a container must start
    assert c["podman-run"]["status"] == "ok", c["podman-run"]
    assert c["rootless"]["status"] == "ok"
    br = open("/proc/sys/net/bridge/bridge-nf-call-iptables").read().strip()
    assert c["br-netfilter"]["status"] in (("ok", "info") if br == "1" else ("fail",))
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    if "inet netavark" in tables:
        assert "inet netavark" in c["firewall-driver"]["detail"]
    bad = {s["status"] for s in report["checks"]} & {"warn", "fail"}
    assert rc == (1 if bad else 0)
    # nothing left behind
    ps = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True
    ).stdout
    assert "podwall-doctor-" not in ps


def test_doctor_explains_podman_run_without_the_fix(e2e_env: dict[str, str], test_image: str) -> None:
    """Without CONTAINERS_CONF this sandbox hits the rlimit quirk; a real host does not. Either way doctor
    must agree with what `podman run` really does."""
    env = {k: v for k, v in e2e_env.items() if k != "CONTAINERS_CONF"}
    raw = subprocess.run(
        ["podman", "run", "--rm", "--network", "none", test_image, "true"],
        capture_output=True,
        text=True,
        env=env,
    )
    rc, report = doctor(env, "--podman", "podman")
    run = checks(report)["podman-run"]
    if raw.returncode == 0:
        assert run["status"] == "ok"
    else:
        assert run["status"] == "fail" and rc == 1
        if classify_run_failure(raw.stderr):
            assert "containers.conf.d" in run["fix"] and "Tried with that configuration" in run["detail"]
    assert os.environ.get("CONTAINERS_CONF")  # the session's own setting was not touched


def test_doctor_without_podman_cannot_check(e2e_env: dict[str, str]) -> None:
    rc, report = doctor(e2e_env, "--podman", "podman-that-does-not-exist", "--no-run")
    assert rc == 3
    assert checks(report)["podman"]["status"] == "unknown"
