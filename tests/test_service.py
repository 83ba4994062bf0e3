"""The exported service on a real dbus-daemon, checked at the wire level from a raw client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BUSITEM
from aggbatt.venus.service import ServiceNameTakenError, VeService
from aggbatt.venus.wire import unit_formatter
from tests.conftest import wait_until

NAME = "com.victronenergy.battery.test"


async def raw_call(
    bus: MessageBus,
    path: str,
    member: str,
    signature: str = "",
    body: list[object] | None = None,
    interface: str | None = BUSITEM,
) -> Message:
    reply = await bus.call(
        Message(
            destination=NAME,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
        )
    )
    assert reply is not None
    return reply


@pytest.fixture
async def service(bus_address: str) -> AsyncIterator[VeService]:
    accepted: list[tuple[str, object]] = []

    def only_small(path: str, value: object) -> bool:
        accepted.append((path, value))
        return isinstance(value, int) and value < 10

    svc = await VeService.connect(NAME, bus_address)
    svc.add_path("/DeviceInstance", 7)
    svc.add_path("/ProductId", 0xB00B)
    svc.add_path("/Dc/0/Voltage", 52.414, formatter=unit_formatter("V", 2))
    svc.add_path("/Dc/0/Current", -75.3)
    svc.add_path("/TimeToGo", None)
    svc.add_path("/System/MinVoltageCellId", "battery1:C3")
    svc.add_path("/CustomName", "", writable=True, description="user's name")
    svc.add_path("/Mode", 3, writable=True, on_change=only_small)
    svc.add_path("/Big", 2**40)
    await svc.register()
    yield svc
    await svc.close()


async def test_leaf_get_value_and_text_types(service: VeService, raw_bus: MessageBus) -> None:
    reply = await raw_call(raw_bus, "/Dc/0/Voltage", "GetValue")
    assert reply.signature == "v"
    assert reply.body[0].signature == "d"
    assert reply.body[0].value == pytest.approx(52.414)
    reply = await raw_call(raw_bus, "/Dc/0/Voltage", "GetText")
    assert (reply.signature, reply.body) == ("s", ["52.41V"])
    reply = await raw_call(raw_bus, "/TimeToGo", "GetValue")
    assert (reply.body[0].signature, reply.body[0].value) == ("ai", [])
    assert (await raw_call(raw_bus, "/TimeToGo", "GetText")).body == ["---"]
    assert (await raw_call(raw_bus, "/ProductId", "GetText")).body == ["0xB00B"]
    assert (await raw_call(raw_bus, "/DeviceInstance", "GetValue")).body[0].signature == "i"
    assert (await raw_call(raw_bus, "/Big", "GetValue")).body[0].signature == "x"
    reply = await raw_call(raw_bus, "/CustomName", "GetDescription", "si", ["en", 0])
    assert reply.body == ["user's name"]


async def test_calls_without_interface_are_answered(
    service: VeService, raw_bus: MessageBus
) -> None:
    reply = await raw_call(raw_bus, "/Dc/0/Current", "GetValue", interface=None)
    assert reply.message_type == MessageType.METHOD_RETURN
    assert reply.body[0].value == -75.3
    reply = await raw_call(raw_bus, "/", "GetItems", interface=None)
    assert "/Dc/0/Current" in reply.body[0]


async def test_node_get_value_has_relative_keys(service: VeService, raw_bus: MessageBus) -> None:
    reply = await raw_call(raw_bus, "/Dc", "GetValue")
    assert reply.signature == "v"
    assert reply.body[0].signature == "a{sv}"
    tree = reply.body[0].value
    assert set(tree) == {"0/Voltage", "0/Current"}
    assert tree["0/Current"] == Variant("d", -75.3)
    root = (await raw_call(raw_bus, "/", "GetValue")).body[0].value
    assert "Dc/0/Voltage" in root and "DeviceInstance" in root
    assert root["TimeToGo"].signature == "ai"


async def test_node_get_text_is_a_variant_of_string_dict(
    service: VeService, raw_bus: MessageBus
) -> None:
    reply = await raw_call(raw_bus, "/Dc/0", "GetText")
    assert reply.signature == "v"
    assert reply.body[0].signature == "a{ss}"
    assert reply.body[0].value == {"Voltage": "52.41V", "Current": "-75.3"}


async def test_get_items_has_absolute_keys_value_and_text(
    service: VeService, raw_bus: MessageBus
) -> None:
    reply = await raw_call(raw_bus, "/", "GetItems")
    assert reply.signature == "a{sa{sv}}"
    items = reply.body[0]
    assert set(items) == set(service.paths())
    assert items["/Dc/0/Voltage"]["Value"] == Variant("d", 52.414)
    assert items["/Dc/0/Voltage"]["Text"] == Variant("s", "52.41V")
    assert items["/TimeToGo"]["Text"] == Variant("s", "---")
    assert items["/System/MinVoltageCellId"]["Value"] == Variant("s", "battery1:C3")


async def test_get_items_only_on_root(service: VeService, raw_bus: MessageBus) -> None:
    reply = await raw_call(raw_bus, "/Dc", "GetItems")
    assert reply.message_type == MessageType.ERROR
    reply = await raw_call(raw_bus, "/Nope", "GetValue")
    assert reply.message_type == MessageType.ERROR


async def test_set_value_codes(service: VeService, raw_bus: MessageBus) -> None:
    assert (
        await raw_call(raw_bus, "/Dc/0/Voltage", "SetValue", "v", [Variant("d", 1.0)])
    ).body == [1]
    assert service["/Dc/0/Voltage"] == 52.414
    assert (
        await raw_call(raw_bus, "/CustomName", "SetValue", "v", [Variant("s", "Bank")])
    ).body == [0]
    assert service["/CustomName"] == "Bank"
    assert (await raw_call(raw_bus, "/Mode", "SetValue", "v", [Variant("i", 42)])).body == [2]
    assert service["/Mode"] == 3
    assert (await raw_call(raw_bus, "/Mode", "SetValue", "v", [Variant("i", 4)])).body == [0]
    assert service["/Mode"] == 4
    # unchanged value: accepted without asking the callback
    assert (await raw_call(raw_bus, "/Mode", "SetValue", "v", [Variant("i", 4)])).body == [0]
    # an empty array invalidates a writable path
    assert (await raw_call(raw_bus, "/CustomName", "SetValue", "v", [Variant("ai", [])])).body == [
        0
    ]
    assert service["/CustomName"] is None


async def test_introspection_lists_children(service: VeService, raw_bus: MessageBus) -> None:
    iface = "org.freedesktop.DBus.Introspectable"
    root = (await raw_call(raw_bus, "/", "Introspect", interface=iface)).body[0]
    assert '<node name="Dc"/>' in root and '<node name="System"/>' in root
    assert "GetItems" in root
    node = (await raw_call(raw_bus, "/Dc/0", "Introspect", interface=iface)).body[0]
    assert '<node name="Voltage"/>' in node and '<node name="Current"/>' in node
    leaf = (await raw_call(raw_bus, "/Dc/0/Voltage", "Introspect", interface=iface)).body[0]
    assert "SetValue" in leaf and "<node name=" not in leaf.split("</interface>")[-1]


class SignalRecorder:
    """Collects every BusItem signal from one sender on a raw connection."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, msg: Message) -> None:
        if msg.message_type == MessageType.SIGNAL and msg.interface == BUSITEM:
            self.messages.append(msg)

    async def attach(self, bus: MessageBus) -> None:
        bus.add_message_handler(self)
        await busmod.add_match(bus, f"type='signal',interface='{BUSITEM}'")


async def test_publish_sends_one_items_changed_with_changed_paths_only(
    service: VeService, raw_bus: MessageBus
) -> None:
    rec = SignalRecorder()
    await rec.attach(raw_bus)
    changed = service.publish({"/Dc/0/Voltage": 53.0, "/Dc/0/Current": -75.3, "/TimeToGo": 600})
    assert changed == 2
    await wait_until(lambda: len(rec.messages) >= 1)
    await asyncio.sleep(0.05)
    assert len(rec.messages) == 1
    msg = rec.messages[0]
    assert (msg.member, msg.path, msg.signature) == ("ItemsChanged", "/", "a{sa{sv}}")
    assert msg.flags & MessageFlag.NO_REPLY_EXPECTED
    assert set(msg.body[0]) == {"/Dc/0/Voltage", "/TimeToGo"}
    assert msg.body[0]["/Dc/0/Voltage"] == {
        "Value": Variant("d", 53.0),
        "Text": Variant("s", "53.00V"),
    }
    # nothing changed: nothing sent
    assert service.publish({"/Dc/0/Voltage": 53.0}) == 0
    # a type change is a change (int 600 -> float 600.0)
    assert service.publish({"/TimeToGo": 600.0}) == 1


async def test_lone_update_sends_properties_changed_on_its_path(
    service: VeService, raw_bus: MessageBus
) -> None:
    rec = SignalRecorder()
    await rec.attach(raw_bus)
    service["/Dc/0/Current"] = 10.0
    service["/Dc/0/Current"] = 10.0  # unchanged, not sent
    service["/TimeToGo"] = None  # unchanged
    await wait_until(lambda: len(rec.messages) >= 1)
    await asyncio.sleep(0.05)
    assert len(rec.messages) == 1
    msg = rec.messages[0]
    assert (msg.member, msg.path, msg.signature) == ("PropertiesChanged", "/Dc/0/Current", "a{sv}")
    assert msg.flags & MessageFlag.NO_REPLY_EXPECTED
    assert msg.body[0] == {"Value": Variant("d", 10.0), "Text": Variant("s", "10.0")}


async def test_paths_added_and_removed_at_runtime_are_announced(
    service: VeService, raw_bus: MessageBus
) -> None:
    rec = SignalRecorder()
    await rec.attach(raw_bus)
    service.add_paths({"/Voltages/Cell1": 3.301, "/Voltages/Cell2": 3.302})
    await wait_until(lambda: len(rec.messages) >= 1)
    assert set(rec.messages[0].body[0]) == {"/Voltages/Cell1", "/Voltages/Cell2"}
    reply = await raw_call(raw_bus, "/Voltages", "GetValue")
    assert reply.body[0].value == {"Cell1": Variant("d", 3.301), "Cell2": Variant("d", 3.302)}
    service.remove_paths(["/Voltages/Cell1", "/Voltages/Cell2", "/NotThere"])
    await wait_until(lambda: len(rec.messages) >= 2)
    gone = rec.messages[1].body[0]
    assert gone["/Voltages/Cell1"] == {"Value": Variant("ai", []), "Text": Variant("s", "")}
    assert (await raw_call(raw_bus, "/Voltages", "GetValue")).message_type == MessageType.ERROR
    items = (await raw_call(raw_bus, "/", "GetItems")).body[0]
    assert "/Voltages/Cell1" not in items


async def test_name_is_claimed_only_at_register_and_never_queued(bus_address: str) -> None:
    first = await VeService.connect(NAME, bus_address)
    first.add_path("/DeviceInstance", 1)
    probe = await busmod.connect(bus_address)
    assert await busmod.get_name_owner(probe, NAME) is None
    await first.register()
    assert await busmod.get_name_owner(probe, NAME) == first.bus.unique_name
    second = await VeService.connect(NAME, bus_address)
    with pytest.raises(ServiceNameTakenError):
        await second.register()
    await first.close()
    # the refused one did not wait in the queue: the name is free once the first leaves
    await asyncio.sleep(0.05)
    assert await busmod.get_name_owner(probe, NAME) is None
    await second.close()
    probe.disconnect()


async def test_paths_are_checked(bus_address: str) -> None:
    svc = await VeService.connect(NAME, bus_address)
    svc.add_path("/Dc/0/Voltage", 1.0)
    with pytest.raises(ValueError):
        svc.add_path("/Dc/0/Voltage", 1.0)
    with pytest.raises(ValueError):
        svc.add_path("/Dc/0", 1.0)
    with pytest.raises(ValueError):
        svc.add_path("/Dc/0/Voltage/x", 1.0)
    for bad in ("Dc", "/", "/Dc/", "/Dc//0"):
        with pytest.raises(ValueError):
            svc.add_path(bad, 1)
    await svc.close()
