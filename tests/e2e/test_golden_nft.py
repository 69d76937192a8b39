"""Every golden ruleset is accepted by the real nft (`nft -c`: checked against the kernel, nothing changed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from podwall.nft.compile import FAMILY, TABLE

pytestmark = pytest.mark.e2e
GOLDEN = sorted((Path(__file__).resolve().parent.parent / "golden").glob("*.nft"))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_is_valid_nft(path: Path, e2e_env: dict[str, str]) -> None:
    script = f"table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n{path.read_text()}"
    cp = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr


def test_goldens_exist() -> None:
    assert len(GOLDEN) >= 3
