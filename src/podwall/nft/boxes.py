"""Disjoint decomposition of labelled boxes.

nftables interval sets (and concatenations of ranges) refuse overlapping elements. Flows overlap freely
(`8000-9000/tcp` and `8080/tcp`; `10.0.0.0/8` and `10.1.0.0/16`), so the grants of one key are cut into
disjoint boxes whose union is exactly the union of the inputs. Each output box carries the smallest label
(the first flow, by position in the policy) among the boxes that cover it, so counters attribute a packet
to one flow deterministically. Adjacent boxes with identical contents are merged.
"""

from __future__ import annotations

from collections.abc import Sequence

Range = tuple[int, int]
Box = tuple[tuple[Range, ...], int]


def disjoint(boxes: Sequence[Box], axis: int = 0) -> list[Box]:
    if not boxes:
        return []
    ndim = len(boxes[0][0])
    points = sorted({b[0][axis][0] for b in boxes} | {b[0][axis][1] + 1 for b in boxes})
    starts: dict[int, list[Box]] = {}
    for b in boxes:
        starts.setdefault(b[0][axis][0], []).append(b)
    active: list[Box] = []
    merged: list[tuple[int, int, tuple[Box, ...] | int]] = []
    for lo, nxt in zip(points, points[1:], strict=False):
        hi = nxt - 1
        # sweep: boxes starting here join; boxes that ended before `lo` leave
        active = [b for b in active if b[0][axis][1] >= lo] + starts.get(lo, [])
        if not active:
            continue
        sub: tuple[Box, ...] | int
        if axis == ndim - 1:
            sub = min(b[1] for b in active)
        else:
            sub = tuple(disjoint(active, axis + 1))
        if merged and merged[-1][1] + 1 == lo and merged[-1][2] == sub:
            merged[-1] = (merged[-1][0], hi, sub)
        else:
            merged.append((lo, hi, sub))
    out: list[Box] = []
    for lo, hi, sub in merged:
        if isinstance(sub, int):
            out.append((((lo, hi),), sub))
        else:
            out.extend((((lo, hi), *ranges), label) for ranges, label in sub)
    return out
