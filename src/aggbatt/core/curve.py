"""Piecewise-linear curves: a factor looked up from a voltage or a temperature."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def interpolate(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """y at ``x`` on the polyline (xs, ys); flat beyond both ends.

    ``xs`` must be strictly ascending and as long as ``ys`` (the config checks both at load, so
    unlike the reference nothing here can exit the program on a bad list).
    """
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
