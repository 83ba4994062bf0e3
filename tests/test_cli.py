"""The CLI on a GX that is not as it should be: one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def aggbatt(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggbatt", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("command", ["status", "doctor"])
@pytest.mark.parametrize("bus", ["unix:path=/nonexistent/bus", "nonsense:x=1"])
def test_no_bus_is_one_line_not_a_traceback(command: str, bus: str) -> None:
    """Before: FileNotFoundError and InvalidAddressError tracebacks."""
    proc = aggbatt(command, "--bus", bus)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot use D-Bus" in lines[0] and bus in lines[0]


def test_a_closed_pipe_ends_quietly() -> None:
    """Before: `aggbatt check ... | head` ended in BrokenPipeError."""
    proc = subprocess.run(
        f"{sys.executable} -m aggbatt check --config {ROOT / 'config.toml'} | head -1",
        shell=True, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.stdout.strip().endswith("valid")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_a_broken_installation_names_the_missing_import() -> None:
    """Before: a venv without pydantic made the run script say the config was not valid."""
    code = (
        "import sys, runpy; sys.modules['pydantic'] = None; "
        "runpy.run_module('aggbatt', run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "check", "--config", "config.toml"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 4
    assert "Traceback" not in proc.stderr
    assert "cannot import pydantic" in proc.stderr and "install.sh" in proc.stderr
