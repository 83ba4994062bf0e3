"""How much of the time a pack's cells are received live (rule 4), in the bank simulator.

``python -m bench cellband [--days N]``

The daemon receives a pack's cell signals only while its summary is near a threshold
(:mod:`aggbatt.core.cellwatch`); the rest of the time it pays what a summary-only listener
pays. How much that saves over a day depends on how long the cells spend in the band, which
this measures: the sunny week and the winter month of ``./dev simulate``, aggbatt's
controller and default thresholds, each pack's highest and lowest cell every 120 s of
simulated time (the trace), each band counted on its own. Periods of a cut, block or latch
(every pack watched) are inside the high band already. Raw figures go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from aggbatt.core.cellwatch import BAND_V, LEAVE_MARGIN_V, CellBand, cell_band
from aggbatt.sim.bank.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ("sunny-week", "winter-month")


def watched_share(band: CellBand, highs: list[float], lows: list[float]) -> float:
    """The share of samples with the pack's cells watched (the leave hysteresis included)."""
    watched, was = 0, False
    for h, lo in zip(highs, lows, strict=True):
        was = band.near(h, lo, LEAVE_MARGIN_V if was else 0.0)
        watched += was
    return round(watched / max(1, len(highs)), 3)


def shares(
    band: CellBand, knee_v: float, highs: list[float], lows: list[float]
) -> dict[str, float]:
    """The share of samples in each band, and watched: with today's band, and with a band
    around the charge curve's knee added (which rule 4 leaves out, for this figure)."""
    n = max(1, len(highs))
    knee = [abs(h - knee_v) <= BAND_V for h in highs]
    with_knee = [k or band.near(h, lo) for k, h, lo in zip(knee, highs, lows, strict=True)]
    return {
        "top": round(sum(h >= band.high for h in highs) / n, 3),
        "empty": round(sum(lo <= band.low for lo in lows) / n, 3),
        "knee": round(sum(knee) / n, 3),
        "watched": watched_share(band, highs, lows),
        "watched_with_a_knee_band": round(sum(with_knee) / n, 3),
    }


def measure(days: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"scenarios": []}
    for scenario in SCENARIOS:
        if scenario.name not in MEASURED:
            continue
        controller = scenario.aggbatt()
        band = cell_band(controller.config, attentive=False)
        volts, factors = controller.config.control.own.charge_curve
        knee_v = max(v for v, f in zip(volts, factors, strict=True) if f == max(factors))
        started = time.monotonic()
        result = scenario.run(controller, days=days or scenario.days)
        trace = result.trace
        packs = {
            name: shares(band, knee_v, trace.cell_max[name], trace.cell_min[name])
            for name in trace.cell_max
        }
        out["scenarios"].append(
            {
                "scenario": scenario.name,
                "days": result.days,
                "band": {"top": band.high, "empty": band.low, "knee": knee_v},
                "packs": packs,
                "run_s": round(time.monotonic() - started, 1),
            }
        )
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cellband")
    parser.add_argument("--days", type=float, help="shorter runs (default: each scenario's)")
    args = parser.parse_args(argv)
    report = measure(args.days)
    text = json.dumps(report, indent=1)
    print(text)
    day = time.strftime("%Y-%m-%d")
    (ROOT / "bench" / "results" / f"cellband-{day}.json").write_text(text + "\n")
    return 0
