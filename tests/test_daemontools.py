"""Life on a GX under real daemontools (Debian's package): install, an upgrade while running,
a stop, and an uninstall, in a fake /data root, against a private bus with a simulated pack and
localsettings. ``./dev`` installs daemontools."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.battery import SimSerialBattery
from aggbatt.sim.localsettings import FakeLocalSettings
from aggbatt.venus import bus as busmod
from tests.conftest import wait_until

ROOT_DIR = Path(__file__).resolve().parents[1]
SERVICE = "com.victronenergy.battery.aggbatt"


async def script(path: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "bash", str(path), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 600)
    return proc.returncode or 0, out.decode()


async def on_bus(address: str) -> bool:
    bus = await busmod.connect(address)
    try:
        await busmod.call(bus, SERVICE, "/", "GetItems", timeout=2.0)
        return True
    except busmod.BusCallError:
        return False
    finally:
        bus.disconnect()


async def until(condition: Any, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, f"not within {timeout} s"
        await asyncio.sleep(0.25)


def processes(session: int) -> list[str]:
    """The command lines of the processes in svscan's session."""
    out = subprocess.run(
        ["ps", "-eww", "-o", "sid,args"], capture_output=True, text=True, check=True
    )
    rows = (line.strip().split(None, 1) for line in out.stdout.splitlines()[1:])
    return [r[1] for r in rows if len(r) == 2 and r[0] == str(session)]


async def test_install_upgrade_stop_and_uninstall_under_daemontools(
    bus_address: str, tmp_path: Path
) -> None:
    assert shutil.which("svscan"), "daemontools is missing: ./dev installs it (apt daemontools)"
    root = tmp_path / "venus"
    for folder in ("data", "service", "var/log/aggbatt"):
        (root / folder).mkdir(parents=True)
    env = {
        **os.environ,
        "ROOT": str(root),
        "AGGBATT_BUS": bus_address,
        "AGGBATT_LOG": str(root / "var/log/aggbatt"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    settings = await FakeLocalSettings.start(bus_address, {FEED_IN_PATH: 1})
    pack = SimSerialBattery("ttyUSB0", 1, soc=0.5, temperature_c=-2.0)
    await pack.start(bus_address)
    svscan = await asyncio.create_subprocess_exec(
        "svscan", str(root / "service"), env=env, start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    app = root / "data" / "apps" / "aggbatt"
    try:
        code, out = await script(ROOT_DIR / "install.sh", env, "--yes")
        assert code == 0, out
        await until(lambda: on_bus(bus_address), 60)  # svscan's 5 s scan, the check, the start
        # the pack at -2 °C: charging stops, and only feed-in off stops the solar chargers
        await wait_until(lambda: settings[FEED_IN_PATH] == 0, timeout=10)
        config, state = (app / "config.toml").read_bytes(), app / "state" / "state.json"
        await wait_until(state.exists, timeout=10)

        code, out = await script(ROOT_DIR / "install.sh", env)  # again, while running
        assert code == 0 and "updated" in out, out
        await until(lambda: on_bus(bus_address), 30)
        running = processes(svscan.pid)
        assert sum("supervise aggbatt" in p for p in running) == 1, running
        assert sum("supervise log" in p for p in running) == 1, running
        assert sum("-m aggbatt run" in p for p in running) == 1, running
        assert (app / "config.toml").read_bytes() == config
        await wait_until(lambda: (root / "var/log/aggbatt/current").stat().st_size > 0, 10)
        logged = subprocess.run(
            [str(app / "aggbatt"), "log", "5"], env=env, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        assert logged.returncode == 0 and "aggbatt" in logged.stdout

        stopped = subprocess.run(["svc", "-d", str(root / "service" / "aggbatt")], check=False)
        assert stopped.returncode == 0
        await until(lambda: _not(on_bus(bus_address)), 10)
        assert settings[FEED_IN_PATH] == 1  # written back before it left the bus (rule 11)

        code, out = await script(app / "uninstall.sh", env)
        assert code == 0, out
        assert not (root / "service" / "aggbatt").exists()
        await wait_until(lambda: not any("aggbatt" in p for p in processes(svscan.pid)), 15)
        assert "/data/apps/aggbatt/enable.sh" not in (root / "data" / "rc.local").read_text()
        assert (root / "var" / "log" / "aggbatt" / "current").read_text()  # multilog wrote
    finally:
        os.killpg(svscan.pid, signal.SIGTERM)  # svscan, every supervise, the daemon
        await svscan.wait()
        await pack.stop()
        await settings.close()


async def _not(check: Any) -> bool:
    return not await check
