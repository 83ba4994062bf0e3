"""Track ``com.victronenergy.*`` services live: discovery, one scan each, then signals only.

Theory of operation
-------------------
The :class:`Monitor` owns one bus connection. It learns about services from ``ListNames`` at
start and from ``NameOwnerChanged`` (``arg0namespace=com.victronenergy``) afterwards. For each
service it wants (a predicate on the well-known name), it:

1. records the service under its owner's unique name, the key every signal carries;
2. adds match rules for that sender's ``ItemsChanged`` (on ``/``) and ``PropertiesChanged``
   (any path) *before* scanning, so no update is lost between scan and subscription. With
   ``signals`` (path namespaces) the ``PropertiesChanged`` of those namespaces are received
   from every service by a handful of rules set once, and only the services ``in_full`` names
   get the any-path rule; :meth:`Monitor.watch` adds a namespace for one service (a pack's
   cells) and :meth:`Monitor.read` reads a subtree once;
3. scans with ``GetItems``; when the service has no such method, the legacy way: ``GetValue``
   on ``/`` (relative keys), then per-path ``GetValue`` for the paths the caller named for
   that service class. A scan that times out is never half-trusted: the service is not
   tracked, and the scan is tried again later (:data:`RETRY_S`), so a slow pack is never merged
   without, say, its capacity or its BMS limit;
4. merges the scan under any value that arrived by signal meanwhile (the signal is newer);
5. skips services without a valid ``/DeviceInstance``, as velib's DbusMonitor does.

Scans run in the background, each with a short timeout (:data:`SCAN_TIMEOUT`): :meth:`Monitor.start`
waits for them at most :data:`START_WAIT_S`, so one hung peer never delays the caller. A service
can add at most :data:`MAX_PATHS` paths; a malformed signal is logged once per sender and
episode.

After that the snapshot ``{path: value}`` is kept current from signals only; nothing polls. Each
value carries the monotonic time it last changed, so the core can tell a frozen battery from a
quiet one. When the owner goes away the service is dropped and the listener told; a service is
never asked to invalidate its values before it leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BUSITEM, DBUS_NAME, VICTRON_PREFIX, BusCallError
from aggbatt.venus.wire import Value, same_value, unwrap, wrap

log = logging.getLogger(__name__)

Clock = Callable[[], float]
SCAN_TIMEOUT = 3.0
"""Seconds a scan call may take; a pack answers GetItems in milliseconds."""
START_WAIT_S = 2.0
"""How long :meth:`Monitor.start` waits for the first scans; the rest go on in the background."""
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Delays before a timed-out scan is tried again (the last one repeats)."""
MALFORMED_QUIET_S = 60.0
"""A sender's malformed signals are one episode until it has sent none for this long."""
MAX_PATHS = 2000
"""Paths one service may publish; serialbattery publishes about 200."""
_NOT_ANSWERING = {"timeout", "no-reply", "disconnected"}
_ABSENT: Any = object()
"""Signatures whose Variant value is already the plain value (unwrap would return it as is)."""


@dataclass(eq=False)
class RemoteService:
    """What we know of one service on the bus: a live snapshot of its values."""

    name: str
    owner: str
    values: dict[str, Value] = field(default_factory=dict)
    changed_at: dict[str, float] = field(default_factory=dict)
    """Monotonic time at which each path last took a new value."""
    last_update: float = 0.0
    """Monotonic time of the last signal or scan from the service, changed or not."""
    last_change: float = 0.0
    """Monotonic time at which any value last changed (max of ``changed_at``, kept as it moves)."""
    ready: bool = False
    full: bool = False
    """True once it reached :data:`MAX_PATHS` (new paths are ignored, said once)."""
    _seen_in_scan: set[str] | None = field(default_factory=set, repr=False)
    _reads: list[set[str]] = field(default_factory=list, repr=False)
    """Paths signalled while a :meth:`Monitor.read` of the service is under way."""

    @property
    def device_instance(self) -> int | None:
        value = self.values.get("/DeviceInstance")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def get(self, path: str, default: Value = None) -> Value:
        value = self.values.get(path)
        return default if value is None else value

    def apply(self, changes: Mapping[str, Value], now: float) -> dict[str, Value]:
        """Store signalled values; returns those that really changed."""
        self.last_update = now
        seen = self._seen_in_scan
        if seen is not None:
            seen.update(changes)
        for read in self._reads:
            read.update(changes)
        changed: dict[str, Value] = {}
        values = self.values
        for path, value in changes.items():
            old = values.get(path, _ABSENT)
            if old is not _ABSENT:
                if same_value(old, value):
                    continue
            elif len(values) >= MAX_PATHS:
                if not self.full:
                    log.warning(
                        "%s publishes over %d paths: new ones ignored", self.name, MAX_PATHS
                    )
                self.full = True
                continue
            values[path] = value
            self.changed_at[path] = now
            changed[path] = value
        if changed:
            self.last_change = now
        return changed

    def apply_scan(self, scanned: Mapping[str, Value], now: float) -> None:
        """Merge a scan result under the values signalled while it ran."""
        seen = self._seen_in_scan or set()
        for path, value in scanned.items():
            if path not in seen:
                self.values[path] = value
                self.changed_at[path] = now
        self._seen_in_scan = None
        self.last_update = self.last_change = now
        self.ready = True


class MonitorListener:
    """Receives what the monitor learns. Override what you need; called on the event loop."""

    def service_added(self, service: RemoteService) -> None:
        """A wanted service finished its scan and is now tracked."""

    def service_removed(self, service: RemoteService) -> None:
        """The owner of a tracked service left the bus."""

    def values_changed(self, service: RemoteService, changes: dict[str, Value]) -> None:
        """A tracked service published new values (only the ones that changed)."""

    def owner_changed(self, name: str, old: str, new: str) -> None:
        """Any com.victronenergy name changed owner (wanted or not): "" = none."""


def victron_services(name: str) -> bool:
    return name.startswith(VICTRON_PREFIX)


class Monitor:
    """Live view of the wanted services on one bus connection."""

    def __init__(
        self,
        bus: MessageBus,
        *,
        want: Callable[[str], bool] = victron_services,
        ignore: Iterable[str] = (),
        listener: MonitorListener | None = None,
        fallback_paths: Mapping[str, Sequence[str]] | None = None,
        clock: Clock = time.monotonic,
        signals: Sequence[str] | None = None,
        in_full: Callable[[str], bool] = lambda name: True,
        classify: Callable[[str], str] = lambda name: "",
    ) -> None:
        self.bus = bus
        self.listener = listener or MonitorListener()
        self.services: dict[str, RemoteService] = {}
        """Tracked (scanned, valid) services by well-known name."""
        self._want = want
        self._ignore = set(ignore)
        self._fallback_paths = dict(fallback_paths or {})
        self._clock = clock
        self._signals = tuple(signals) if signals is not None else None
        """Path namespaces whose PropertiesChanged come from every service (None: per service,
        every path)."""
        self._in_full = in_full
        self._classify = classify
        """A service's class from its name (the caller's rule): :meth:`of_class` and the
        legacy scan's ``fallback_paths`` are by class."""
        self._owner_rules: dict[str, list[str]] = {}
        """The match rules added for each owner, removed when it leaves."""
        self._by_owner: dict[str, list[RemoteService]] = {}
        self._pending: dict[str, RemoteService] = {}
        self._tasks = busmod.Tasks()
        self._started = False
        self._malformed: dict[str, float] = {}
        """Senders in an episode of malformed signals: when they sent the last one."""

    @classmethod
    async def connect(cls, bus_choice: str | None = None, **options: Any) -> Monitor:
        return cls(await busmod.connect(bus_choice), **options)

    def ignore(self, name: str) -> None:
        """Never track this name (our own service); drops it if tracked already."""
        self._ignore.add(name)
        service = self.services.get(name)
        if service is not None:
            self._drop(service)

    async def start(self) -> None:
        """Subscribe to name changes, then scan every wanted service on the bus."""
        self.bus.add_message_handler(self._on_message)
        rule = (
            f"type='signal',sender='{DBUS_NAME}',interface='{DBUS_NAME}',member='NameOwnerChanged'"
        )
        try:
            await busmod.add_match(self.bus, rule + ",arg0namespace='com.victronenergy'")
        except BusCallError:  # a bus without arg0namespace support
            await busmod.add_match(self.bus, rule)
        for namespace in self._signals or ():
            await busmod.add_match(self.bus, _namespace_rule("", namespace))
        self._started = True
        names = [n for n in await busmod.list_names(self.bus) if self._wanted(n)]
        owners = await asyncio.gather(*(busmod.get_name_owner(self.bus, n) for n in names))
        scans = [
            self._tasks.spawn(self._add(name, owner))
            for name, owner in zip(names, owners, strict=True)
            if owner
        ]
        if scans:  # a hung peer goes on in the background; it never holds up the caller
            await asyncio.wait(scans, timeout=START_WAIT_S)

    async def close(self) -> None:
        self._tasks.cancel()
        self.bus.remove_message_handler(self._on_message)
        await busmod.disconnect(self.bus, "the monitor")

    async def __aenter__(self) -> Monitor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def of_class(self, service_class: str) -> list[RemoteService]:
        return [s for s in self.services.values() if self._classify(s.name) == service_class]

    async def watch(self, name: str, namespaces: Sequence[str]) -> bool:
        """Receive these path namespaces of one tracked service too (a pack's cells); False
        when the bus refused a rule (that rule is not kept). A service gone has nothing to
        watch."""
        service = self.services.get(name)
        if service is None:
            return True
        rules = self._owner_rules.setdefault(service.owner, [])
        added = True
        for namespace in namespaces:
            rule = _namespace_rule(service.owner, namespace)
            if rule not in rules:
                rules.append(rule)
                try:
                    await busmod.add_match(self.bus, rule)
                except BusCallError as exc:
                    log.debug("AddMatch %s refused: %s", rule, exc)
                    rules.remove(rule)
                    added = False
        return added

    async def unwatch(self, name: str, namespaces: Sequence[str]) -> None:
        """Stop receiving what :meth:`watch` added."""
        service = self.services.get(name)
        if service is None:
            return  # its rules went with it
        rules = self._owner_rules.get(service.owner, [])
        for namespace in namespaces:
            rule = _namespace_rule(service.owner, namespace)
            if rule in rules:
                rules.remove(rule)
                await self._remove_match(rule)

    async def read(self, name: str, path: str) -> dict[str, Value] | None:
        """One ``GetValue`` of a subtree (or a leaf) of a tracked service, with absolute paths,
        less any path signalled while the call ran (the signal is as new or newer); None when
        it did not answer. A service that has no ``GetValue`` on a subtree (velib and
        localsettings have one; not every driver does) is read with ``GetItems`` on ``/``.
        Nothing is stored: :meth:`update` does that."""
        service = self.services.get(name)
        if service is None:
            return None
        seen: set[str] = set()
        service._reads.append(seen)
        base = path.rstrip("/")
        try:
            try:
                body = await busmod.call(
                    self.bus, service.owner, path, "GetValue", timeout=SCAN_TIMEOUT
                )
                tree = unwrap(body[0]) if body else None
                if tree is None:
                    return None
                read = (
                    {f"{base}/{k}": v for k, v in tree.items()}
                    if isinstance(tree, dict)
                    else {path: tree}
                )
            except BusCallError as exc:
                if exc.error_name in _NOT_ANSWERING:
                    raise
                body = await busmod.call(
                    self.bus, service.owner, "/", "GetItems", timeout=SCAN_TIMEOUT
                )
                items = body[0] if body else {}
                read = {
                    p: unwrap(e.get("Value"))
                    for p, e in items.items()
                    if p == path or p.startswith(base + "/")
                }
        except BusCallError as exc:
            log.debug("reading %s%s failed: %s", name, path, exc)
            return None
        finally:
            service._reads.remove(seen)
        return {p: v for p, v in read.items() if p not in seen}

    def update(self, name: str, values: Mapping[str, Value]) -> None:
        """Store values read by :meth:`read` as if signalled, and tell the listener."""
        service = self.services.get(name)
        if service is None or not values:
            return
        changed = service.apply(values, self._clock())
        if changed:
            self.listener.values_changed(service, changed)

    async def set_value(self, name: str, path: str, value: Value) -> int:
        """SetValue on another service; returns its code, or -1 when the call failed."""
        try:
            body = await busmod.call(self.bus, name, path, "SetValue", "v", [wrap(value)])
        except BusCallError as exc:
            log.warning("SetValue %s%s=%r failed: %s", name, path, value, exc)
            return -1
        return int(body[0])

    # --- signals ----------------------------------------------------------------------------

    def _wanted(self, name: str) -> bool:
        return name not in self._ignore and self._want(name)

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        member = msg.member
        if member in {"ItemsChanged", "PropertiesChanged"}:
            services = self._by_owner.get(msg.sender or "")
            if services and msg.interface == BUSITEM:
                self._on_update(services, msg)
        elif member == "NameOwnerChanged" and msg.sender == DBUS_NAME:
            name, old, new = msg.body
            self.listener.owner_changed(name, old, new)
            if self._wanted(name):
                self._spawn(self._owner_changed(name, old, new))

    def _on_update(self, services: list[RemoteService], msg: Message) -> None:
        try:
            if msg.member == "ItemsChanged":
                if msg.path != "/":
                    return
                changes = {
                    path: unwrap(entry["Value"])
                    for path, entry in msg.body[0].items()
                    if "Value" in entry
                }
            else:
                entry = msg.body[0]
                if "Value" not in entry:
                    return
                changes = {msg.path or "/": unwrap(entry["Value"])}
        except (IndexError, AttributeError, TypeError, KeyError):
            sender = msg.sender or ""
            if sender not in self._malformed:
                log.warning("malformed %s from %s ignored (said once)", msg.member, sender)
            self._malformed[sender] = self._clock()
            return
        now = self._clock()
        quiet_since = self._malformed.get(msg.sender or "") if self._malformed else None
        if quiet_since is not None and now - quiet_since > MALFORMED_QUIET_S:
            del self._malformed[msg.sender or ""]
            log.info("signals from %s are well-formed again", msg.sender)
        for service in services:
            changed = service.apply(changes, now)
            if changed and service.ready:
                self.listener.values_changed(service, changed)

    def _spawn(self, coro: Any) -> None:
        self._tasks.spawn(coro)

    async def _owner_changed(self, name: str, old: str, new: str) -> None:
        if old:
            for service in [s for s in (self.services.get(name), self._pending.get(name)) if s]:
                self._drop(service)
        if new:
            await self._add(name, new)

    # --- scanning ---------------------------------------------------------------------------

    async def _add(self, name: str, owner: str, attempt: int = 0) -> None:
        service = RemoteService(name, owner)
        self._pending[name] = service
        self._by_owner.setdefault(owner, []).append(service)
        try:
            rules = self._owner_rules.setdefault(owner, [])
            for rule in self._rules(name, owner):
                if rule not in rules:
                    rules.append(rule)
                    await busmod.add_match(self.bus, rule)
            scanned = await self._scan(service)
        except BusCallError as exc:
            if exc.error_name in _NOT_ANSWERING and self.bus.connected:
                delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                log.warning(
                    "%s did not answer its scan (%s); trying again in %g s", name, exc, delay
                )
                self._drop(service, tell=False)
                self._spawn(self._retry(name, owner, attempt + 1, delay))
                return
            log.info("could not scan %s (%s); it is not tracked", name, exc)
            scanned = None
        if self._pending.get(name) is not service:
            self._drop(service, tell=False)  # it left, or a newer scan superseded this one
            return
        del self._pending[name]
        service.apply_scan(scanned or {}, self._clock())
        if scanned is None or service.device_instance is None:
            if scanned is not None:
                log.info("%s has no /DeviceInstance; it is not tracked", name)
            self._drop(service, tell=False)
            return
        previous = self.services.get(name)
        if previous is not None:
            self._drop(previous, tell=False)  # replaced by this newer scan
        self.services[name] = service
        log.debug("tracking %s (%s, %d paths)", name, owner, len(service.values))
        self.listener.service_added(service)

    async def _retry(self, name: str, owner: str, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)
        if name in self.services or name in self._pending or not self.bus.connected:
            return  # tracked meanwhile (a new owner), or we are closing
        if await busmod.get_name_owner(self.bus, name) == owner:
            await self._add(name, owner, attempt)

    async def _scan(self, service: RemoteService) -> dict[str, Value]:
        """Every value of the service; BusCallError when it does not answer in time (then it
        is scanned again later, never merged from part of a scan)."""
        owner = service.owner

        async def ask(path: str, member: str) -> list[Any]:
            try:
                return await busmod.call(self.bus, owner, path, member, timeout=SCAN_TIMEOUT)
            except BusCallError as exc:
                if exc.error_name in _NOT_ANSWERING:
                    raise
                return []

        body = await ask("/", "GetItems")
        if body:
            return {path: unwrap(entry.get("Value")) for path, entry in body[0].items()}
        log.debug("%s has no GetItems; legacy scan", service.name)
        values: dict[str, Value] = {}
        body = await ask("/", "GetValue")
        tree = unwrap(body[0]) if body else None
        if isinstance(tree, dict):
            values = {"/" + key: value for key, value in tree.items()}
        wanted = ["/DeviceInstance", *self._fallback_paths.get(self._classify(service.name), ())]
        for path in wanted:
            if path not in values and (body := await ask(path, "GetValue")):
                values[path] = unwrap(body[0])
        return values

    def _rules(self, name: str, owner: str) -> list[str]:
        common = f"type='signal',sender='{owner}',interface='{BUSITEM}'"
        rules = [f"{common},member='ItemsChanged',path='/'"]
        if self._signals is None or self._in_full(name):
            rules.append(f"{common},member='PropertiesChanged'")
        return rules

    def _drop(self, service: RemoteService, tell: bool = True) -> None:
        was_tracked = self.services.get(service.name) is service
        if was_tracked:
            del self.services[service.name]
        if self._pending.get(service.name) is service:
            del self._pending[service.name]
        siblings = self._by_owner.get(service.owner, [])
        if service in siblings:
            siblings.remove(service)
        if not siblings and service.owner in self._by_owner:
            del self._by_owner[service.owner]
            rules = self._owner_rules.pop(service.owner, [])
            if self._started and self.bus.connected:
                for rule in rules:
                    self._spawn(self._remove_match(rule))
        if was_tracked and tell:
            log.debug("%s left the bus", service.name)
            self.listener.service_removed(service)

    async def _remove_match(self, rule: str) -> None:
        with contextlib.suppress(BusCallError):
            await busmod.remove_match(self.bus, rule)


def _namespace_rule(sender: str, namespace: str) -> str:
    """PropertiesChanged under ``namespace`` (the path and below), of one sender or of all."""
    who = f"sender='{sender}'," if sender else ""
    return (
        f"type='signal',{who}interface='{BUSITEM}',member='PropertiesChanged',"
        f"path_namespace='{namespace}'"
    )
