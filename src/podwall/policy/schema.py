"""The policy file's schema. Users write this; `podwall schema` prints it as JSON Schema for editors."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
PORT_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?/(tcp|udp|sctp)$")
RULE_RE = re.compile(r"^PW\d{3}$")
RESERVED_PEERS = frozenset({"host", "world", "unmanaged"})
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}


@dataclass(frozen=True, order=True)
class PortRange:
    proto: str
    lo: int
    hi: int

    def __str__(self) -> str:
        return f"{self.lo}/{self.proto}" if self.lo == self.hi else f"{self.lo}-{self.hi}/{self.proto}"

    @property
    def proto_number(self) -> int:
        return PROTO_NUMBERS[self.proto]


def parse_port(text: str) -> PortRange:
    m = PORT_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not PORT/PROTO or FROM-TO/PROTO (proto: tcp, udp, sctp)")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if not (1 <= lo <= 65535 and 1 <= hi <= 65535):
        raise ValueError(f"{text!r}: ports are 1-65535")
    if lo > hi:
        raise ValueError(f"{text!r}: range start is above its end")
    return PortRange(m.group(3), lo, hi)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NetworkSpec(_Strict):
    """A segment podwall creates with `podman network create` when it is missing."""

    subnet: StrictStr | None = Field(None, description="One subnet (IPv4 or IPv6 CIDR)")
    subnets: list[StrictStr] | None = Field(None, description="Several subnets (e.g. one IPv4 and one IPv6)")
    internal: StrictBool = Field(False, description="No routing to other networks or the outside world")
    isolate: Literal["strict"] | None = Field(
        None, description="netavark isolate=strict in addition to podwall's own enforcement"
    )

    @field_validator("subnet")
    @classmethod
    def _one(cls, v: str | None) -> str | None:
        if v is not None:
            _plain_cidr(v)
            ipaddress.ip_network(v, strict=True)
        return v

    @field_validator("subnets")
    @classmethod
    def _many(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("subnets must not be empty (omit it to let Podman choose)")
            for s in v:
                _plain_cidr(s)
                ipaddress.ip_network(s, strict=True)
        return v

    @model_validator(mode="after")
    def _not_both(self) -> NetworkSpec:
        if self.subnet is not None and self.subnets is not None:
            raise ValueError("give either subnet or subnets, not both")
        return self

    @property
    def cidrs(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        raw = [self.subnet] if self.subnet else list(self.subnets or [])
        return tuple(ipaddress.ip_network(s) for s in raw)


class WorkloadSpec(_Strict):
    """Containers by name glob, or by labels (all must match). Either selector is enough to belong."""

    containers: list[StrictStr] = Field(default_factory=list, description="Container name globs")
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict, description="All must match")

    @model_validator(mode="after")
    def _some_selector(self) -> WorkloadSpec:
        if not self.containers and not self.labels:
            raise ValueError("a workload needs `containers` globs or `labels`")
        return self


class CidrPeer(_Strict):
    cidr: StrictStr

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        _plain_cidr(v)
        try:
            ipaddress.ip_network(v, strict=True)
        except ValueError as exc:
            raise ValueError(f"{v!r} is not a CIDR network ({exc})") from None
        return v

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)


def _peer(v: object) -> object:
    if isinstance(v, str | CidrPeer):
        return v
    if isinstance(v, dict):
        if set(v) != {"cidr"}:
            raise ValueError(f"a CIDR peer is written {{cidr: 10.0.0.0/8}}; got keys {sorted(map(str, v))}")
        return CidrPeer.model_validate(dict(v))
    raise ValueError("expected a workload name, host, world, or {cidr: …}")


def _plain_cidr(v: str) -> None:
    """ipaddress accepts IPv6 scope ids (`fe80::%anything/64`): free text that must never travel on."""
    if "%" in v:
        raise ValueError(f"{v!r}: scope ids (%…) are not allowed in a CIDR")


def _port(v: str) -> str:
    parse_port(v)
    return v


Peer = Annotated[
    StrictStr | CidrPeer,
    BeforeValidator(_peer),
    Field(description="A workload name, host, world, or {cidr: …}"),
]
PortText = Annotated[StrictStr, AfterValidator(_port), Field(description="PORT/PROTO or FROM-TO/PROTO")]


class FlowSpec(_Strict):
    """An allowed new connection. Replies are allowed by conntrack."""

    from_: Peer = Field(alias="from")
    to: Peer
    ports: list[PortText] | None = Field(None, description="PORT/PROTO or FROM-TO/PROTO; omit for all")
    comment: StrictStr | None = None

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("ports: [] allows nothing; omit `ports` to allow every protocol")
        return v

    @property
    def port_ranges(self) -> tuple[PortRange, ...] | None:
        return None if self.ports is None else tuple(parse_port(p) for p in self.ports)


class ExceptionSpec(_Strict):
    """A container that must break an audit rule, with a reason and an expiry date (PW109 otherwise)."""

    container: StrictStr
    rule: StrictStr
    reason: StrictStr | None = None
    expires: dt.date | None = None

    @field_validator("rule")
    @classmethod
    def _rule(cls, v: str) -> str:
        if not RULE_RE.match(v):
            raise ValueError(f"{v!r} is not a rule ID like PW101")
        from podwall.audit.rule import all_rules

        known = {r.id for r in all_rules()}
        if v not in known:
            raise ValueError(f"no rule {v} (known: {', '.join(sorted(known))})")
        return v


class Policy(_Strict):
    version: Literal[1]
    mode: Literal["enforce", "audit"] = Field("enforce", description="audit: log and count, drop nothing")
    deny: Literal["reject", "drop"] = Field(
        "reject", description="reject (icmpx admin-prohibited: fails fast) or silent drop"
    )
    networks: dict[StrictStr, NetworkSpec] = Field(default_factory=dict)
    workloads: dict[StrictStr, WorkloadSpec] = Field(default_factory=dict)
    flows: list[FlowSpec] = Field(default_factory=list)
    exceptions: list[ExceptionSpec] = Field(default_factory=list)

    @field_validator("networks", "workloads")
    @classmethod
    def _names(cls, v: dict[str, object]) -> dict[str, object]:
        for name in v:
            if not NAME_RE.match(name):
                raise ValueError(f"{name!r} is not a valid name (letters, digits, _ . -)")
        return v


def json_schema() -> dict[str, object]:
    schema = Policy.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "podwall policy"
    return schema
