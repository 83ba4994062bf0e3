"""The shell on a broken or hostile bus: never silently gone, never blocked, never fooled.

Each test names the failure it was written for; all run on private dbus-daemons.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message

from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.battery import SimSerialBattery
from aggbatt.sim.localsettings import FakeLocalSettings
from aggbatt.sim.privatebus import PrivateBus
from aggbatt.venus import bus as busmod
from aggbatt.venus.wire import unwrap
from tests.conftest import start_daemon_process, wait_until

SERVICE = "com.victronenergy.battery.aggbatt"
CONFIG = """
[batteries]
expected = 1
[control.own]
max_charge_current = 100.0
[daemon]
log_level = "INFO"
log_period = 0
"""


class System:
    """Simulated localsettings and one pack on a bus, started and dropped together."""

    def __init__(self) -> None:
        self.settings: FakeLocalSettings | None = None
        self.pack = SimSerialBattery("ttyUSB0", 1, soc=0.5)

    async def start(self, address: str, settings: bool = True) -> System:
        if settings:
            self.settings = await FakeLocalSettings.start(address, {FEED_IN_PATH: 1})
        await self.pack.start(address)
        return self

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.pack.stop()
        if self.settings is not None:
            with contextlib.suppress(Exception):
                await self.settings.close()


async def published(address: str) -> dict[str, Any] | None:
    """Our service as a consumer reads it (GetItems), or None while it is not on the bus."""
    try:
        bus = await busmod.connect(address)
    except OSError:
        return None
    try:
        body = await busmod.call(bus, SERVICE, "/", "GetItems", timeout=2.0)
    except busmod.BusCallError:
        return None
    finally:
        bus.disconnect()
    return {p: unwrap(e["Value"]) for p, e in body[0].items()}


async def on_the_bus(address: str, within: float) -> float:
    """Seconds until our service answers GetItems; fails after ``within``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if await published(address) is not None:
            return time.monotonic() - t0
        await asyncio.sleep(0.05)
    raise AssertionError(f"{SERVICE} not on the bus within {within} s")


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)


async def test_a_restarted_dbus_daemon_ends_the_process_and_the_service_comes_back(
    tmp_path: Path,
) -> None:
    """Before: the process ran on with its service gone from the bus, logging nothing."""
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    with PrivateBus() as private:
        address = private.socket_address
        system = await System().start(address)
        proc = await start_daemon_process(
            address, config, tmp_path / "state", stderr=asyncio.subprocess.PIPE
        )
        try:
            await on_the_bus(address, within=10)
            await system.stop()
            private.restart()
            assert await asyncio.wait_for(proc.wait(), 5) == 3  # noticed, not silent
            assert proc.stderr is not None
            log = (await proc.stderr.read()).decode()
            assert log.count("connection is lost") == 1, log
            # issue 21: one line, and no traceback of a task nobody awaited
            assert "never retrieved" not in log and "Traceback" not in log, log
            # daemontools starts it again; the packs and settings are back too
            system = await System().start(address)
            proc = await start_daemon_process(address, config, tmp_path / "state")
            assert await on_the_bus(address, within=5) < 5
        finally:
            await stop_process(proc)
            await system.stop()


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe{not utf-8", b"\x00" * 10, b'{"version": 2, "charge_ah": 1e999}'],
)
def test_a_state_file_that_is_not_utf8_is_kept_aside_not_a_crash_loop(
    tmp_path: Path, content: bytes
) -> None:
    """Before: one stray byte in state.json crashed every start (UnicodeDecodeError)."""
    from aggbatt.core.stored import State
    from aggbatt.state import STATE_FILE, load_state

    (tmp_path / STATE_FILE).write_bytes(content)
    loaded = load_state(tmp_path, time.time())
    assert loaded.state == State() and loaded.source == "defaults (corrupt)"
    assert (tmp_path / (STATE_FILE + ".corrupt")).read_bytes() == content


def test_a_state_or_config_that_is_a_fifo_or_a_device_is_refused_at_once(tmp_path: Path) -> None:
    """Before: a FIFO hung the start, /dev/zero ate gigabytes."""
    import os

    from aggbatt.config import ConfigError, load_config
    from aggbatt.state import STATE_FILE, load_state

    fifo = tmp_path / STATE_FILE
    os.mkfifo(fifo)
    loaded = load_state(tmp_path, time.time())  # returns, does not block
    assert loaded.source == "defaults (corrupt)" and "regular" in loaded.problem
    config_fifo = tmp_path / "c.toml"
    os.mkfifo(config_fifo)
    for path in (config_fifo, Path("/dev/zero")):
        with pytest.raises(ConfigError, match="not a regular file"):
            load_config(path)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (2 * 1024 * 1024))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(big)


def test_a_config_with_a_bom_is_read_and_one_not_utf8_is_named(tmp_path: Path) -> None:
    """Before: a BOM gave a cryptic TOML error, a Latin-1 file a traceback."""
    from aggbatt.config import ConfigError, load_config

    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf[batteries]\nexpected = 2\n")
    assert load_config(bom).batteries.expected == 2
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[service]\ncustom_name = "Batterie \xe9t\xe9"\n')
    with pytest.raises(ConfigError) as err:
        load_config(latin)
    assert str(latin) in str(err.value) and "not UTF-8" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_failed_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    """Before: a full disk left a 0-byte .state.json.<pid>.tmp behind."""
    from unittest import mock

    from aggbatt.core.stored import State
    from aggbatt.state import save_state

    with (
        mock.patch("os.write", side_effect=OSError(28, "No space left on device")),
        pytest.raises(OSError),
    ):
        save_state(tmp_path, State(charge_ah=1.0))
    assert list(tmp_path.iterdir()) == []


def test_the_counter_start_is_logged_and_a_migrated_charge_is_kept() -> None:
    """Before: a state without installed capacity restarted the counter from the BMS SoC
    silently (stored 25 %, published the BMS's 80 %)."""
    from aggbatt.core.coulomb import start_counter

    migrated = start_counter(280.0, 70.0, None, 80.0)
    assert migrated.soc == pytest.approx(25.0)
    assert "migrated" in migrated.event and "70.0 Ah" in migrated.event
    fresh = start_counter(280.0, None, None, 80.0)
    assert fresh.soc == pytest.approx(80.0) and "BMS SoC 80.0 %" in fresh.event


def test_nan_in_a_temperature_curve_is_refused_by_check() -> None:
    """Before: NaN inside a curve passed `aggbatt check` and disabled the cold derating."""
    from aggbatt.config import ConfigError, validate_config

    curve = [0.0, float("nan"), 5.0, 10.0, 40.0, 45.0, 50.0, 55.0]
    with pytest.raises(ConfigError, match="finite"):
        validate_config({"temperature": {"charge_temperatures": curve}})


# --- scans never block and never half-trust --------------------------------------------------


async def hung_service(address: str, name: str) -> Any:
    """A peer that owns a battery name and never answers a method call."""
    from dbus_fast import MessageType, NameFlag

    bus = await busmod.connect(address)
    bus.add_message_handler(lambda m: True if m.message_type == MessageType.METHOD_CALL else None)
    await bus.request_name(name, NameFlag.DO_NOT_QUEUE)
    return bus


async def test_a_hung_peer_never_delays_registration(bus_address: str, tmp_path: Path) -> None:
    """Before: one hung service delayed registration by 70 s (sequential 10 s timeouts)."""
    from aggbatt.config import validate_config
    from aggbatt.daemon import Daemon

    hung = await hung_service(bus_address, "com.victronenergy.battery.hung")
    system = await System().start(bus_address)
    config = validate_config({"batteries": {"expected": 1, "product_names": []}})
    daemon = Daemon(config, tmp_path, bus_address)
    t0 = time.monotonic()
    runner = asyncio.ensure_future(daemon.run())
    try:
        seconds = await on_the_bus(bus_address, within=5)
        assert seconds < 5, seconds
        assert daemon.result is not None and len(daemon.result.aggregate.batteries) == 1
    finally:
        daemon.stop()
        await asyncio.wait_for(runner, 5)
        hung.disconnect()
        await system.stop()
    assert time.monotonic() - t0 < 10


async def test_a_pack_that_answers_slowly_once_is_merged_whole_after_a_retry(
    bus_address: str, tmp_path: Path
) -> None:
    """Before: its scan timed out, a partial legacy read was merged: capacity from its
    remaining Ah, and no BMS limit (bank CCL 100 A where that pack allows 20 A)."""
    from aggbatt.config import validate_config
    from aggbatt.daemon import Daemon
    from aggbatt.venus.client import SCAN_TIMEOUT

    system = await System().start(bus_address)
    slow = SimSerialBattery("ttyUSB1", 2, soc=0.5, capacity_ah=280.0)
    slow.forced["/Info/MaxChargeCurrent"] = 20.0
    await slow.start(bus_address)
    assert slow.service is not None
    first = [True]
    loop = asyncio.get_running_loop()
    service = slow.service

    def answer(msg: Any) -> None:
        reply = service._on_message(msg)
        assert isinstance(reply, Message)
        service.bus.send(reply)

    def late_first_scan(msg: Any) -> Any:
        if msg.member == "GetItems" and first[0]:
            first[0] = False  # answered after the scan timeout, once
            loop.call_later(SCAN_TIMEOUT + 1.0, answer, msg)
            return True
        return None

    service.bus._user_message_handlers.insert(0, late_first_scan)
    config = validate_config(
        {"batteries": {"expected": 2}, "control": {"own": {"max_charge_current": 300.0}}}
    )
    daemon = Daemon(config, tmp_path, bus_address)
    runner = asyncio.ensure_future(daemon.run())
    try:
        await on_the_bus(bus_address, within=5)
        assert daemon.result is not None
        assert [b.installed_ah for b in daemon.result.aggregate.batteries] == [280.0]
        await wait_until(
            lambda: daemon.result is not None and len(daemon.result.aggregate.batteries) == 2,
            timeout=15,
        )
        slow_pack = next(b for b in daemon.result.aggregate.batteries if b.key == slow.name)
        assert slow_pack.installed_ah == 280.0 and slow_pack.bms_ccl == 20.0
        items = await published(bus_address)
        assert items is not None and items["/Info/MaxChargeCurrent"] <= 40.0 + 1e-6
    finally:
        daemon.stop()
        await asyncio.wait_for(runner, 5)
        await slow.stop()
        await system.stop()


async def test_sigterm_is_honoured_within_a_second_while_waiting_for_a_pack(
    bus_address: str, tmp_path: Path
) -> None:
    """Before: SIGTERM waited as long as the slowest scan (70 s with a hung peer)."""
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    hung = await hung_service(bus_address, "com.victronenergy.battery.hung")
    proc = await start_daemon_process(bus_address, config, tmp_path / "state")
    try:
        await asyncio.sleep(1.5)  # started, scanning the hung peer, no valid pack
        assert proc.returncode is None
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 5)
        assert time.monotonic() - t0 < 1.0
    finally:
        await stop_process(proc)
        hung.disconnect()


# --- late services are welcome ------------------------------------------------------------------


async def test_localsettings_that_arrives_late_brings_feed_in_and_the_vrm_instance(
    bus_address: str, tmp_path: Path
) -> None:
    """Before: without localsettings at start, feed-in protection stayed off for the life of
    the process (a cut with OvervoltageFeedIn left at 1), and no DeviceInstance was allocated."""
    from aggbatt.config import validate_config
    from aggbatt.daemon import Daemon

    system = await System().start(bus_address, settings=False)
    config = validate_config(
        {"batteries": {"expected": 1}, "control": {"own": {"max_charge_current": 100.0}}}
    )
    daemon = Daemon(config, tmp_path, bus_address)
    runner = asyncio.ensure_future(daemon.run())
    try:
        assert await on_the_bus(bus_address, within=5) < 5
        system.pack.set_cell_offset(2, 0.3)  # a cut, and nobody to switch feed-in off yet
        settings = await FakeLocalSettings.start(
            bus_address,
            {
                FEED_IN_PATH: 1,
                "/Settings/Devices/aggbatt/ClassAndVrmInstance": "battery:100",
            },
        )
        system.settings = settings
        await wait_until(lambda: settings[FEED_IN_PATH] == 0, timeout=5)
        items = await published(bus_address)
        assert items is not None and items["/DeviceInstance"] == 100
        # localsettings restarts, with feed-in on again: managed again at once
        await settings.close()
        settings = await FakeLocalSettings.start(
            bus_address,
            {FEED_IN_PATH: 1, "/Settings/Devices/aggbatt/ClassAndVrmInstance": "battery:100"},
        )
        system.settings = settings
        await wait_until(lambda: settings[FEED_IN_PATH] == 0, timeout=5)
    finally:
        daemon.stop()
        await asyncio.wait_for(runner, 10)
        await system.stop()


async def test_waiting_for_a_first_pack_says_why_the_packs_on_the_bus_are_left_out(
    bus_address: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bank of 24-cell packs with the shipped 16-cell config: aggbatt stays off the bus
    (rule 13) and says which pack is left out and why."""
    import logging

    from aggbatt.config import validate_config
    from aggbatt.daemon import Daemon

    pack = SimSerialBattery("ttyUSB0", 1, cells=24, soc=0.5)
    await pack.start(bus_address)
    daemon = Daemon(validate_config({}), tmp_path, bus_address)
    with caplog.at_level(logging.WARNING, logger="aggbatt"):
        runner = asyncio.ensure_future(daemon.run())
        await wait_until(lambda: "no valid pack" in caplog.text, timeout=5)
        daemon.stop()
        await asyncio.wait_for(runner, 5)
        await pack.stop()
    assert "24 cells, the bank is configured for 16" in caplog.text
    assert await published(bus_address) is None
