"""Pieces of the column rules engine as they were before their faster forms, frozen ONLY as
the references those are compared with (``tests/unit/test_rules_column_pieces.py``):
``ParsedIps`` (every value through ``inet_pton``, then ``parse_ip``), ``in_cidr`` (by the
masks) and ``Template.render`` (every field formatted on every row, constant or not)."""

from __future__ import annotations

from socket import AF_INET, inet_pton
from typing import Any

import numpy as np

from processors.rules.batch import RuleBatch, object_column
from processors.rules.functions import _NO_V4, _NOT_V4, parse_ip
from processors.rules.lists import IpRanges
from processors.rules.template import Template


class ParsedIps:
    __slots__ = ("valid", "is_v4", "v4", "v6")

    def __init__(self, values: Any) -> None:
        column = values if isinstance(values, np.ndarray) else object_column([values])
        n = len(column)
        packed, self.v6 = [], object_column([None] * n)
        self.valid, self.is_v4 = np.ones(n, dtype=bool), np.ones(n, dtype=bool)
        for i, value in enumerate(column.tolist()):
            try:
                packed.append(inet_pton(AF_INET, value))
                continue
            except _NOT_V4:
                pass
            self.valid[i], v4, self.v6[i] = parse_ip(value)  # IPv6, invalid, or not a text
            self.is_v4[i] = v4 >= 0
            packed.append(v4.to_bytes(4, "big") if v4 >= 0 else _NO_V4)
        self.v4 = np.frombuffer(b"".join(packed), dtype=">u4").astype(np.uint64)


def in_cidr(ips: Any, ranges: IpRanges) -> np.ndarray:
    out = np.zeros(len(ips.valid), dtype=bool)
    if ips.is_v4.any():
        out[ips.is_v4] = ranges.contains_v4(ips.v4[ips.is_v4])
    for i in np.flatnonzero(ips.valid & ~ips.is_v4):
        out[i] = ips.v6[i] in ranges
    return out


def render(template: Template, batch: RuleBatch) -> list[str]:
    n = batch.n
    if all(isinstance(part, str) for part in template.parts):
        return ["".join(template.parts)] * n  # type: ignore[arg-type]
    columns: list[list[str]] = []
    for part in template.parts:
        if isinstance(part, str):
            columns.append([part] * n)
            continue
        value = part.node.run(batch)
        if isinstance(value, np.ndarray):  # a column, or a value broadcast to one
            values = (value if value.shape == (n,) else np.broadcast_to(value, n)).tolist()
        else:
            values = [value] * n
        if part.conversion == "r":
            values = [repr(v) for v in values]
        elif part.conversion == "s":
            values = [str(v) for v in values]
        columns.append([format(v, part.spec) for v in values])
    return list(map("".join, zip(*columns, strict=True)))
