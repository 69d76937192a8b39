"""Load a policy file: YAML 1.2 with line numbers, schema validation, then cross-object checks.

Every problem is reported as FILE:LINE:COL: PATH: MESSAGE, all of them at once, as an InputError (exit 2).
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError

from podwall.errors import InputError, InputProblem
from podwall.model import Loc
from podwall.policy.schema import RESERVED_PEERS, CidrPeer, Policy


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: str
    sha256: str
    flow_locs: tuple[Loc, ...]
    workload_locs: dict[str, Loc]
    exception_locs: tuple[Loc, ...] = ()

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


class _Constructor(RoundTripConstructor):
    """Dates stay text: pydantic parses `expires` and reports an impossible date (2020-13-01) with its line."""


_Constructor.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda self, node: self.construct_scalar(node)
)


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.Constructor = _Constructor
    y.version = (1, 2)  # `2222:22` stays a string; `yes`/`no` are strings, not booleans
    y.allow_duplicate_keys = False
    return y


def _pos(node: Any, key: Any, *, of_key: bool = False) -> tuple[int, int] | None:
    child = node[key]
    if not of_key and isinstance(child, CommentedMap | CommentedSeq) and len(child):
        return child.lc.line, child.lc.col
    if isinstance(node, CommentedMap):
        return node.lc.key(key) if of_key else node.lc.value(key)
    if isinstance(node, CommentedSeq):
        return node.lc.item(key)
    return None


def locate(root: Any, loc: tuple[Any, ...], *, of_key: bool = False) -> tuple[int, int] | None:
    """Best 0-based (line, col) for a path into the YAML tree; union tags in the path are skipped."""
    node = root
    pos: tuple[int, int] | None = (root.lc.line, root.lc.col) if hasattr(root, "lc") else None
    parts = list(loc)
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, CommentedMap) and part in node:
            pos = _pos(node, part, of_key=of_key and last) or pos
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            pos = _pos(node, part) or pos
            node = node[part]
    return pos


def render_path(loc: tuple[Any, ...], root: Any) -> str:
    out = ""
    node = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(node, dict) and part not in node and out:
            continue  # pydantic's union-member tags ("str", "CidrPeer") are not part of the user's path
        else:
            out += f".{part}" if out else str(part)
        if isinstance(node, dict | list):
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                node = None
    return out


def _message(err: dict[str, Any], root: Any, known: list[str]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        key = err["loc"][-1]
        msg = f"unknown key {key!r}"
        close = difflib.get_close_matches(str(key), known, n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
    elif err["type"] == "missing":
        msg = f"required key {err['loc'][-1]!r} is missing"
    elif err["type"].endswith("_type") or err["type"] == "literal_error":
        msg = f"{msg} (got {err.get('input')!r})"
    return msg


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    from podwall.policy import schema

    models: dict[str, Any] = {
        "": schema.Policy,
        "networks": schema.NetworkSpec,
        "workloads": schema.WorkloadSpec,
        "flows": schema.FlowSpec,
        "exceptions": schema.ExceptionSpec,
    }
    model = models[""] if len(loc) <= 1 else models.get(str(loc[0]), models[""])
    return [f.alias or n for n, f in model.model_fields.items()]


def parse_policy_text(text: str, path: str) -> LoadedPolicy:
    try:
        root = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise InputError(InputProblem(path, line, col, f"invalid YAML: {exc.problem or exc.context}")) from None
    if not isinstance(root, CommentedMap):
        raise InputError(InputProblem(path, 1, 1, "a policy is a YAML mapping with `version: 1` at the top"))

    def at(loc: tuple[Any, ...], *, of_key: bool = False) -> tuple[int | None, int | None]:
        pos = locate(root, loc, of_key=of_key)
        return (pos[0] + 1, pos[1] + 1) if pos else (None, None)

    try:
        policy = Policy.model_validate(root)
    except ValidationError as exc:
        problems = []
        seen: set[tuple[str, str]] = set()
        for err in exc.errors():
            loc = tuple(err["loc"])
            p = render_path(loc, root)
            msg = _message(dict(err), root, _known_keys(loc))
            if (p, msg) in seen:
                continue
            seen.add((p, msg))
            line, col = at(loc, of_key=err["type"] == "extra_forbidden")
            problems.append(InputProblem(path, line, col, msg, p))
        raise InputError(sorted(problems, key=lambda q: (q.line or 0, q.col or 0))) from None

    problems = _cross_checks(policy, path, at)
    if problems:
        raise InputError(sorted(problems, key=lambda q: (q.line or 0, q.col or 0)))

    flows = root.get("flows") or []
    flow_locs = tuple(Loc(path, flows.lc.item(i)[0] + 1, flows.lc.item(i)[1] + 1) for i in range(len(flows)))
    wls = root.get("workloads") or {}
    workload_locs = {k: Loc(path, wls.lc.key(k)[0] + 1, wls.lc.key(k)[1] + 1) for k in wls}
    exc = root.get("exceptions") or []
    exception_locs = tuple(Loc(path, exc.lc.item(i)[0] + 1, exc.lc.item(i)[1] + 1) for i in range(len(exc)))
    return LoadedPolicy(
        policy=policy,
        path=path,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        flow_locs=flow_locs,
        workload_locs=workload_locs,
        exception_locs=exception_locs,
    )


def _cross_checks(policy: Policy, path: str, at: Any) -> list[InputProblem]:
    """Phase two: meaning across objects (unknown workloads, impossible peers, overlapping subnets)."""
    problems: list[InputProblem] = []

    def problem(loc: tuple[Any, ...], p: str, msg: str) -> None:
        line, col = at(loc)
        problems.append(InputProblem(path, line, col, msg, p))

    for name in policy.workloads:
        if name in RESERVED_PEERS:
            problem(("workloads", name), f"workloads.{name}", f"{name!r} is a reserved peer name")

    for i, flow in enumerate(policy.flows):
        unknown = False
        for side, peer in (("from", flow.from_), ("to", flow.to)):
            if isinstance(peer, str) and peer not in policy.workloads and peer not in ("host", "world"):
                close = difflib.get_close_matches(peer, list(policy.workloads), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problem(("flows", i, side), f"flows[{i}].{side}", f"unknown workload {peer!r}{hint}")
                unknown = True
        if unknown:
            continue
        src, dst = flow.from_, flow.to
        where = ("flows", i)
        if src == "host":
            problem(
                (*where, "from"), f"flows[{i}].from",
                "`from: host` is not a flow: the host's own connections to containers are always allowed",
            )
        elif dst == "host" and not (isinstance(src, str) and src in policy.workloads):
            problem((*where, "to"), f"flows[{i}].to", "`to: host` needs a workload as `from`")
        elif not any(isinstance(p, str) and p in policy.workloads for p in (src, dst)):
            if isinstance(src, str | CidrPeer) and isinstance(dst, str | CidrPeer):
                problem(where, f"flows[{i}]", "a flow needs a workload on at least one side")

    seen: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for name, spec in policy.networks.items():
        for cidr in spec.cidrs:
            for other, ocidr in seen:
                if cidr.version == ocidr.version and cidr.overlaps(ocidr):  # type: ignore[arg-type]
                    problem(
                        ("networks", name), f"networks.{name}",
                        f"subnet {cidr} overlaps {ocidr} of network {other!r}",
                    )
            seen.append((name, cidr))
    return problems


def load_policy(path: str | Path) -> LoadedPolicy:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(InputProblem(str(path), None, None, f"cannot read policy: {exc.strerror}")) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(InputProblem(str(path), line, col, "not valid UTF-8 text")) from None
    return parse_policy_text(text, str(path))
