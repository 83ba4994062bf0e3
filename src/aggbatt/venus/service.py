"""Export one ``com.victronenergy.*`` service exactly as velib_python's VeDbusService does.

Theory of operation
-------------------
One :class:`VeService` owns one bus connection and one well-known name (consumers key signals
by the sender's unique name, so two services must never share a connection). Every path lives
in a flat ``{path: Item}`` table; the tree nodes (``/``, ``/Dc``, ``/Dc/0`` ...) are derived from
it. A single message handler answers every BusItem call on every path, instead of one exported
object per path, which in dbus-fast would cost an ``InterfacesAdded`` broadcast and ~3 KiB each.

Calls answered (velib's semantics, see docs/protocol.md):

* leaf: ``GetValue -> v``, ``GetText -> s``, ``SetValue(v) -> i`` (0 ok/unchanged, 1 read-only,
  2 refused by the change callback), ``GetDescription(si) -> s``;
* node and ``/``: ``GetValue -> v(a{sv})`` and ``GetText -> v(a{ss})`` with keys relative to the
  node and no leading slash;
* ``/`` only: ``GetItems -> a{sa{sv}}`` with absolute keys;
* ``Introspect`` on ``/``, nodes and leaves; calls that carry no interface are treated as BusItem.

Updates: :meth:`VeService.publish` sends one ``ItemsChanged`` on ``/`` holding only the paths whose
value changed; assigning one path (``service[path] = v``) sends ``PropertiesChanged`` on that path.
Both go out with NO_REPLY_EXPECTED. Paths added or removed after registration are announced in
an ``ItemsChanged`` (a removed path as invalid with empty text, as localsettings does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dbus_fast import Message, MessageFlag, MessageType, NameFlag, RequestNameReply, Variant
from dbus_fast.aio import MessageBus

from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BUSITEM
from aggbatt.venus.wire import TextFormatter, Value, same_value, text, unwrap, wrap

log = logging.getLogger(__name__)

ChangeCallback = Callable[[str, Value], bool]
"""Called on a remote SetValue with (path, new value); return False to refuse (SetValue -> 2)."""

INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
_DOCTYPE = (
    '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n'
    ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n'
)
_INTROSPECT_IFACE = (
    f'  <interface name="{INTROSPECTABLE}">\n'
    '    <method name="Introspect"><arg direction="out" type="s"/></method>\n'
    "  </interface>\n"
)
_LEAF_IFACE = (
    f'  <interface name="{BUSITEM}">\n'
    '    <method name="GetValue"><arg direction="out" type="v"/></method>\n'
    '    <method name="GetText"><arg direction="out" type="s"/></method>\n'
    '    <method name="SetValue"><arg direction="in" type="v"/>'
    '<arg direction="out" type="i"/></method>\n'
    '    <method name="GetDescription"><arg direction="in" type="s"/>'
    '<arg direction="in" type="i"/><arg direction="out" type="s"/></method>\n'
    '    <signal name="PropertiesChanged"><arg type="a{sv}"/></signal>\n'
    "  </interface>\n"
)
_NODE_IFACE = (
    f'  <interface name="{BUSITEM}">\n'
    '    <method name="GetValue"><arg direction="out" type="v"/></method>\n'
    '    <method name="GetText"><arg direction="out" type="v"/></method>\n'
    "  </interface>\n"
)
_ROOT_IFACE = (
    f'  <interface name="{BUSITEM}">\n'
    '    <method name="GetValue"><arg direction="out" type="v"/></method>\n'
    '    <method name="GetText"><arg direction="out" type="v"/></method>\n'
    '    <method name="GetItems"><arg direction="out" type="a{sa{sv}}"/></method>\n'
    '    <signal name="ItemsChanged"><arg type="a{sa{sv}}"/></signal>\n'
    "  </interface>\n"
)


class ServiceNameTakenError(RuntimeError):
    """Another connection already owns the name; we never wait in the queue for it."""


@dataclass(slots=True)
class Item:
    """One leaf path: its value and how it behaves on the bus."""

    value: Value = None
    writable: bool = False
    on_change: ChangeCallback | None = None
    formatter: TextFormatter | None = None
    description: str = ""
    signature: str | None = None
    """Forced wire type (``u``, ``q`` ...); only replays of recorded services need it."""
    text_override: str | None = None
    """Text to return instead of the formatted one (replays carry the recorded text)."""

    def text(self, path: str) -> str:
        if self.text_override is not None:
            return self.text_override
        return text(path, self.value, self.formatter)

    def entry(self, path: str) -> dict[str, Variant]:
        """The ``{'Value': v, 'Text': s}`` pair of GetItems and ItemsChanged."""
        return {"Value": wrap(self.value, self.signature), "Text": Variant("s", self.text(path))}


def _check_path(path: str) -> None:
    if not path.startswith("/") or path == "/" or path.endswith("/") or "//" in path:
        raise ValueError(f"not a valid item path: {path!r}")


class VeService:
    """A velib-compatible exported service on its own bus connection.

    Create it with :meth:`connect` (or pass a connection it may own), add the paths, then
    :meth:`register`. Nothing is visible under the well-known name until then.
    """

    def __init__(self, bus: MessageBus, name: str) -> None:
        self.bus = bus
        self.name = name
        self.registered = False
        self._items: dict[str, Item] = {}
        self._children: dict[str, set[str]] = {"/": set()}
        self._dynamic: set[str] | None = None
        """The paths :meth:`sync_paths` keeps (None before its first call)."""
        bus.add_message_handler(self._on_message)

    @classmethod
    async def connect(cls, name: str, bus_choice: str | None = None) -> VeService:
        return cls(await busmod.connect(bus_choice), name)

    # --- paths ------------------------------------------------------------------------------

    def add_path(
        self,
        path: str,
        value: Value = None,
        *,
        writable: bool = False,
        on_change: ChangeCallback | None = None,
        formatter: TextFormatter | None = None,
        description: str = "",
        signature: str | None = None,
        text_override: str | None = None,
        announce: bool = True,
    ) -> None:
        """Add one leaf; after registration it is announced with ItemsChanged."""
        item = Item(value, writable, on_change, formatter, description, signature, text_override)
        self._insert(path, item)
        if self.registered and announce:
            self._send_items_changed({path: item.entry(path)})

    def add_paths(self, values: Mapping[str, Value], **options: Any) -> None:
        """Add several leaves with the same options, announced in one ItemsChanged."""
        for path, value in values.items():
            self._insert(path, Item(value, **options))
        if self.registered and values:
            self._send_items_changed({p: self._items[p].entry(p) for p in values})

    def remove_paths(self, paths: Iterable[str]) -> None:
        """Remove leaves; after registration consumers see them go invalid in one ItemsChanged."""
        gone = [p for p in paths if self._items.pop(p, None) is not None]
        if not gone:
            return
        self._rebuild_tree()
        if self.registered:
            invalid = {"Value": Variant("ai", []), "Text": Variant("s", "")}
            self._send_items_changed({p: invalid for p in gone})

    def sync_paths(
        self, values: Mapping[str, Value], dynamic: Callable[[str], bool], **options: Any
    ) -> None:
        """The paths that come and go (``dynamic``: a pack's cells) become those of
        ``values``: the new ones added, the ones no longer there removed (values not sent).
        One kind of such paths a service: after the first call, those present are known
        without a look at every path."""
        wanted = {p for p in values if dynamic(p)}
        present = self._dynamic
        if present is None:
            present = {p for p in self._items if dynamic(p)}
        if present - wanted:
            self.remove_paths(present - wanted)
        if wanted - present:
            self.add_paths({p: values[p] for p in wanted - present}, **options)
        self._dynamic = wanted

    def _insert(self, path: str, item: Item) -> None:
        _check_path(path)
        if path in self._items:
            raise ValueError(f"path {path} exists already")
        if path in self._children:
            raise ValueError(f"path {path} is a node of other paths")
        parts = path[1:].split("/")
        nodes = ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        for node in nodes:
            if node in self._items:
                raise ValueError(f"path {path} would turn the leaf {node} into a node")
        for node, child in zip(nodes, parts, strict=True):
            self._children.setdefault(node, set()).add(child)
        self._items[path] = item

    def _rebuild_tree(self) -> None:
        items = self._items
        self._items = {}
        self._children = {"/": set()}
        for path, item in items.items():
            self._insert(path, item)

    def __contains__(self, path: object) -> bool:
        return path in self._items

    def __getitem__(self, path: str) -> Value:
        return self._items[path].value

    def paths(self) -> list[str]:
        return list(self._items)

    # --- updates ----------------------------------------------------------------------------

    def __setitem__(self, path: str, value: Value) -> None:
        """A lone update: PropertiesChanged on the path, as velib's ``service[path] = v``."""
        item = self._items[path]
        if same_value(item.value, value):
            return
        item.value = value
        item.text_override = None
        if self.registered:
            self._send(path, "PropertiesChanged", "a{sv}", [item.entry(path)])

    def publish(
        self,
        updates: Mapping[str, Value],
        texts: Mapping[str, str] | None = None,
        *,
        per_path: bool = False,
    ) -> int:
        """Apply a batch of updates; one ItemsChanged carries the changed paths only, or with
        ``per_path`` one PropertiesChanged each (as velib's ``service[path] = v`` path by path).

        ``texts`` may give the text of some paths (replays). Returns how many paths changed.
        """
        changed: dict[str, dict[str, Variant]] = {}
        items = self._items
        for path, value in updates.items():
            item = items[path]
            new_text = texts.get(path) if texts else None
            if same_value(item.value, value) and new_text == item.text_override:
                continue
            item.value = value
            item.text_override = new_text
            changed[path] = item.entry(path)
        if changed and self.registered:
            if per_path:
                for path, entry in changed.items():
                    self._send(path, "PropertiesChanged", "a{sv}", [entry])
            else:
                self._send_items_changed(changed)
        return len(changed)

    def _send_items_changed(self, entries: dict[str, dict[str, Variant]]) -> None:
        self._send("/", "ItemsChanged", "a{sa{sv}}", [entries])

    def _send(self, path: str, member: str, signature: str, body: list[Any]) -> None:
        self.bus.send(
            Message(
                message_type=MessageType.SIGNAL,
                path=path,
                interface=BUSITEM,
                member=member,
                signature=signature,
                body=body,
                flags=MessageFlag.NO_REPLY_EXPECTED,
            )
        )

    # --- registration -----------------------------------------------------------------------

    async def register(self) -> None:
        """Claim the well-known name (do-not-queue), after all initial paths exist."""
        reply = await self.bus.request_name(self.name, NameFlag.DO_NOT_QUEUE)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise ServiceNameTakenError(
                f"{self.name} is already owned by another process; stop it or choose another "
                "service name"
            )
        self.registered = True
        log.debug("registered %s as %s", self.name, self.bus.unique_name)

    async def reregister(self) -> None:
        """Release the name and claim it again, so consumers rescan the service.

        Victron's consumers read /DeviceInstance only when they scan a service, so a changed
        VRM instance becomes visible this way (shared docs §1, DeviceInstance allocation).
        """
        self.registered = False
        await self.bus.release_name(self.name)
        await self.register()

    async def close(self) -> None:
        """Leave the bus: the name goes away with the connection."""
        self.registered = False
        self.bus.remove_message_handler(self._on_message)
        await busmod.disconnect(self.bus, self.name)

    async def __aenter__(self) -> VeService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- incoming calls ---------------------------------------------------------------------

    def _on_message(self, msg: Message) -> Message | bool | None:
        if msg.message_type != MessageType.METHOD_CALL:
            return None
        interface = msg.interface
        if interface is None or interface == BUSITEM:
            reply = self._busitem_call(msg)
            if reply is not None or interface == BUSITEM:
                return reply
        if (interface is None or interface == INTROSPECTABLE) and msg.member == "Introspect":
            xml = self._introspect(msg.path or "/")
            if xml is not None:
                return Message.new_method_return(msg, "s", [xml])
        return None

    def _busitem_call(self, msg: Message) -> Message | None:
        path = msg.path or "/"
        member = msg.member
        item = self._items.get(path)
        if item is not None:
            if member == "GetValue":
                return Message.new_method_return(msg, "v", [wrap(item.value, item.signature)])
            if member == "GetText":
                return Message.new_method_return(msg, "s", [item.text(path)])
            if member == "SetValue" and msg.signature == "v":
                return self._set_value(msg, path, item)
            if member == "GetDescription":
                return Message.new_method_return(msg, "s", [item.description])
            return self._extra_leaf_call(msg, path, item)
        if path in self._children:
            if member == "GetValue":
                values = {k: wrap(i.value, i.signature) for k, _, i in self._subtree(path)}
                return Message.new_method_return(msg, "v", [Variant("a{sv}", values)])
            if member == "GetText":
                texts = {k: i.text(p) for k, p, i in self._subtree(path)}
                return Message.new_method_return(msg, "v", [Variant("a{ss}", texts)])
            if member == "GetItems" and path == "/":
                entries = {p: i.entry(p) for p, i in self._items.items()}
                return Message.new_method_return(msg, "a{sa{sv}}", [entries])
            return self._extra_node_call(msg, path)
        return None

    def _extra_leaf_call(self, msg: Message, path: str, item: Item) -> Message | None:
        """Hook for services that answer more methods on a leaf (localsettings)."""
        return None

    def _extra_node_call(self, msg: Message, path: str) -> Message | None:
        """Hook for services that answer more methods on a node (localsettings AddSettings)."""
        return None

    def _set_value(self, msg: Message, path: str, item: Item) -> Message:
        if not item.writable:
            return Message.new_method_return(msg, "i", [1])
        new = unwrap(msg.body[0])
        if same_value(item.value, new):
            return Message.new_method_return(msg, "i", [0])
        if item.on_change is not None:
            try:
                accepted = item.on_change(path, new)
            except Exception as exc:
                log.exception("change callback of %s%s failed", self.name, path)
                return Message.new_error(msg, f"{BUSITEM}.Error", f"{type(exc).__name__}: {exc}")
            if not accepted:
                return Message.new_method_return(msg, "i", [2])
        self[path] = new
        return Message.new_method_return(msg, "i", [0])

    def _subtree(self, node: str) -> Iterable[tuple[str, str, Item]]:
        """(relative key, path, item) of every leaf below a node."""
        prefix = "/" if node == "/" else node + "/"
        cut = len(prefix)
        for path, item in self._items.items():
            if path.startswith(prefix):
                yield path[cut:], path, item

    def _introspect(self, path: str) -> str | None:
        if path in self._items:
            body = _INTROSPECT_IFACE + _LEAF_IFACE
        elif path in self._children:
            body = _INTROSPECT_IFACE + (_ROOT_IFACE if path == "/" else _NODE_IFACE)
            body += "".join(f'  <node name="{c}"/>\n' for c in sorted(self._children[path]))
        else:
            return None
        return f'{_DOCTYPE}<node name="{path}">\n{body}</node>\n'
