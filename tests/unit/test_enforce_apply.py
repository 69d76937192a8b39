"""apply's order and failure handling, with fake adapters (no root, no Podman)."""

from __future__ import annotations

import dataclasses
import ipaddress as ip
from pathlib import Path

import pytest
from click.testing import CliRunner

from podwall import enforce
from podwall.errors import EnvironmentProblem
from podwall.model import Inventory, Network, Subnet
from podwall.nft.live import NftError
from podwall.policy.load import parse_policy_text
from tests.unit.invbuild import SHOP_POLICY, network, shop


class FakeNft:
    def __init__(self, fail_check: bool = False) -> None:
        self.fail_check = fail_check
        self.loaded: str | None = None
        self.checked: list[str] = []

    def check(self, script: str) -> None:
        self.checked.append(script)
        if self.fail_check:
            raise NftError("nft -c: Error: syntax error")

    def apply(self, script: str) -> None:
        self.loaded = script

    def snapshot(self) -> str | None:
        return "snap" if self.loaded else None


@dataclasses.dataclass
class World:
    inv: Inventory
    created: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    revoked: int = 0

    def env(self, nft: FakeNft) -> enforce.Environment:
        def create(name: str, spec: object) -> None:
            self.created.append(name)
            n = Network(name, subnets=(Subnet(ip.ip_network("10.99.0.0/24"), ip.ip_address("10.99.0.1")),),
                        interface="podman9", dns_enabled=True)
            self.inv = dataclasses.replace(self.inv, networks=(*self.inv.networks, n))

        def revoke(res: object) -> int:
            self.revoked += 1
            return 0

        return enforce.Environment(read_inventory=lambda: self.inv, create_network=create,
                                   remove_network=self.removed.append, nft=nft, revoke=revoke)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enforce, "STATE_DIR", tmp_path)


def test_creates_missing_networks_compiles_checks_applies_and_revokes() -> None:
    inv = dataclasses.replace(shop(), networks=(network("front"), network("plain")))  # `back` is missing
    w = World(inv)
    nft = FakeNft()
    result = enforce.apply(parse_policy_text(SHOP_POLICY, "p.yaml"), w.env(nft))
    created = result.created
    assert result.warnings == []
    assert created == ["back"] and w.created == ["back"] and w.removed == []
    assert nft.checked == [nft.loaded] and nft.loaded and nft.loaded.startswith("table inet podwall\ndelete table")
    assert '"podman9"' in nft.loaded  # compiled with the real (created) network
    assert w.revoked == 1
    st = enforce.State.load()
    assert st is not None and st.snapshot == "snap" and st.flows[0] == "web -> api 8080/tcp"


def test_failed_check_removes_only_the_networks_it_created() -> None:
    inv = dataclasses.replace(shop(), networks=(network("front"), network("plain")))
    w = World(inv)
    nft = FakeNft(fail_check=True)
    with pytest.raises(NftError):
        enforce.apply(parse_policy_text(SHOP_POLICY, "p.yaml"), w.env(nft))
    assert w.created == ["back"] and w.removed == ["back"]
    assert nft.loaded is None and w.revoked == 0 and enforce.State.load() is None


def test_weaker_existing_network_is_refused_unless_forced() -> None:
    inv = dataclasses.replace(shop(), networks=(network("front"), network("back", internal=False)))
    w = World(inv)
    nft = FakeNft()
    with pytest.raises(enforce.ApplyRefused) as ei:
        enforce.apply(parse_policy_text(SHOP_POLICY, "p.yaml"), w.env(nft))
    assert ei.value.rc == 3 and "back: policy says internal" in str(ei.value)
    assert nft.loaded is None
    enforce.apply(parse_policy_text(SHOP_POLICY, "p.yaml"), w.env(nft), force=True)
    assert nft.loaded


def test_plan_reports_drift_unmatched_unenforceable_and_warnings() -> None:
    inv = dataclasses.replace(shop(), networks=(network("front"), network("back", internal=False), network("plain")))
    p = enforce.make_plan(parse_policy_text(SHOP_POLICY, "p.yaml"), inv)
    data = p.to_json()
    assert data["networks"]["drift"][0]["weakens"] is True
    assert data["unmatched"] == ["stray"]
    assert data["unenforceable"][0]["container"] == "hostnet"
    assert any("host network" in w for w in data["warnings"])
    assert data["ruleset"]["flows"] == 6


def test_apply_without_yes_and_without_a_terminal_is_exit_2(tmp_path: Path) -> None:
    from podwall.cli import _load_commands, cli

    _load_commands()
    pol = tmp_path / "p.yaml"
    pol.write_text(SHOP_POLICY)
    r = CliRunner().invoke(cli, ["apply", "-f", str(pol)], standalone_mode=False)
    assert getattr(r.exception, "rc", None) == 2 and "--yes" in str(r.exception)


def test_rootless_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from podwall.cli import policy as cli_policy

    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match="rootless"):
        cli_policy.preflight(enable_br_netfilter=False)


def test_missing_br_netfilter_is_refused_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from podwall import host
    from podwall.cli import policy as cli_policy

    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("podwall.podman.networks.is_rootless", lambda: False)
    monkeypatch.setattr(host, "br_netfilter_status", lambda *a, **k: host.BrNetfilter(False, None, None))
    with pytest.raises(EnvironmentProblem, match="--enable-br-netfilter"):
        cli_policy.preflight(enable_br_netfilter=False)
