"""Shared fixtures.

End-to-end tests (marker `e2e`) need root, Podman and nft. Outside CI they skip when those are missing;
in CI (CI=true) a missing prerequisite is a failure, never a skip.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(os.environ.get("PODWALL_SHARED", ROOT.parent / "shared"))
IN_CI = bool(os.environ.get("CI"))

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
[network]
# podwall targets netavark. A host whose Podman first ran without netavark installed has "cni" persisted as its
# default backend; the suite's own podman commands use netavark regardless.
network_backend = "netavark"
"""


def _missing_prereqs() -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for tool in ("podman", "nft", "nsenter", "ip"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            missing.append(tool)
    from podwall.doctor_facts import netavark_installed

    if not netavark_installed():
        missing.append("netavark")
    return missing


def require_or_fail(what: str, ok: bool) -> None:
    """Skip outside CI; fail in CI."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI prerequisite missing: {what}", pytrace=False)
    pytest.skip(f"needs {what}")


@pytest.fixture(scope="session")
def e2e_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Root + Podman + nft, with the sandbox's containers.conf fix (ENVIRONMENT.md) via CONTAINERS_CONF."""
    missing = _missing_prereqs()
    require_or_fail(", ".join(missing), not missing)
    if "CONTAINERS_CONF" not in os.environ:
        conf = tmp_path_factory.mktemp("podman") / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        os.environ["CONTAINERS_CONF"] = str(conf)
    os.environ.setdefault("PODMAN_IGNORE_CGROUPSV1_WARNING", "1")
    yield dict(os.environ)


@pytest.fixture(scope="session")
def test_image(e2e_env: dict[str, str]) -> str:
    from podwall.podman.image import ensure_busybox_image

    return ensure_busybox_image("localhost/podwall-test-box:latest")


@pytest.fixture
def nft_lock() -> Iterator[None]:
    """Serialise tests that own `table inet podwall` (several test runs may share one machine)."""
    with open("/tmp/podwall-e2e.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture
def scenario(e2e_env: dict[str, str], test_image: str, request: pytest.FixtureRequest) -> Iterator["Scenario"]:
    from tests.podman_util import Scenario

    sc = Scenario(image=test_image, prefix=f"pwt{os.getpid() % 10000}{request.node.name[:6].lower()}")
    try:
        yield sc
    finally:
        sc.cleanup()


@pytest.fixture
def sarif_schema() -> dict:
    import json

    path = SHARED / "sarif-schema-2.1.0.json"
    require_or_fail(f"{path}", path.is_file())
    return json.loads(path.read_text())


if False:  # for type checkers only
    from tests.podman_util import Scenario  # noqa: F401
