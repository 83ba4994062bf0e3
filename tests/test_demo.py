"""The README's first command: the demo runs on its own private bus and tells the story."""

from __future__ import annotations

import itertools
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aggbatt.demo import FAULT_VISIBLE_S, SIM_SPEED, DemoOptions, alarm_text


def demo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggbatt", "demo", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_demo_runs_and_shows_changing_decisions() -> None:
    proc = demo("--duration", "4", "--speed", "60", "--peak-at", "60")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    frames = re.findall(r"simulated time\s+(\d+) s", out)
    assert len(frames) >= 3
    assert len(set(frames)) == len(frames)  # time moves
    assert "CVL" in out and "CCL" in out and "DCL" in out
    assert "cell C4 of pack 1 peaks" in out
    assert "Cell over-voltage: CVL cut" in out  # the core reacted to the peak
    assert "packs online 2" in out and "module" not in out
    assert out.startswith("aggbatt demo on a private D-Bus")  # the header, once, on top
    assert proc.stderr == ""  # no warning about a state file the demo never had


def test_a_full_bank_keeps_feed_in_on_and_every_off_says_why() -> None:
    """Before: feed-in OFF from the start ("protective charge limit": the charge curve at 82 %
    on a top cell of 3.37 V), although the CVL held the bank."""
    proc = demo("--duration", "6", "--speed", "60", "--peak-at", "150")
    assert proc.returncode == 0, proc.stderr
    frames = re.split(r"simulated time +\d+ s", proc.stdout)[1:]
    states = [re.search(r"feed-in (on |OFF)  (.*)", f) for f in frames]
    assert all(states)
    seen = [(m.group(1).strip(), m.group(2)) for m in states if m]
    assert seen[0][0] == "on"  # the bank is full, nothing is at risk: feed-in kept
    off = [why for state, why in seen if state == "OFF"]
    assert off and all(why.strip() for why in off)
    assert any("CVL cut" in why for why in off)  # the peak: feed-in off, and why


def test_every_scripted_fault_lasts_long_enough_to_read_at_any_speed() -> None:
    """Before: at the default 60x a fault lasted 2 real seconds, and no fault was scripted
    unless asked for."""
    assert DemoOptions().checked().speed == SIM_SPEED
    for speed in (1.0, 10.0, 60.0, 600.0):
        story = DemoOptions(speed=speed).checked()
        lasting = DemoOptions.fault_s(speed)
        assert lasting / speed >= FAULT_VISIBLE_S
        times = [story.peak_at, story.pull_at, story.block_at]
        assert None not in times
        starts = sorted(t for t in times if t is not None)
        assert all(b - a >= 2 * lasting for a, b in itertools.pairwise(starts))
    quiet = DemoOptions(faults=False).checked()
    assert (quiet.peak_at, quiet.pull_at, quiet.block_at) == (None, None, None)
    one = DemoOptions(peak_at=30.0).checked()  # a flag replaces the story
    assert (one.peak_at, one.pull_at, one.block_at) == (30.0, None, None)
    assert DemoOptions(replay=True).checked().speed == 1.0


def test_alarms_are_words_with_their_level() -> None:
    values = {"/Alarms/BmsCable": 1, "/Alarms/HighCellVoltage": 2, "/Alarms/LowSoc": 0}
    assert alarm_text(values) == "BMS cable (warning), high cell voltage (alarm)"
    assert alarm_text({}) == "none"


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--batteries", "0"], "--batteries 0"),
        (["--batteries", "17"], "--batteries 17"),
        (["--cells", "2"], "--cells 2"),
        (["--speed", "-5"], "--speed -5"),
        (["--speed", "0"], "--speed 0"),
        (["--duration", "-1"], "--duration -1"),
        (["--peak-at", "-3"], "--peak-at -3"),
        (["--batteries", "1", "--pull-at", "10"], "--pull-at"),
    ],
)
def test_flags_it_cannot_run_with_are_one_line_errors(args: list[str], names: str) -> None:
    proc = demo("--duration", "1", *args, timeout=20)  # the last --duration counts
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"aggbatt demo: {names}")
    assert proc.stdout == ""


def test_replay_honours_speed_and_says_when_the_recording_starts_over() -> None:
    proc = demo("--replay", "--speed", "400", "--duration", "4")
    assert proc.returncode == 0, proc.stderr
    seconds = [int(s) for s in re.findall(r"recording second\s+(\d+) of 603", proc.stdout)]
    assert seconds[:2] == [400, 197]  # 400 recorded seconds per real second, then over again
    assert "the recording ended after 603 s: playing it again (pass 2)" in proc.stdout


def _demo_running(tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggbatt", "demo", "--no-faults"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("simulated time"):
            return proc
    raise AssertionError(f"no frame: {proc.stderr.read() if proc.stderr else ''}")


def _dbus_daemons_under(folder: Path) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "dbus-daemon" in cmd and str(folder) in cmd:
            found.append(pid)
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_remove_the_private_bus_and_folders(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """Before: only Ctrl-C cleaned up; a SIGTERM left a dbus-daemon and two folders behind."""
    proc = _demo_running(tmp_path)
    assert _dbus_daemons_under(tmp_path)
    assert any(p.name.startswith("aggbatt-") for p in tmp_path.iterdir())
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == 0
    assert _dbus_daemons_under(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_on_a_terminal_the_header_stays_on_every_screen(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggbatt", "demo", "--no-faults", "--duration", "3"],
        stdout=follower, stderr=subprocess.PIPE, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=20)
    os.close(leader)
    screens = out.decode(errors="replace").split("\x1b[H\x1b[J")[1:]
    assert len(screens) >= 2
    assert all(s.lstrip().startswith("aggbatt demo on a private D-Bus") for s in screens)
