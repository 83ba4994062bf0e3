"""Replay of the real bct recording: every value back from the bus, value for value, typed."""

from __future__ import annotations

import math

import pytest
from dbus_fast.aio import MessageBus

from aggbatt.sim.replay import Replayer, load_recording, load_system, parse_value
from aggbatt.venus import bus as busmod
from aggbatt.venus.client import Monitor
from tests.conftest import BCT, wait_until


def test_parse_value_types() -> None:
    assert parse_value("UINT16", "41957") == (41957, "q")
    assert parse_value("DOUBLE", "-75.30000305175781") == (-75.30000305175781, "d")
    assert parse_value("ARRAY", "[]") == (None, None)
    assert parse_value("ARRAY[UINT32]", "[0, 1]") == ([0, 1], "au")
    assert parse_value("STRING", "1/1") == ("1/1", "s")


def test_load_bct() -> None:
    recordings = {r.name: r for r in load_system(BCT)}
    assert len(recordings) == 9
    lynx = recordings["com.victronenergy.battery.socketcan_can0_vi0_uc231681"]
    assert lynx.initial["/ProductId"].signature == "q"
    assert lynx.initial["/ProductId"].text == "0xA3E5"
    assert lynx.initial["/HardwareVersion"].value is None
    assert lynx.last_tick > 500
    assert load_recording(BCT / "lynxparallel.csv").state_at(0)["/Soc"] == pytest.approx(
        83.51, abs=0.01
    )


async def test_replay_reads_back_value_for_value(bus_address: str, raw_bus: MessageBus) -> None:
    recordings = load_system(BCT)
    replayer = Replayer(recordings)
    await replayer.start(bus_address)
    # initial state, with the recorded wire types and texts
    for rec in recordings:
        items = (await busmod.call(raw_bus, rec.name, "/", "GetItems"))[0]
        assert set(items) == set(rec.initial)
        for path, r in rec.initial.items():
            value = items[path]["Value"]
            if r.value is None:
                assert value.signature[0] == "a" and not value.value
            else:
                assert value.signature == r.signature, path
                assert value.value == r.value, path
            if r.text is not None:
                assert items[path]["Text"].value == r.text
    # then every tick, watched by the monitor through signals only
    monitor = await Monitor.connect(bus_address)
    await monitor.start()
    last = max(r.last_tick for r in recordings)
    for tick in range(1, last + 1):
        replayer.play_tick(tick)
    final = {r.name: r.state_at(last) for r in recordings}

    def caught_up() -> bool:
        return all(
            monitor.services[name].values.get(p) == v
            for name, state in final.items()
            for p, v in state.items()
            if not (isinstance(v, float) and math.isnan(v))
        )

    await wait_until(caught_up, timeout=20)
    for name, state in final.items():
        assert monitor.services[name].values == state
    await monitor.close()
    await replayer.stop()
