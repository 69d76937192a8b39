"""Readers: tokenisation traps, YAML 1.2, line numbers (SPEC §4), Quadlet INI details, kube documents."""

from __future__ import annotations

import pytest

from podwall.model import NetMode
from podwall.sources.base import SourceFile, SourceKind
from podwall.sources.compose import read_compose
from podwall.sources.kube import read_kube
from podwall.sources.ports import PortSpecError, parse_port_spec
from podwall.sources.quadlet import read_quadlets
from podwall.sources.shell import read_shell
from podwall.sources.shellwords import tokenize

# -- shell ------------------------------------------------------------------------------------------


def _shell(text: str):  # type: ignore[no-untyped-def]
    r = read_shell("s.sh", text)
    assert r.problems == ()
    return r.inventory


def test_shell_text_and_comments_are_not_commands() -> None:
    inv = _shell(
        'echo "podman run --network host x"\n'
        "# podman run --network host x\n"
        "printf '%s' 'podman run --privileged x'\n"
        "cat <<EOF\npodman run --network host inside-heredoc\nEOF\n"
        "cat <<-'END'\n\tpodman run --privileged y\n\tEND\n"
        "podman run --network app img sh -c 'podman run --network host z' --privileged\n"
    )
    assert [(c.image, c.network_mode, c.privileged) for c in inv.containers] == [("img", NetMode.BRIDGE, False)]


def test_shell_substitutions_are_commands() -> None:
    inv = _shell('ID=$(podman create --network host a)\nY=`podman run --privileged b`\necho "$(podman run --cap-add NET_RAW c)"\n')
    by_image = {c.image: c for c in inv.containers}
    assert by_image["a"].network_mode is NetMode.HOST
    assert by_image["b"].privileged
    assert by_image["c"].cap_add == ("NET_RAW",)


def test_shell_lines_inside_continued_command() -> None:
    inv = _shell("#!/bin/sh\nsudo -u root podman run \\\n  -d \\\n  --cap-add=NET_ADMIN \\\n  --net host \\\n  img\n")
    (c,) = inv.containers
    assert c.loc is not None and c.loc.line == 2  # first line of the command
    assert c.locs["cap_add:NET_ADMIN"].line == 4
    assert c.locs["network_mode"].line == 5  # the value's token (`host`), on the `--net` line here


def test_shell_value_on_next_line_is_reported_there() -> None:
    inv = _shell("podman run --network \\\n  host img\n")
    assert inv.containers[0].locs["network_mode"].line == 2


def test_shell_option_forms_and_wrappers() -> None:
    inv = _shell(
        "exec podman --log-level debug run -dit -p8080:80 --name=a --publish 127.0.0.1:1:1 img\n"
        "FOO=1 env BAR=2 nohup podman container create --privileged=false --cap-add all b\n"
        "if true; then podman run -itp 53:53/udp c; fi && podman run --pod=new:p1 d\n"
        "podman run --rm img2 2>/dev/null >log.txt\n"
    )
    a, b, c, d, e = inv.containers
    assert a.name == "a" and [(p.host_ip, p.host_port) for p in a.ports] == [("", 8080), ("127.0.0.1", 1)]
    assert b.image == "b" and not b.privileged and b.cap_add == ("ALL",)
    assert c.ports[0].protocol == "udp" and c.ports[0].host_port == 53
    assert d.network_mode is NetMode.POD and d.pod == "p1"
    assert e.image == "img2"


def test_shell_network_and_pod_create() -> None:
    inv = _shell(
        "podman pod create -n web --network host -p 80:80\n"
        "podman network create -d macvlan -o parent=eth0 --subnet 192.168.5.0/24 lan\n"
        "podman network create --internal --ipv6 priv\n"
    )
    (pod,) = inv.containers
    assert pod.infra and pod.name == "web" and pod.network_mode is NetMode.HOST
    lan, priv = inv.networks
    assert lan.driver == "macvlan" and str(lan.subnets[0].cidr) == "192.168.5.0/24"
    assert priv.internal and priv.ipv6


def test_shell_syntax_error_has_a_line() -> None:
    r = read_shell("s.sh", "podman run a\necho 'unterminated\n\n")
    assert [(p.file, p.line) for p in r.problems] == [("s.sh", 2)]


def test_tokenizer_keeps_first_line_of_each_word() -> None:
    (stream,) = tokenize('a "b\nc" \\\n d')
    assert [(w.text, w.line) for w in stream] == [("a", 1), ("b\nc", 1), ("d", 3)]


# -- ports ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "ip", "host", "cont", "rng", "proto"),
    [
        ("80", "", None, 80, 1, "tcp"),
        ("8080:80", "", 8080, 80, 1, "tcp"),
        ("127.0.0.1::80", "127.0.0.1", None, 80, 1, "tcp"),
        ("[::]:8080:80/udp", "::", 8080, 80, 1, "udp"),
        ("[::1]:8080:80", "::1", 8080, 80, 1, "tcp"),
        ("8000-8010:9000-9010", "", 8000, 9000, 11, "tcp"),
        ("${HOST_IP:-0.0.0.0}:${PORT:-81}:80", "0.0.0.0", 81, 80, 1, "tcp"),
        ("$PORT:80", "", None, 80, 1, "tcp"),
    ],
)
def test_port_specs(spec: str, ip: str, host: int | None, cont: int, rng: int, proto: str) -> None:
    p = parse_port_spec(spec)
    assert (p.host_ip, p.host_port, p.container_port, p.range, p.protocol) == (ip, host, cont, rng, proto)


@pytest.mark.parametrize("spec", ["", "80/icmp", "abc", "1.2.3:80:80", "70000", "[::1:80:80", "1-3:1-2"])
def test_bad_port_specs(spec: str) -> None:
    with pytest.raises(PortSpecError):
        parse_port_spec(spec)


# -- compose ----------------------------------------------------------------------------------------


def test_compose_yaml_12_port_stays_a_mapping() -> None:
    text = "services:\n  ssh:\n    ports:\n      - 2222:22\n      - 80:80\n"
    r = read_compose("compose.yaml", text)
    assert r.problems == ()
    ports = r.inventory.containers[0].ports
    assert [(p.host_port, p.container_port) for p in ports] == [(2222, 22), (80, 80)]
    # Even a %YAML 1.1 directive does not turn it into the base-60 number 133342.
    r = read_compose("compose.yaml", "%YAML 1.1\n---\n" + text)
    assert [(p.host_port, p.container_port) for p in r.inventory.containers[0].ports] == [(2222, 22), (80, 80)]


def test_compose_networks_list_and_map_and_modes() -> None:
    text = (
        "services:\n"
        "  a: {networks: [x, y]}\n"
        "  b:\n    networks:\n      x:\n        aliases: [bb]\n      z: null\n"
        "  c: {network_mode: none}\n"
        "  d: {network_mode: 'container:a'}\n"
    )
    r = read_compose("dir/compose.yaml", text)
    a, b, c, d = r.inventory.containers
    assert a.network_names == ("x", "y") and b.network_names == ("x", "z")
    assert b.locs["network:z"].line == 7
    assert c.network_mode is NetMode.NONE and (d.network_mode, d.mode_target) == (NetMode.CONTAINER, "a")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("compose.yaml", "services: {}\nnetworks: {n: {}}\n", False),
        ("podman-compose.yml", "services: {}\nnetworks: {n: {}}\n", True),
        ("compose.yaml", "x-podman: {in_pod: false}\nservices: {}\nnetworks: {n: {}}\n", True),
        ("compose.yaml", "# podwall: podman\nservices: {}\nnetworks: {n: {}}\n", True),
    ],
)
def test_compose_podman_targeting(name: str, text: str, expected: bool) -> None:
    (net,) = read_compose(name, text).inventory.networks
    assert net.podman_targeted is expected


def test_compose_errors_are_located_and_reading_goes_on() -> None:
    r = read_compose("c.yaml", "services:\n  a:\n    ports:\n      - 'nope'\n      - 80:80\n")
    assert [(p.line, "ports[0]" in p.message) for p in r.problems] == [(4, True)]
    assert [p.container_port for p in r.inventory.containers[0].ports] == [80]
    dup = read_compose("c.yaml", "services:\n  a: {}\n  a: {}\n")
    assert dup.problems[0].line == 3


# -- quadlet ----------------------------------------------------------------------------------------


def _quadlets(files: dict[str, str]):  # type: ignore[no-untyped-def]
    return {r.path: r for r in read_quadlets(SourceFile(p, SourceKind.QUADLET, t) for p, t in files.items())}


def test_quadlet_references_resolve_to_podman_names() -> None:
    rs = _quadlets(
        {
            "u/web.container": "[Container]\nNetwork=db.network\nNetwork=plain.network\nPod=app.pod\n",
            "u/db.network": "[Network]\nNetworkName=backend\n",
            "u/app.pod": "[Pod]\nPodName=shop\n",
            "u/side.container": "[Container]\nNetwork=container:web.container\n",
        }
    )
    web = rs["u/web.container"].inventory.containers[0]
    assert web.name == "systemd-web" and web.pod == "shop" and web.network_mode is NetMode.POD
    side = rs["u/side.container"].inventory.containers[0]
    assert side.mode_target == "systemd-web"
    assert rs["u/db.network"].inventory.networks[0].name == "backend"
    assert rs["u/app.pod"].inventory.containers[0].name == "shop"


def test_quadlet_ini_details() -> None:
    text = (
        "[Container]\n"
        "; semicolon comment\n"
        "Network=a\n"
        "Network=\n"  # empty assignment resets the list
        "Network=b\n"
        "PublishPort=127.0.0.1:1:1\n"
        "PodmanArgs=--cap-add=NET_RAW \\\n"
        "# comment inside continuation\n"
        "  -p 2:2 \\\n"
        "  --network=c\n"
    )
    c = _quadlets({"x.container": text})["x.container"].inventory.containers[0]
    assert c.network_names == ("b", "c")
    assert c.locs["cap_add:NET_RAW"].line == 7
    assert [(p.host_port, p.loc.line if p.loc else 0) for p in c.ports] == [(1, 6), (2, 9)]
    assert c.locs["network:c"].line == 10


def test_quadlet_errors() -> None:
    rs = _quadlets({"a.container": "Image=x\n[Container]\nbroken\n", "b.network": "[Unit]\n"})
    assert sorted(p.line for p in rs["a.container"].problems) == [1, 3]
    assert rs["b.network"].problems[0].message.startswith("no [Network] section")


# -- kube -------------------------------------------------------------------------------------------


def test_kube_lines_count_over_the_whole_file_and_other_kinds_ignored() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n"
        "---\n"
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: cj}\nspec:\n  jobTemplate:\n    spec:\n"
        "      template:\n        spec:\n          containers:\n            - name: c\n              ports:\n"
        "                - containerPort: 1\n                  hostPort: 2\n"
    )
    r = read_kube("k.yaml", text)
    assert r.problems == ()
    pod, ctr = r.inventory.containers
    assert pod.name == "cj-pod" and pod.loc is not None and pod.loc.line == 8
    assert ctr.name == "cj-pod-c" and pod.ports[0].loc is not None and pod.ports[0].loc.line == 18
