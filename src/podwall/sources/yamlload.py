"""YAML loading with YAML 1.2 semantics and 1-based physical line numbers.

ruamel's round-trip loader keeps `.lc` line data (0-based, counted over the whole stream, so multi-document
files get physical lines for free). A `%YAML 1.1` directive would switch ruamel back to 1.1 rules, where an
unquoted `2222:22` becomes the base-60 integer 133342; compose and kube tooling never reads files that way,
so 1.2 is forced whatever the file says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.resolver import VersionedResolver

from podwall.errors import InputProblem


class _Yaml12Resolver(VersionedResolver):
    @property
    def processing_version(self) -> Any:
        return (1, 2)


def _loader() -> YAML:
    y = YAML(typ="rt")
    y.Resolver = _Yaml12Resolver
    y.allow_duplicate_keys = False
    return y


class YamlParseError(Exception):
    def __init__(self, problem: InputProblem):
        self.problem = problem
        super().__init__(problem.render())


def load_documents(text: str, file: str) -> tuple[Any, ...]:
    """All documents of a YAML stream; raises YamlParseError with the file and line."""
    try:
        return tuple(_loader().load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        msg = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise YamlParseError(InputProblem(file, line, col, f"YAML: {msg}")) from exc
    except RecursionError as exc:
        raise YamlParseError(InputProblem(file, None, None, "YAML: nesting too deep")) from exc
    except Exception as exc:
        # ruamel raises plain ValueError/TypeError for some malformed scalars (e.g. `2020-99-99` as a
        # timestamp). That is a property of the input, so it becomes a located parse error (exit 2),
        # never a silent skip.
        raise YamlParseError(InputProblem(file, None, None, f"YAML: {type(exc).__name__}: {exc}")) from exc


def node_line(node: Any, default: int) -> int:
    """1-based line where a mapping or sequence node starts."""
    lc = getattr(node, "lc", None)
    if lc is not None and getattr(lc, "line", None) is not None:
        return int(lc.line) + 1
    return default


def key_line(m: Any, key: Any, default: int) -> int:
    """1-based line of `key` in mapping `m` (merged `<<:` keys have no line of their own: use default)."""
    if isinstance(m, CommentedMap):
        try:
            return int(m.lc.key(key)[0]) + 1
        except (KeyError, TypeError, AttributeError):
            pass
    return default


def value_line(m: Any, key: Any, default: int) -> int:
    """1-based line of the value of `key` (for block sequences/maps: where their first item starts)."""
    v = m.get(key) if isinstance(m, Mapping) else None
    if isinstance(v, (CommentedMap, CommentedSeq)) and len(v) > 0:
        return node_line(v, default)
    if isinstance(m, CommentedMap):
        try:
            return int(m.lc.value(key)[0]) + 1
        except (KeyError, TypeError, AttributeError):
            pass
    return key_line(m, key, default)


def item_line(seq: Any, index: int, default: int) -> int:
    if isinstance(seq, CommentedSeq):
        try:
            return int(seq.lc.item(index)[0]) + 1
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
    return default


def is_map(v: Any) -> TypeGuard[Mapping[Any, Any]]:
    return isinstance(v, Mapping)


def is_list(v: Any) -> TypeGuard[Sequence[Any]]:
    return isinstance(v, Sequence) and not isinstance(v, (str, bytes))


def truthy(v: Any) -> bool:
    """Booleans as compose/kube tools read them. YAML 1.2 makes `yes` a string; Go's decoders and
    podman-compose still take it as true, and for security findings a false negative is the worse error."""
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() in ("true", "yes", "on", "1", "y")
    if isinstance(v, int):
        return v != 0
    return False
