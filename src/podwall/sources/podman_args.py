"""Parse `podman` command lines (already split into words with lines) into typed invocations.

Used by shell scripts and by Quadlet `PodmanArgs=`. Options are parsed the way Podman's flag library does
(`--opt=value`, `--opt value`, `-p8080:80`, clustered `-dit`), and for `run`/`create` parsing stops at the
image: what follows is the container's own command (`podman run img sh -c '… --privileged'` is not
privileged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from podwall.sources.shellwords import Word

# Long options that never take a separate value (they may still be written `--flag=false`).
_RUN_BOOL = frozenset(
    {
        "detach", "env-host", "http-proxy", "init", "interactive", "no-healthcheck", "no-hosts",
        "oom-kill-disable", "passwd", "privileged", "publish-all", "quiet", "read-only", "read-only-tmpfs",
        "replace", "rm", "rmi", "rootfs", "sig-proxy", "tls-verify", "tty", "disable-content-trust", "help",
        "unsetenv-all",
    }
)  # fmt: skip
_RUN_SHORT_VALUE = {"a": "attach", "c": "cpu-shares", "e": "env", "h": "hostname", "l": "label",
                    "m": "memory", "p": "publish", "u": "user", "v": "volume", "w": "workdir"}  # fmt: skip
_RUN_SHORT_BOOL = {"d": "detach", "i": "interactive", "t": "tty", "P": "publish-all", "q": "quiet"}

_POD_BOOL = frozenset({"infra", "no-hosts", "replace", "help", "publish-all"})
_POD_SHORT_VALUE = {"n": "name", "p": "publish", "l": "label"}

_NET_BOOL = frozenset({"disable-dns", "internal", "ipv6", "ignore", "help"})
_NET_SHORT_VALUE = {"d": "driver", "o": "opt"}

# podman's global options (before the subcommand) that take a value.
_GLOBAL_VALUE = frozenset(
    {
        "cgroup-manager", "conmon", "connection", "events-backend", "hooks-dir", "identity", "imagestore",
        "log-level", "module", "network-cmd-path", "network-config-dir", "out", "root", "runroot", "runtime",
        "runtime-flag", "ssh", "storage-driver", "storage-opt", "tmpdir", "url", "volumepath",
        "registries-conf", "cni-config-dir", "config", "db-backend",
    }
)  # fmt: skip
_GLOBAL_SHORT_VALUE = {"c": "connection"}

ALIASES = {"net": "network"}


@dataclass(frozen=True)
class Opt:
    name: str  # long name, without dashes, aliases resolved (`--net` → network)
    value: str | None  # None for a bare boolean flag
    line: int


@dataclass
class Invocation:
    """One podman command that matters to the network: run/create, pod create, network create."""

    what: str  # "container" | "pod" | "network"
    line: int  # first line of the command
    opts: list[Opt] = field(default_factory=list)
    positionals: list[Word] = field(default_factory=list)  # image (containers) or name (pods, networks)

    def all(self, *names: str) -> list[Opt]:
        return [o for o in self.opts if o.name in names]

    def last(self, *names: str) -> Opt | None:
        found = self.all(*names)
        return found[-1] if found else None


def flag_value(opt: Opt) -> bool:
    return opt.value is None or opt.value.strip().lower() not in ("false", "0", "no", "off")


def parse_options(
    words: Sequence[Word],
    *,
    bool_long: frozenset[str],
    short_value: dict[str, str],
    short_bool: dict[str, str] | None = None,
    stop_at_positional: bool,
    known_value: frozenset[str] | None = None,
) -> tuple[list[Opt], list[Word], int]:
    """Options, positionals, and the index where parsing stopped.

    A long option not in `bool_long` takes a value, unless `known_value` is given and does not list it
    (used for podman's global options, where most unknown flags are booleans).
    """
    opts: list[Opt] = []
    pos: list[Word] = []
    short_bool = short_bool or {}
    i = 0
    while i < len(words):
        w = words[i]
        t = w.text
        if t == "--":
            i += 1
            if stop_at_positional:
                if i < len(words):
                    pos.append(words[i])
                    i += 1
                return opts, pos, i
            pos.extend(words[i:])
            return opts, pos, len(words)
        if t.startswith("--") and len(t) > 2:
            name, eq, value = t[2:].partition("=")
            name = ALIASES.get(name, name)
            if eq:
                opts.append(Opt(name, value, w.line))
            elif name in bool_long or (known_value is not None and name not in known_value):
                opts.append(Opt(name, None, w.line))
            elif i + 1 < len(words):
                opts.append(Opt(name, words[i + 1].text, words[i + 1].line))
                i += 1
            else:
                opts.append(Opt(name, "", w.line))
        elif t.startswith("-") and len(t) > 1:
            j = 1
            while j < len(t):
                ch = t[j]
                if ch in short_value:
                    rest = t[j + 1 :]
                    if rest:
                        opts.append(Opt(short_value[ch], rest.removeprefix("="), w.line))
                    elif i + 1 < len(words):
                        opts.append(Opt(short_value[ch], words[i + 1].text, words[i + 1].line))
                        i += 1
                    else:
                        opts.append(Opt(short_value[ch], "", w.line))
                    break
                opts.append(Opt(short_bool.get(ch, ch), None, w.line))
                j += 1
        else:
            pos.append(w)
            if stop_at_positional:
                return opts, pos, i + 1
        i += 1
    return opts, pos, len(words)


def _is_podman(word: str) -> bool:
    base = word.rsplit("/", 1)[-1]
    return base in ("podman", "podman-remote")


def parse_podman_command(words: Sequence[Word]) -> Invocation | None:
    """`podman [global opts] run|create|container run|pod create|network create …`, else None."""
    if not words or not _is_podman(words[0].text):
        return None
    tail = list(words[1:])
    _, pos, i = parse_options(
        tail, bool_long=frozenset(), short_value=_GLOBAL_SHORT_VALUE, stop_at_positional=True, known_value=_GLOBAL_VALUE
    )
    if not pos:
        return None
    rest = tail[i - 1 :]  # from the subcommand on
    sub = [rest[0].text] + [w.text for w in rest[1:2]]
    line = words[0].line
    if sub[0] in ("run", "create") or sub[:2] in (["container", "run"], ["container", "create"]):
        args = rest[1:] if sub[0] in ("run", "create") else rest[2:]
        opts, pos, _ = parse_options(
            args, bool_long=_RUN_BOOL, short_value=_RUN_SHORT_VALUE, short_bool=_RUN_SHORT_BOOL, stop_at_positional=True
        )
        return Invocation("container", line, opts, pos)
    if sub[:2] == ["pod", "create"]:
        opts, pos, _ = parse_options(rest[2:], bool_long=_POD_BOOL, short_value=_POD_SHORT_VALUE, stop_at_positional=False)
        return Invocation("pod", line, opts, pos)
    if sub[:2] == ["network", "create"]:
        opts, pos, _ = parse_options(rest[2:], bool_long=_NET_BOOL, short_value=_NET_SHORT_VALUE, stop_at_positional=False)
        return Invocation("network", line, opts, pos)
    return None


def parse_container_args(words: Sequence[Word]) -> list[Opt]:
    """Options of `podman run` given without the command itself (Quadlet `PodmanArgs=`)."""
    opts, _, _ = parse_options(
        words, bool_long=_RUN_BOOL, short_value=_RUN_SHORT_VALUE, short_bool=_RUN_SHORT_BOOL, stop_at_positional=False
    )
    return opts


def parse_pod_args(words: Sequence[Word]) -> list[Opt]:
    opts, _, _ = parse_options(words, bool_long=_POD_BOOL, short_value=_POD_SHORT_VALUE, stop_at_positional=False)
    return opts


def parse_network_args(words: Sequence[Word]) -> list[Opt]:
    opts, _, _ = parse_options(words, bool_long=_NET_BOOL, short_value=_NET_SHORT_VALUE, stop_at_positional=False)
    return opts
