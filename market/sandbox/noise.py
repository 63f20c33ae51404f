"""Calibrated noise for sandbox results under an epsilon budget (OpenDP's Laplace mechanisms).

The privacy unit is one row of the table. A query spends ``epsilon`` in all; the groups of
a ``GROUP BY`` are disjoint, so each row touches one group and the query's epsilon is
shared only among its noisy figures: one per ``COUNT`` and ``SUM``, two per ``AVG``
(released as a noisy sum over a noisy count). Counts have sensitivity 1 and get discrete
Laplace noise; sums have the largest magnitude a clamped value can take (the measure's
``bounds``, applied when the table is loaded) and get continuous Laplace noise. Which
groups exist is not noised: it is guarded by the minimum group size instead
(docs/usage.md, "Threat model").
"""

from collections.abc import Mapping
from typing import Any

import opendp.prelude as dp

from market.sandbox.engine import Result
from market.sandbox.rules import Checked

dp.enable_features("contrib")


def figures(checked: Checked) -> int:
    """How many noisy figures one group of this query releases."""
    return sum({"count": 1, "count_distinct": 1, "sum": 1, "avg": 2}.get(a or "", 0) for a in checked.aggregates)


def _count_noise(scale: float) -> Any:
    return dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)


def _sum_noise(scale: float) -> Any:
    return dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale)


def add_noise(result: Result, checked: Checked, epsilon: float,
              bounds: Mapping[str, tuple[float, float]]) -> list[list[Any]]:
    """The result's rows with every aggregate noised so that the whole query spends ``epsilon``."""
    k = figures(checked)
    if k == 0:
        return [list(row) for row in result.rows]
    share = epsilon / k
    count_mech = _count_noise(1.0 / share)
    sum_mechs = {m: _sum_noise(max(abs(lo), abs(hi)) / share) for m, (lo, hi) in bounds.items()}
    rows = []
    for row, n in zip(result.rows, result.row_counts, strict=True):
        out = list(row)
        for i, aggregate in enumerate(checked.aggregates):
            if aggregate in ("count", "count_distinct"):
                out[i] = max(0, int(count_mech(int(row[i]))))
            elif aggregate == "sum":
                out[i] = float(sum_mechs[_measure(checked, i)](float(row[i] or 0.0)))
            elif aggregate == "avg":
                total = float(sum_mechs[_measure(checked, i)](float(row[i] or 0.0) * n))
                noisy_n = max(1, int(count_mech(n)))
                out[i] = total / noisy_n
        rows.append(out)
    return rows


def _measure(checked: Checked, index: int) -> str:
    measure = checked.measures[index]
    assert measure is not None  # the rules give every SUM and AVG its measure
    return measure
