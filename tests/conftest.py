"""Shared fixtures: a private dbus-daemon per test, and a helper to await a condition."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from dbus_fast.aio import MessageBus

from aggbatt.sim.privatebus import PrivateBus
from aggbatt.venus import bus as busmod

RECORDINGS = Path(__file__).resolve().parent / "fixtures" / "recordings"
BCT = RECORDINGS / "bct"


@pytest.fixture
def bus_address() -> Iterator[str]:
    """Address of a fresh dbus-daemon that lives for one test."""
    with PrivateBus() as private:
        yield private.address


@pytest.fixture
async def raw_bus(bus_address: str) -> AsyncIterator[MessageBus]:
    """A plain dbus-fast connection, to look at the wire as any consumer would."""
    bus = await busmod.connect(bus_address)
    yield bus
    bus.disconnect()


async def wait_until(
    condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005
) -> None:
    """Await ``condition()`` becoming true; fails the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def start_daemon_process(
    address: str, config: Path, state_dir: Path, stderr: int | None = None
) -> asyncio.subprocess.Process:
    """``aggbatt run`` as its own process on a private bus."""
    argv = ["run", "--config", str(config), "--state-dir", str(state_dir), "--bus", address]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aggbatt",
        *argv,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr or asyncio.subprocess.DEVNULL,
    )
