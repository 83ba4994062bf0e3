"""Fault campaigns: flapping packs, garbage, SIGKILL during state writes, settings outages,
config fuzz. Bounded in time; CI runs the short form, ``AGGBATT_SOAK=1`` the long one
(10 minutes of flapping, 200 daemon kills).

Invariants checked throughout: the service stays on the bus; every published number is finite;
the CVL is always valid; CCL and DCL are never negative; the state file is always readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggbatt.config import ConfigError, validate_config
from aggbatt.core.safety import FEED_IN_RESTORE_AFTER_S
from aggbatt.daemon import Daemon
from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.battery import SimSerialBattery
from aggbatt.sim.localsettings import FakeLocalSettings
from aggbatt.state import load_state
from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BUSITEM
from aggbatt.venus.wire import unwrap
from tests.conftest import start_daemon_process, wait_until

SOAK = os.environ.get("AGGBATT_SOAK") == "1"
SERVICE = "com.victronenergy.battery.aggbatt"


class Watcher:
    """Polls the published service and records every broken invariant."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.problems: list[str] = []
        self.reads = 0

    async def run(self, stop: asyncio.Event) -> None:
        bus = await busmod.connect(self.address)
        try:
            while not stop.is_set():
                await asyncio.sleep(0.1)
                try:
                    body = await busmod.call(bus, SERVICE, "/", "GetItems", timeout=2.0)
                except busmod.BusCallError as exc:
                    self.problems.append(f"service not answering: {exc}")
                    continue
                self.reads += 1
                self.check({p: unwrap(e["Value"]) for p, e in body[0].items()})
        finally:
            bus.disconnect()

    def check(self, items: dict[str, Any]) -> None:
        for path, value in items.items():
            if isinstance(value, float) and not math.isfinite(value):
                self.problems.append(f"{path} = {value}")
        cvl = items.get("/Info/MaxChargeVoltage")
        if not isinstance(cvl, float) or cvl <= 0:
            self.problems.append(f"CVL invalid: {cvl!r}")
        for path in ("/Info/MaxChargeCurrent", "/Info/MaxDischargeCurrent"):
            if not isinstance(items.get(path), float) or items[path] < 0:
                self.problems.append(f"{path} = {items.get(path)!r}")


async def _campaign(address: str, tmp: Path, duration: float, act: Any) -> tuple[Daemon, Watcher]:
    config = validate_config({"batteries": {"expected": 3}, "daemon": {"log_period": 0}})
    settings_service = await FakeLocalSettings.start(address, {FEED_IN_PATH: 1})
    packs = [SimSerialBattery(f"ttyUSB{i}", i + 1, soc=0.5 + 0.1 * i) for i in range(3)]
    for pack in packs:
        await pack.start(address)
    daemon = Daemon(config, tmp, address)
    runner = asyncio.ensure_future(daemon.run())
    await wait_until(lambda: daemon.service is not None and daemon.service.registered)
    stop = asyncio.Event()
    watcher = Watcher(address)
    watching = asyncio.ensure_future(watcher.run(stop))
    try:
        await act(packs, duration)
    finally:
        stop.set()
        await watching
        assert not runner.done(), "the daemon stopped"
        daemon.stop()
        await runner
        for pack in packs:
            await pack.stop()
        await settings_service.close()
    return daemon, watcher


async def test_flapping_batteries(bus_address: str, tmp_path: Path) -> None:
    rng = random.Random(7)

    async def flap(packs: list[SimSerialBattery], duration: float) -> None:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            pack = packs[rng.randrange(1, 3)]  # pack 1 stays: the bank never empties
            if pack.service is None:
                await pack.start(bus_address)
            else:
                await pack.stop()
            for p in packs:
                p.current_a = rng.uniform(-50, 50)
                p.step(1.0)
            await asyncio.sleep(rng.uniform(0.05, 0.5))

    daemon, watcher = await _campaign(bus_address, tmp_path, 600.0 if SOAK else 15.0, flap)
    assert watcher.problems == []
    assert watcher.reads > 50
    assert daemon.cycles > 50


async def test_garbage_on_every_path(bus_address: str, tmp_path: Path) -> None:
    rng = random.Random(11)
    junk: list[Any] = [
        None,
        math.nan,
        -math.inf,
        math.inf,
        "x",
        "",
        True,
        False,
        -1,
        10**12,
        -1e300,
        3.3,
        [1],
        {"a": 1},
    ]

    async def spray(packs: list[SimSerialBattery], duration: float) -> None:
        bad = packs[2]
        assert bad.service is not None
        identity = ("/Mgmt", "/ProductName", "/DeviceInstance", "/Serial", "/CustomName")
        paths = [p for p in bad.service.paths() if not p.startswith(identity)]
        end = time.monotonic() + duration
        while time.monotonic() < end:
            bad.forced.clear()
            for path in rng.sample(paths, 5):
                bad.forced[path] = rng.choice(junk)
            bad.republish()
            await asyncio.sleep(rng.uniform(0.005, 0.05))

    daemon, watcher = await _campaign(bus_address, tmp_path, 120.0 if SOAK else 10.0, spray)
    assert watcher.problems == []
    assert daemon.cycles > 20


WRITER = """
import sys
from pathlib import Path
from aggbatt.state import State, save_state
folder = Path(sys.argv[1])
i = 0
while True:
    i += 1
    save_state(folder, State(charge_ah=float(i), installed_ah=280.0))
"""


def test_sigkill_while_writing_state_never_corrupts_it(tmp_path: Path) -> None:
    """200 kills at random moments of a process that does nothing but write the state."""
    rng = random.Random(3)
    last = 0.0
    for _ in range(200):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
        time.sleep(rng.uniform(0.05, 0.12))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        loaded = load_state(tmp_path, time.time())
        if loaded.source == "defaults (missing)":
            continue  # killed before its first write
        assert loaded.source == "file", loaded.problem
        assert loaded.state.charge_ah is not None and loaded.state.charge_ah >= 1.0
        last = loaded.state.charge_ah
    assert last > 0
    assert not (tmp_path / "state.json.corrupt").exists()


async def test_sigkilled_daemon_keeps_its_counter_within_save_precision(
    bus_address: str, tmp_path: Path
) -> None:
    """The daemon itself, killed at random moments: the counter never jumps at a restart."""
    config = tmp_path / "c.toml"
    config.write_text("[batteries]\nexpected = 1\n[soc]\nown = true\nsave_precision = 0.0001\n")
    settings_service = await FakeLocalSettings.start(bus_address, {FEED_IN_PATH: 1})
    pack = SimSerialBattery("ttyUSB0", 1, soc=0.3)
    await pack.start(bus_address)
    bus = await busmod.connect(bus_address)
    rng = random.Random(5)
    precision_ah = 0.0001 * 280.0
    try:
        for _ in range(200 if SOAK else 8):
            proc = await start_daemon_process(bus_address, config, tmp_path)
            seen: float | None = None
            for _ in range(100):
                with contextlib.suppress(busmod.BusCallError):
                    body = await busmod.call(bus, SERVICE, "/Capacity", "GetValue", timeout=1.0)
                    seen = unwrap(body[0])
                    break
                await asyncio.sleep(0.05)
            assert seen is not None, "the daemon did not come up"
            pack.current_a = rng.uniform(-100, 100)
            pack.step(1.0)
            await asyncio.sleep(rng.uniform(0.05, 1.5))
            body = await busmod.call(bus, SERVICE, "/Capacity", "GetValue", timeout=1.0)
            before_kill = unwrap(body[0])
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            stored = json.loads((tmp_path / "state.json").read_text())["charge_ah"]
            # the counter integrates at most ~100 A x 0.1 s between our read and the kill
            assert abs(stored - before_kill) <= precision_ah + 100 * 0.1 / 3600 + 0.01
    finally:
        bus.disconnect()
        await pack.stop()
        await settings_service.close()


async def test_settings_service_leaving_and_returning(bus_address: str, tmp_path: Path) -> None:
    config = validate_config(  # 50 A: the pack's own BMS limit (serialbattery's default)
        {  # is then no reduction
            "batteries": {"expected": 1},
            "control": {"own": {"max_charge_current": 50.0}},
            "daemon": {"log_period": 0},
        }
    )
    settings_service = await FakeLocalSettings.start(bus_address, {FEED_IN_PATH: 1})
    pack = SimSerialBattery("ttyUSB0", 1)
    await pack.start(bus_address)
    offset = [0.0]
    daemon = Daemon(config, tmp_path, bus_address, mono_clock=lambda: time.monotonic() + offset[0])
    runner = asyncio.ensure_future(daemon.run())
    await wait_until(lambda: daemon.service is not None and daemon.service.registered)
    await settings_service.close()
    pack.set_cell_offset(2, 0.3)  # an episode while localsettings is gone
    for _ in range(5):
        await asyncio.sleep(0.05)
        daemon.cycle()
    assert not runner.done()
    assert daemon.result is not None and daemon.result.limits.feed_in_off
    back = await FakeLocalSettings.start(bus_address, {FEED_IN_PATH: 1})

    def feed_in_is(value: int) -> bool:
        daemon.cycle()
        return bool(back[FEED_IN_PATH] == value)

    await wait_until(lambda: feed_in_is(0), timeout=5)
    pack.set_cell_offset(2, 0.0)
    await asyncio.sleep(0.05)
    daemon.cycle()
    offset[0] = FEED_IN_RESTORE_AFTER_S + 1.0  # the hold time of rule 1 passes
    pack.current_a = 0.5
    pack.step(1.0)  # fresh values, so the jump does not make the pack look frozen
    await asyncio.sleep(0.05)
    await wait_until(lambda: feed_in_is(1), timeout=5)
    daemon.stop()
    await runner
    await pack.stop()
    await back.close()


# --- config fuzz ---------------------------------------------------------------------------

VALID: dict[tuple[str, ...], Any] = {
    ("batteries", "expected"): st.integers(0, 64),
    ("batteries", "cells_per_battery"): st.integers(1, 64),
    ("batteries", "block_policy"): st.sampled_from(["any", "all"]),
    ("batteries", "stale_after"): st.floats(5, 3600),
    ("batteries", "include"): st.lists(
        st.one_of(
            st.integers(0, 999),
            st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8),
        )
    ),
    ("current", "source"): st.sampled_from(["bms", "victron", "smartshunt"]),
    ("current", "smartshunts"): st.one_of(st.booleans(), st.lists(st.integers(0, 999))),
    ("soc", "efficiency"): st.floats(0.5, 1.0),
    ("control", "mode"): st.sampled_from(["own", "passthrough"]),
    ("control", "own", "max_charge_current"): st.floats(0, 10000),
    ("control", "own", "balancing_repetition_days"): st.floats(1, 365),
    ("control", "own", "charge_voltage_per_month"): st.lists(  # LFP, balancing reachable
        st.floats(2.5, 3.435), min_size=12, max_size=12
    ),
    ("service", "device_instance"): st.integers(0, 999),
    ("daemon", "update_interval"): st.floats(0.1, 60),
    ("daemon", "log_level"): st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR"]),
}
INVALID: dict[tuple[str, ...], Any] = {
    ("batteries", "expected"): st.one_of(
        st.integers(65, 10**6), st.integers(-(10**6), -1), st.text(min_size=1), st.floats(0.5, 1.5)
    ),
    ("batteries", "cells_per_battery"): st.one_of(st.integers(max_value=0), st.integers(65)),
    ("batteries", "block_policy"): st.text().filter(lambda s: s not in ("any", "all")),
    ("soc", "efficiency"): st.one_of(
        st.floats(1.0001, 1e6), st.floats(-1e6, 0.4999), st.just(math.nan)
    ),
    ("control", "mode"): st.text().filter(lambda s: s not in ("own", "passthrough")),
    ("control", "own", "max_cell_voltage"): st.one_of(
        st.floats(4.5001, 1000), st.floats(-10, 1.4999)
    ),
    ("control", "own", "charge_voltage_per_month"): st.lists(st.floats(1.5, 4.5), max_size=11),
    ("service", "name"): st.text(max_size=20),
    ("daemon", "update_interval"): st.one_of(st.floats(60.001, 1e9), st.floats(-1e9, 0.0999)),
    ("temperature", "charge_factors"): st.lists(st.floats(0, 1), min_size=1, max_size=7),
    ("batteries", "unknown_key"): st.integers(),
}


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_config_fuzz_valid_configs_are_accepted(data: st.DataObject) -> None:
    config: dict[str, Any] = {}
    for path in data.draw(st.lists(st.sampled_from(sorted(VALID)), unique=True, max_size=6)):
        _set(config, path, data.draw(VALID[path]))
    if config.get("control", {}).get("mode") == "passthrough":
        config.setdefault("soc", {})["own"] = False
    validate_config(config)  # must not raise


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(INVALID)), st.data())
def test_config_fuzz_invalid_values_are_refused_naming_the_key(
    path: tuple[str, ...], data: st.DataObject
) -> None:
    value = data.draw(INVALID[path])
    if path == ("service", "name") and str(value).startswith("com.victronenergy.battery."):
        return
    config: dict[str, Any] = {}
    _set(config, path, value)
    try:
        validate_config(config, "config.toml")
    except ConfigError as exc:
        assert ".".join(path) in str(exc) or ".".join(path[:-1]) + ":" in str(exc), str(exc)
    else:
        raise AssertionError(f"{'.'.join(path)} = {value!r} was accepted")


# --- hostile clients (issue: a shell that survives a broken or hostile bus) -------------------
# Each prints one figure line (pytest -s shows them); docs/benchmarks.md quotes them.


async def _bench_daemon(address: str, tmp: Path, **sections: Any) -> tuple[Daemon, Any]:
    settings_service = await FakeLocalSettings.start(address, {FEED_IN_PATH: 1})
    data: dict[str, Any] = {"batteries": {"expected": 1}, "daemon": {"log_period": 0}}
    data.update(sections)
    daemon = Daemon(validate_config(data), tmp, address)
    runner = asyncio.ensure_future(daemon.run())
    await wait_until(lambda: daemon.service is not None and daemon.service.registered)
    return daemon, (runner, settings_service)


async def _end(daemon: Daemon, handles: Any) -> None:
    runner, settings_service = handles
    daemon.stop()
    await asyncio.wait_for(runner, 10)
    await settings_service.close()


async def test_a_flood_from_outside_the_bank_never_drives_the_loop(
    bus_address: str, tmp_path: Path
) -> None:
    """Before: a battery-class service not in the bank caused 750 urgent cycles a second."""
    pack = SimSerialBattery("ttyUSB0", 1)
    stranger = SimSerialBattery("ttyUSB9", 9, bms="Other")  # a battery, not a SerialBattery
    stranger.forced.update({"/ProductId": 0xA3E5, "/ProductName": "Other BMS"})
    for p in (pack, stranger):
        await p.start(bus_address)
    daemon, handles = await _bench_daemon(bus_address, tmp_path)
    try:
        before, t0 = daemon.cycles, time.monotonic()
        for i in range(1500):  # cells far over the max, 750 a second
            stranger.update({"/Voltages/Cell1": 3.7 + (i % 2) * 0.001})
            await asyncio.sleep(1 / 750)
        seconds = time.monotonic() - t0
        rate = (daemon.cycles - before) / seconds
        print(f"\nflood of 750 changes/s from outside the bank: {rate:.1f} cycles/s")
        assert rate <= 2.0  # the periodic cycle only (update_interval 1 s)
    finally:
        await _end(daemon, handles)
        for p in (pack, stranger):
            await p.stop()


async def test_an_urgent_flood_from_a_pack_is_rate_limited(
    bus_address: str, tmp_path: Path
) -> None:
    """A pack whose top cell wobbles at the max 1000 times a second: every change is urgent,
    but cycles run at most 20 a second (MIN_URGENT_INTERVAL_S) after a burst of URGENT_BURST."""
    from aggbatt.trigger import MIN_URGENT_INTERVAL_S, URGENT_BURST

    pack = SimSerialBattery("ttyUSB0", 1)
    await pack.start(bus_address)
    daemon, handles = await _bench_daemon(bus_address, tmp_path)
    try:
        before, cpu0, t0 = daemon.cycles, time.process_time(), time.monotonic()
        for i in range(2000):
            pack.update({"/Voltages/Cell3": 3.55 + (i % 2) * 0.001})
            if i % 2:
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.1)
        seconds, cpu = time.monotonic() - t0, time.process_time() - cpu0
        rate = (daemon.cycles - before) / seconds
        print(f"\nurgent flood, 2000 changes in {seconds:.1f} s: {rate:.1f} cycles/s, "
              f"{cpu / seconds:.0%} CPU (flooder included)")  # fmt: skip
        periodic = seconds + 1  # the 1 s cycles of the window
        assert daemon.cycles - before <= seconds / MIN_URGENT_INTERVAL_S + URGENT_BURST + periodic
    finally:
        await _end(daemon, handles)
        await pack.stop()


async def test_more_packs_than_expected_warn_and_never_raise_the_limit(
    bus_address: str, tmp_path: Path
) -> None:
    """Before: a pack beyond `expected` joined silently and raised the bank CCL."""
    packs = [SimSerialBattery(f"ttyUSB{i}", i + 1) for i in range(2)]
    for p in packs:
        await p.start(bus_address)
    control = {"own": {"max_charge_current": 1000.0}}
    daemon, handles = await _bench_daemon(bus_address, tmp_path, control=control)
    try:
        assert daemon.result is not None
        agg = daemon.result.aggregate
        assert agg.extra == 1 and agg.alarms["InternalFailure"] == 1
        # one expected pack of 50 A: the BMS limits of two would allow 100 A
        assert daemon.result.limits.ccl.value == pytest.approx(50.0)
        assert "expected" in daemon.result.limits.ccl.reason
    finally:
        await _end(daemon, handles)
        for p in packs:
            await p.stop()


async def test_a_service_cannot_grow_our_path_table_without_bound(
    bus_address: str, tmp_path: Path
) -> None:
    from aggbatt.venus.client import MAX_PATHS

    pack = SimSerialBattery("ttyUSB0", 1)
    await pack.start(bus_address)
    daemon, handles = await _bench_daemon(bus_address, tmp_path)
    try:
        from dbus_fast import Message, MessageType, Variant

        assert pack.service is not None
        for i in range(0, 3 * MAX_PATHS, 500):  # ever new paths, 500 per signal
            entries = {
                f"/Junk/{j}": {"Value": Variant("i", j), "Text": Variant("s", str(j))}
                for j in range(i, i + 500)
            }
            pack.service.bus.send(
                Message(
                    message_type=MessageType.SIGNAL, path="/", interface=BUSITEM,
                    member="ItemsChanged", signature="a{sa{sv}}", body=[entries],
                )
            )  # fmt: skip
        await asyncio.sleep(0.5)
        assert daemon.monitor is not None
        tracked = daemon.monitor.services[pack.name]
        assert len(tracked.values) <= MAX_PATHS and tracked.full
    finally:
        await _end(daemon, handles)
        await pack.stop()


async def test_malformed_signals_and_failing_saves_are_logged_once_per_episode(
    bus_address: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: one log line per malformed signal, and per failed save, every cycle."""
    from dbus_fast import Message, MessageType

    pack = SimSerialBattery("ttyUSB0", 1)
    await pack.start(bus_address)
    blocker = tmp_path / "state-is-a-file"
    blocker.write_text("")
    daemon, handles = await _bench_daemon(bus_address, blocker / "state")  # cannot be made
    try:
        assert pack.service is not None
        with caplog.at_level(logging.INFO):
            for _ in range(50):
                pack.service.bus.send(
                    Message(
                        message_type=MessageType.SIGNAL, path="/", interface=BUSITEM,
                        member="ItemsChanged", signature="s", body=["not a dict"],
                    )
                )  # fmt: skip
                pack.current_a += 1.0
                pack.step(1.0)
                await asyncio.sleep(0.01)
                daemon.cycle()
                daemon.keeper.save()
        text = caplog.text
        assert text.count("malformed ItemsChanged") == 1
        assert text.count("could not save the state") == 1
    finally:
        await _end(daemon, handles)
        await pack.stop()


async def test_a_client_cannot_enlarge_or_break_our_replies(
    bus_address: str, tmp_path: Path
) -> None:
    """Before: a 10 kB /CustomName and several GetItems at once made dbus-fast drop our
    connection; a NUL in a name broke every GetItems."""
    from dbus_fast import Variant

    pack = SimSerialBattery("ttyUSB0", 1)
    await pack.start(bus_address)
    daemon, handles = await _bench_daemon(bus_address, tmp_path)
    client = await busmod.connect(bus_address)
    try:
        service = "com.victronenergy.battery.aggbatt"
        for bad in ("x" * 10_000, "line\nbreak"):  # (dbus-fast cannot even send a NUL)
            code = await busmod.call(
                client, service, "/CustomName", "SetValue", "v", [Variant("s", bad)]
            )
            assert code != [0], bad[:10]
        replies = await asyncio.gather(
            *(busmod.call(client, service, "/", "GetItems") for _ in range(20))
        )
        assert all("/CustomName" in r[0] for r in replies)
        assert daemon.service is not None and daemon.service.bus.connected
    finally:
        client.disconnect()
        await _end(daemon, handles)
        await pack.stop()
