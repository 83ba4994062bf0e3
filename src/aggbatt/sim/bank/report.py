"""The simulator's report: a picture per scenario and controller, and a verdict table.

matplotlib is an optional extra (``pip install aggbatt[sim]``), never installed on a GX;
without it the report is the table alone, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aggbatt.sim.bank.run import EXPORT_CHECK, Result

CHECKS = (
    "cells within the BMS cut-offs",
    "pack currents within their BMS limits",
    "no charge below 0 °C",
    "SoC within 2 points of the truth",
    "a due balancing completes",
    "feed-in restored after every episode",
    "no pack charged unseen",
    "charging never stopped for nothing",
    EXPORT_CHECK,
)


def verdict(result: Result, check: str) -> str:
    c = result.checks.get(check)
    if c is None or not c.applies:
        return "n/a"
    return "pass" if c.ok else "**FAIL**"


def table(results: Sequence[Result], titles: dict[str, str]) -> str:
    """Markdown: one row per scenario, aggbatt and the reference side by side per invariant."""
    by = {(r.scenario, r.controller): r for r in results}
    scenarios = list(dict.fromkeys(r.scenario for r in results))
    short = ["cut-offs", "pack ≤ BMS limit", "no charge < 0 °C", "SoC ±2", "balancing ends",
             "feed-in restored", "none charged unseen", "no needless stop",
             "export kept"]  # fmt: skip
    head = (
        "| scenario | days | " + " | ".join(short)
        + " | feed-in writes/day | kWh/day exported (curtailed) | left on |"
    )  # fmt: skip
    lines = [head, "|" + "---|" * (len(short) + 5)]
    for name in scenarios:
        ours = by.get((name, "aggbatt")) or by.get((name, "aggbatt (bus)"))
        ref = by.get((name, "reference"))
        cells = []
        for check in CHECKS:
            a = verdict(ours, check) if ours else "-"
            b = verdict(ref, check) if ref else "-"
            cells.append(f"{a} / {b}")
        runs = [r for r in (ours, ref) if r is not None]
        days = runs[0].days if runs else 0.0
        writes = " / ".join(f"{r.feed_in_writes / max(r.days, 1e-9):.1f}" for r in runs)
        energy = " / ".join(
            f"{r.per_day(r.exported_kwh):.1f} ({r.per_day(r.curtailed_kwh):.1f})" for r in runs
        )
        base = ours.baseline_kwh if ours is not None else None
        left_on = f"{ours.per_day(base):.1f}" if ours is not None and base is not None else "-"
        lines.append(
            f"| {titles.get(name, name)} | {days:g} | " + " | ".join(cells)
            + f" | {writes} | {energy} | {left_on} |"
        )  # fmt: skip
    return (
        "\n".join(lines)
        + "\n\nEach cell: aggbatt / the reference. Energy: PV exported a day (and curtailed: "
        'the chargers throttled); "left on" is what aggbatt\'s bank exports with feed-in left '
        "as the user set it (measured where the export must be kept).\n"
    )


def failures(results: Sequence[Result]) -> list[str]:
    return [
        f"{r.scenario} ({r.controller}): {name}: {c.detail}"
        for r in results
        for name, c in r.checks.items()
        if c.applies and not c.ok
    ]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").replace("--", "-")


def plot(result: Result, path: Path) -> bool:
    """Draw one run; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    tr = result.trace
    hours = [t / 3600.0 for t in tr.t]
    fig, axes = plt.subplots(6, 1, figsize=(11, 15), sharex=True)
    ax = axes[0]
    for name in tr.cell_max:
        ax.plot(hours, tr.cell_max[name], label=f"{name} max cell")
        ax.plot(hours, tr.cell_min[name], linestyle=":", label=f"{name} min cell")
    low, high = result.cutoffs
    ax.axhline(high, color="red", linestyle="--", label=f"BMS cut-off {high:g} V")
    ax.set_ylim(max(low - 0.1, min(min(v) for v in tr.cell_min.values()) - 0.05), high + 0.05)
    ax.set_ylabel("cell V")
    ax.legend(loc="lower right", fontsize=7, ncol=2)
    ax = axes[1]
    ax.plot(hours, tr.cvl, label="CVL", color="tab:red")
    ax.plot(hours, tr.bank_voltage, label="bank voltage", color="tab:blue")
    ax.set_ylabel("V")
    ax.legend(loc="lower right", fontsize=7)
    ax = axes[2]
    ax.plot(hours, tr.ccl, label="CCL", color="tab:red")
    ax.plot(hours, tr.bank_current, label="bank current", color="tab:blue")
    ax.set_ylabel("A")
    ax.legend(loc="upper right", fontsize=7)
    ax = axes[3]
    for name in tr.pack_current:
        line = ax.plot(hours, tr.pack_current[name], label=f"{name} current")
        ax.plot(hours, tr.pack_ccl[name], linestyle="--", color=line[0].get_color(),
                label=f"{name} BMS limit")  # fmt: skip
    ax.set_ylabel("A")
    ax.legend(loc="upper right", fontsize=7, ncol=2)
    ax = axes[4]
    ax.plot(hours, tr.true_soc, label="true SoC", color="black")
    published = [float("nan") if v is None else v for v in tr.published_soc]
    ax.plot(hours, published, label="published SoC", color="tab:green")
    ax.fill_between(hours, 0, [100 * f for f in tr.feed_in], color="tab:orange", alpha=0.15,
                    step="post", label="feed-in on")  # fmt: skip
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.legend(loc="lower right", fontsize=7)
    ax = axes[5]
    ax.plot(hours, [w / 1000.0 for w in tr.export_w], label="PV exported", color="tab:purple")
    ax.fill_between(hours, 0, [max(tr.export_w, default=0.0) / 1000.0 * f for f in tr.feed_in],
                    color="tab:orange", alpha=0.15, step="post", label="feed-in on")  # fmt: skip
    ax.set_ylabel("kW")
    ax.set_xlabel("hours")
    ax.legend(loc="upper right", fontsize=7)
    passed = "all invariants hold" if result.passed else "; ".join(
        f"{n}: FAIL" for n, c in result.checks.items() if c.applies and not c.ok
    )  # fmt: skip
    fig.suptitle(f"{result.scenario}: {result.controller} ({passed})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return True


def write_report(
    results: Sequence[Result], titles: dict[str, str], found: dict[str, str], folder: Path
) -> Path:
    """``folder/report.md`` with the table, what each scenario shows, and the pictures."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = all(plot(r, folder / f"{r.scenario}-{_slug(r.controller)}.png") for r in results)
    lines = ["# aggbatt simulate: verdicts", "", table(results, titles)]
    if not drawn:
        lines.append("(No pictures: install the optional extra, `pip install aggbatt[sim]`.)\n")
    failed = failures(results)
    lines += ["## Failures", ""] + [f"- {f}" for f in failed] + ([] if failed else ["none"])
    for name in dict.fromkeys(r.scenario for r in results):
        lines += ["", f"## {titles.get(name, name)}", "", found.get(name, ""), ""]
        for r in results:
            if r.scenario == name:
                events = "; ".join(line.strip() for line in r.log[:6])
                lines.append(f"- {r.controller}: {'pass' if r.passed else 'FAIL'}"
                             + (f" (log: {events})" if events else ""))  # fmt: skip
        if drawn:
            lines.append("")
            lines += [f"![{name} {r.controller}]({name}-{_slug(r.controller)}.png)"
                      for r in results if r.scenario == name]  # fmt: skip
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
