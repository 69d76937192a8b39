"""The README's first command, as a new user runs it (no CONTAINERS_CONF: the demo copes with the quirks)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.e2e.enforce_util import table_exists

pytestmark = pytest.mark.e2e


def test_example_policy_is_the_embedded_one() -> None:
    assert (ROOT / "examples" / "shop.yaml").read_text() == (ROOT / "src/podwall/data/shop.yaml").read_text()


def test_demo_before_after_and_cleanup(e2e_env: dict[str, str], nft_lock: None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CONTAINERS_CONF"}
    cp = subprocess.run([sys.executable, "-m", "podwall", "demo"], capture_output=True, text=True, env=env,
                        timeout=300)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    out = cp.stdout
    before = re.search(r"(\d+) of (\d+) probed cells reachable", out)
    assert before and before.group(1) == before.group(2) and int(before.group(2)) > 50  # everything open
    after = re.search(r"(\d+) correct, (\d+) wrong", out)
    assert after and after.group(2) == "0" and int(after.group(1)) > 50
    assert re.search(r"web/shop-web .*8080", out)  # the allowed flow shows in the after matrix
    assert "unmatched: shop-stray" in out
    # cleanup: nothing left behind
    assert not table_exists()
    names = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    assert not [n for n in names.split() if n.startswith("shop-")]
    nets = subprocess.run(["podman", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True).stdout
    assert "shop-front" not in nets and "shop-back" not in nets


def test_demo_refuses_to_replace_a_loaded_policy(e2e_env: dict[str, str], nft_lock: None) -> None:
    subprocess.run(["nft", "add", "table", "inet", "podwall"], check=True)
    try:
        cp = subprocess.run([sys.executable, "-m", "podwall", "demo"], capture_output=True, text=True, timeout=60)
        assert cp.returncode == 3 and "already loaded" in cp.stderr
    finally:
        subprocess.run(["nft", "delete", "table", "inet", "podwall"], capture_output=True)
