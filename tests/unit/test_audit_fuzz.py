"""Garbage in: every reader returns located problems or objects, never a traceback."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from podwall.sources.base import SourceFile, SourceKind
from podwall.sources.compose import read_compose
from podwall.sources.kube import read_kube
from podwall.sources.ports import PortSpecError, parse_port_spec
from podwall.sources.quadlet import read_quadlets
from podwall.sources.shell import read_shell

_ALPHABET = st.sampled_from(list("abc -=:[]{}'\"\\\n\t#;$()`|&<>/.0123456789") + ["podman run ", "--network ", "host", "services:", "  - ", "[Container]\n", "PodmanArgs=", "<<EOF\n", "EOF\n", "apiVersion: v1\nkind: Pod\n"])
TEXT = st.lists(_ALPHABET, max_size=80).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_shell_never_raises(text: str) -> None:
    r = read_shell("f.sh", text)
    assert all(p.file == "f.sh" for p in r.problems)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_yaml_readers_never_raise(text: str) -> None:
    for r in (read_compose("compose.yaml", text), read_kube("k.yaml", text)):
        assert all(p.file for p in r.problems)


@settings(max_examples=300, deadline=None)
@given(TEXT, st.sampled_from([".container", ".network", ".pod", ".kube"]))
def test_quadlet_never_raises(text: str, ext: str) -> None:
    read_quadlets([SourceFile(f"u{ext}", SourceKind.QUADLET, text)])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_port_parser_raises_only_its_error(spec: str) -> None:
    try:
        parse_port_spec(spec)
    except PortSpecError:
        pass
