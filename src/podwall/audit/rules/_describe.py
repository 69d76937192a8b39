"""Wording shared by rules: how to name an object and its kind in a message."""

from __future__ import annotations

from podwall.model import Container

_KIND_NOUN = {
    "compose-service": "service",
    "shell-pod": "pod",
    "quadlet-pod": "pod",
    "quadlet-kube": "kube unit",
    "kube-pod": "pod",
    "kube-container": "container",
}


def noun(c: Container) -> str:
    if c.infra and c.kind == "container":
        return "pod"
    return _KIND_NOUN.get(c.kind, "container")


def what(c: Container) -> str:
    return f"{noun(c)} `{c.name}`"


def source_kind(kind: str) -> str:
    """compose | quadlet | kube | shell | live, from an object's `kind`."""
    head = kind.split("-", 1)[0]
    return head if head in ("compose", "quadlet", "kube", "shell") else "live"
