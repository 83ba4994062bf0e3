"""``aggbatt run`` as a process: bad config, SIGTERM mid-episode, restart continuity."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aggbatt.core.stored import State
from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.battery import SimSerialBattery
from aggbatt.sim.localsettings import FakeLocalSettings
from aggbatt.state import save_state
from aggbatt.venus import bus as busmod
from aggbatt.venus.wire import unwrap
from tests.conftest import start_daemon_process, wait_until

SERVICE = "com.victronenergy.battery.aggbatt"


def write_config(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", "[control.own]\nmax_cell_voltage = 55.2\n")
    argv = ["run", "--config", str(config), "--bus", "unix:path=/nonexistent"]
    proc = subprocess.run(
        [sys.executable, "-m", "aggbatt", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "control.own.max_cell_voltage = 55.2" in proc.stderr
    assert "per-cell voltage" in proc.stderr
    typo = write_config(tmp_path / "t.toml", "[batteries]\nexpectd = 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "aggbatt", "check", "--config", str(typo)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "did you mean batteries.expected?" in proc.stderr
    good = subprocess.run(
        [sys.executable, "-m", "aggbatt", "check", "--config", "config.toml"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert good.returncode == 0 and "valid" in good.stdout


async def _published(address: str) -> dict[str, object] | None:
    bus = await busmod.connect(address)
    try:
        body = await busmod.call(bus, SERVICE, "/", "GetItems")
    except busmod.BusCallError:
        return None
    finally:
        bus.disconnect()
    return {p: unwrap(e["Value"]) for p, e in body[0].items()}


async def test_sigterm_mid_episode_then_restart_restores_feed_in_and_keeps_the_counter(
    bus_address: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "c.toml",
        "[batteries]\nexpected = 1\n[soc]\nown = true\n[control.own]\nmax_charge_current = 100.0\n"
        '[daemon]\nlog_level = "INFO"\n',
    )
    state_dir = tmp_path / "state"
    save_state(state_dir, State(charge_ah=70.0, installed_ah=280.0))  # 25 %, the BMS says 50 %
    settings = await FakeLocalSettings.start(bus_address, {FEED_IN_PATH: 1})
    pack = SimSerialBattery("ttyUSB0", 1, soc=0.5)
    await pack.start(bus_address)
    proc = await start_daemon_process(bus_address, config, state_dir)
    try:
        published: dict[str, object] = {}

        async def poll() -> None:
            for _ in range(200):
                got = await _published(bus_address)
                if got is not None:
                    published.update(got)
                    return
                await asyncio.sleep(0.05)

        await poll()
        assert published["/Soc"] == 25.0  # restored counter, not the BMS's SoC
        # the daemon never speaks TLS: OpenSSL is not in its memory (aggbatt.lean)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libssl" not in maps and "libcrypto" not in maps
        pack.set_cell_offset(2, 0.3)  # over-voltage episode: feed-in off
        await wait_until(lambda: settings[FEED_IN_PATH] == 0, timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        # rule 11: the user's value is back before the service left the bus
        assert settings[FEED_IN_PATH] == 1
        assert await _published(bus_address) is None  # deregistered cleanly
        stored = json.loads((state_dir / "state.json").read_text())
        assert stored["feed_in_original"] is None
        # one peaking cell is not a full bank: the counter kept its count, and it is saved
        assert stored["charge_ah"] == pytest.approx(70.0, abs=0.5)
        # the cell is still high at the restart: feed-in goes off again, the value is kept
        proc = await start_daemon_process(bus_address, config, state_dir)
        await wait_until(lambda: settings[FEED_IN_PATH] == 0, timeout=10)
        published.clear()
        await poll()
        assert published["/Soc"] == pytest.approx(25.0, abs=0.2)  # continuous: the saved counter
        stored = json.loads((state_dir / "state.json").read_text())
        assert stored["feed_in_original"] == 1
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 10)
        await pack.stop()
        await settings.close()
