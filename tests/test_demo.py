"""The README's first command: the demo runs on its own private bus and shows changing values."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_runs_and_shows_changing_decisions() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aggbatt", "demo", "--duration", "4", "--peak-at", "60"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    frames = re.findall(r"simulated time\s+(\d+) s", out)
    assert len(frames) >= 3
    assert len(set(frames)) == len(frames)  # time moves
    assert "CVL" in out and "CCL" in out and "DCL" in out
    assert "cell C4 of pack 1 peaks" in out
    assert "Cell over-voltage: CVL cut" in out  # the core reacted to the peak
