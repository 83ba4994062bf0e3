"""Choosing and opening a bus connection, and the few raw bus calls every role needs."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

log = logging.getLogger(__name__)

BUSITEM = "com.victronenergy.BusItem"
VICTRON_PREFIX = "com.victronenergy."
DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
CALL_TIMEOUT = 10.0


class BusCallError(Exception):
    """A method call answered with a D-Bus error."""

    def __init__(self, error_name: str, text: str) -> None:
        super().__init__(f"{error_name}: {text}")
        self.error_name = error_name
        self.text = text


def resolve_bus(choice: str | None = None) -> tuple[BusType, str | None]:
    """Map ``--bus system|session|ADDRESS`` to a bus type and optional address.

    Without a choice velib's rule applies: the session bus when ``DBUS_SESSION_BUS_ADDRESS`` is
    set (a test or demo bus), the system bus otherwise (Venus).
    """
    if choice is None:
        choice = "session" if os.environ.get("DBUS_SESSION_BUS_ADDRESS") else "system"
    if choice == "system":
        return BusType.SYSTEM, None
    if choice == "session":
        return BusType.SESSION, None
    return BusType.SESSION, choice


async def connect(choice: str | None = None) -> MessageBus:
    """Open a new connection (each exported service and each monitor owns its own)."""
    bus_type, address = resolve_bus(choice)
    bus = MessageBus(bus_address=address, bus_type=bus_type)
    return await bus.connect()


async def call(
    bus: MessageBus,
    destination: str,
    path: str,
    member: str,
    signature: str = "",
    body: list[Any] | None = None,
    interface: str | None = BUSITEM,
    timeout: float = CALL_TIMEOUT,
) -> list[Any]:
    """Call a method and return the reply body.

    A D-Bus error reply, a lost connection or no answer within ``timeout`` seconds raise
    BusCallError, so a hung peer can never hang its caller.
    """
    message = Message(
        destination=destination,
        path=path,
        interface=interface,
        member=member,
        signature=signature,
        body=body or [],
    )
    try:
        reply = await asyncio.wait_for(bus.call(message), timeout)
    except TimeoutError:
        raise BusCallError("timeout", f"{destination}{path} {member}: no answer") from None
    except (OSError, EOFError) as exc:
        raise BusCallError("disconnected", str(exc)) from exc
    if reply is None:
        raise BusCallError("no-reply", f"{destination}{path} {member}")
    if reply.message_type == MessageType.ERROR:
        detail = reply.body[0] if reply.body else ""
        raise BusCallError(reply.error_name or "unknown", str(detail))
    return list(reply.body)


async def add_match(bus: MessageBus, rule: str) -> None:
    await call(bus, DBUS_NAME, DBUS_PATH, "AddMatch", "s", [rule], interface=DBUS_NAME)


async def remove_match(bus: MessageBus, rule: str) -> None:
    await call(bus, DBUS_NAME, DBUS_PATH, "RemoveMatch", "s", [rule], interface=DBUS_NAME)


async def list_names(bus: MessageBus) -> list[str]:
    body = await call(bus, DBUS_NAME, DBUS_PATH, "ListNames", interface=DBUS_NAME)
    return list(body[0])


async def get_name_owner(bus: MessageBus, name: str) -> str | None:
    try:
        body = await call(bus, DBUS_NAME, DBUS_PATH, "GetNameOwner", "s", [name], DBUS_NAME)
    except BusCallError:
        return None
    return str(body[0])


def quiet_lost_connection(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An event loop exception handler for a process whose bus connection may be lost.

    When a connection breaks, dbus-fast fails the futures of every message still queued
    (the sends behind its method calls included, which nobody awaits): each would be logged
    as "Future exception was never retrieved" with a traceback. The loss itself is reported
    once by whoever watches the connection; those go to the debug log, anything else to
    asyncio's default handler.
    """
    exc = context.get("exception")
    unretrieved = "never retrieved" in str(context.get("message", ""))
    if unretrieved and isinstance(exc, OSError | EOFError):
        log.debug("after a lost connection: %s (%r)", context.get("message"), exc)
        return
    loop.default_exception_handler(context)


class Tasks:
    """The background tasks of one bus piece: kept until they end, cancelled when it closes
    (an event loop holds only weak references to tasks)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def finish(self, timeout: float) -> None:
        """Let each running task end (at most ``timeout`` each); what fails is only logged."""
        for task in list(self._tasks):
            try:
                await asyncio.wait_for(task, timeout)
            except Exception:
                log.debug("a task ended with an error at close", exc_info=True)


async def disconnect(bus: MessageBus, what: str) -> None:
    """Close a connection and wait until it is closed; one that died already is closed all
    the same (said at debug level only)."""
    bus.disconnect()
    try:
        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
    except Exception:
        log.debug("the bus of %s closed with an error", what, exc_info=True)


async def first_lost(buses: dict[str, MessageBus]) -> tuple[str, BaseException | None]:
    """Wait until one of the connections ends: (its name, why).

    The waits are shielded, so that cancelling this one never cancels dbus-fast's own
    disconnect future (a close still awaits it), and what each wait ends with is read, so
    that a lost connection leaves no "never retrieved" traceback at exit.
    """
    waits = {}
    for name, bus in buses.items():
        inner = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        inner.add_done_callback(_retrieved)
        waits[asyncio.shield(inner)] = name
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:  # both connections may have ended at once: read each
            wait.cancel() if not wait.done() else _retrieved(wait)
    first = next(iter(done))
    return waits[first], (first.exception() if not first.cancelled() else None)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
