"""The verify matrix formatters: pure, so no root and no network."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from podwall.cells import Cell, ProbeResult, Verdict
from podwall.exitcodes import RC
from podwall.report.matrix import Mark, grid, mark, summarize, to_dict, to_json, to_junit, to_text

A, B = Verdict.ALLOW, Verdict.BLOCK
NS = "/run/netns/x"


def cell(
    frm: str,
    to: str,
    port: int,
    expected: Verdict,
    *,
    address: str = "10.89.0.3",
    proto: str = "tcp",
    netns: str | None = NS,
    to_container: str | None = "",
) -> Cell:
    return Cell(
        frm,
        f"{frm}-1",
        to,
        f"{to}-1" if to_container == "" else to_container,
        address,
        port,
        proto,
        expected,
        netns=netns,
    )


PAIRS = [
    (cell("web", "api", 8080, A), ProbeResult(A, "connected", 1.5)),
    (cell("web", "api", 9999, B), ProbeResult(A, "refused", 0.8)),  # leak
    (cell("web", "db", 5432, B, address="10.89.0.4"), ProbeResult(B, "timeout", 300.0)),
    (cell("api", "db", 5432, A, address="10.89.0.4"), ProbeResult(B, "unreachable", 0.5)),  # broken flow
    (cell("api", "db", 5432, A, address="fe80::1"), ProbeResult(A, "connected", 0.4)),
    (cell("api", "db", 53, B, address="10.89.0.4", proto="udp"), ProbeResult(B, "inferred", 300.0)),
    (
        cell("api", "world", 443, B, address="198.51.100.1", netns=None, to_container=None),
        ProbeResult(None, "not probed"),
    ),
    (
        cell("api", "host", 22, B, address="10.89.0.1", to_container=None),
        ProbeResult(None, "error: /proc/1/ns/net is the host's own network namespace"),
    ),
]


def test_marks_say_the_direction_of_the_error() -> None:
    assert [mark(c, r) for c, r in PAIRS] == [
        Mark.OK,
        Mark.LEAK,
        Mark.OK,
        Mark.MISSING,
        Mark.OK,
        Mark.INFERRED,
        Mark.NOT_PROBED,
        Mark.NOT_PROBED,
    ]
    assert Mark.LEAK.value == "X↑" and Mark.MISSING.value == "X↓"


def test_counts_never_count_unprobed_cells_as_correct() -> None:
    s = summarize(PAIRS)
    assert (s.correct, s.wrong, s.not_probed, s.inferred) == (4, 2, 2, 1)
    assert s.line == "4 correct, 2 wrong, 2 not probed"
    assert s.rc == RC.FINDINGS


def test_exit_codes() -> None:
    ok = [PAIRS[0], PAIRS[2]]
    assert summarize(ok).rc == RC.OK and summarize(ok).line == "2 correct, 0 wrong"
    assert summarize([PAIRS[6], PAIRS[7]]).rc == RC.INVALID_INPUT  # nothing probed proves nothing
    assert summarize([]).rc == RC.INVALID_INPUT


def test_json_has_exactly_the_documented_shape() -> None:
    doc = json.loads(to_json(PAIRS))
    assert list(doc) == ["cells", "correct", "wrong"]
    assert (doc["correct"], doc["wrong"]) == (4, 2)
    keys = [
        "from",
        "from_container",
        "to",
        "to_container",
        "address",
        "port",
        "proto",
        "expected",
        "observed",
        "detail",
    ]
    assert all(list(c) == keys for c in doc["cells"])
    assert doc["cells"][1] == {
        "from": "web",
        "from_container": "web-1",
        "to": "api",
        "to_container": "api-1",
        "address": "10.89.0.3",
        "port": 9999,
        "proto": "tcp",
        "expected": "block",
        "observed": "allow",
        "detail": "refused",
    }
    world = doc["cells"][6]
    assert world["observed"] is None and world["to_container"] is None and world["detail"] == "not probed"
    assert to_dict(PAIRS) == doc


def test_junit_parses_and_marks_failures_and_skips() -> None:
    root = ET.fromstring(to_junit(PAIRS))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("8", "2", "2")
    cases = suite.findall("testcase")
    assert len(cases) == len(PAIRS)
    failed = [c for c in cases if c.find("failure") is not None]
    assert {c.find("failure").get("type") for c in failed} == {"leak", "missing"}  # type: ignore[union-attr]
    assert "expected block, observed allow (refused)" in failed[0].find("failure").get("message", "")  # type: ignore[union-attr]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(skipped) == 2 and "host's own" in skipped[1].find("skipped").get("message", "")  # type: ignore[union-attr]
    assert "[fe80::1]:5432/tcp" in cases[4].get("name", "")


def test_matrix_text_shows_rows_columns_legend_and_summary() -> None:
    text = to_text(PAIRS)
    lines = text.splitlines()
    assert "4 correct, 2 wrong, 2 not probed" in lines
    web_row = next(line for line in lines if line.strip().startswith("web/web-1"))
    assert "X↑" in web_row and "." in web_row
    api_row = next(line for line in lines if line.strip().startswith("api/api-1"))
    assert "X↓" in api_row and "~" in api_row and "-" in api_row
    assert "db-1[ll]" in text  # link-local has its own column, never merged with IPv4
    assert "host(10.89.0.1)" in text and "world(198.51.100.1)" in text
    assert "X↑ allowed, expected blocked" in text  # the legend
    assert "X↑ web/web-1 → api-1 10.89.0.3:9999/tcp: expected block, observed allow (refused)" in text
    assert "\x1b[" not in text  # no colour unless asked


def test_grid_position_with_several_cells_shows_the_worst() -> None:
    pairs = [
        (cell("web", "api", 80, A, address="10.89.0.3"), ProbeResult(A, "connected")),
        (cell("web", "api", 80, A, address="10.90.0.3"), ProbeResult(B, "timeout")),  # second network
    ]
    rows, cols, marks = grid(pairs)
    assert rows == ["web/web-1"] and cols == ["api-1:80/tcp"]
    assert marks[("web/web-1", "api-1:80/tcp")] is Mark.MISSING
    assert summarize(pairs).line == "1 correct, 1 wrong"  # counts stay per cell


@pytest.mark.parametrize("name", ["db[bold]", "x[/]"])
def test_names_are_never_rich_markup(name: str) -> None:
    pairs = [(Cell("w", name, "v", name, "10.0.0.1", 1, "tcp", A, netns=NS), ProbeResult(A, "connected"))]
    assert name in to_text(pairs, title=f"t {name}")
