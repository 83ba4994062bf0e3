"""The daemon: the imperative shell around the pure core, and the wiring of its pieces.

Theory of operation
-------------------
One :class:`Daemon` owns a monitor connection and the exported service's own. It asks
localsettings who it is (:mod:`aggbatt.identity`), waits for the first valid pack (rule 13:
no limit without a basis), runs a first cycle and only then claims the service name, so that
consumers see a complete battery with a valid CVL. Then it runs a cycle every
``update_interval`` and at once on a change the core calls urgent (:mod:`aggbatt.trigger`).
A cycle selects the packs, runs :func:`aggbatt.core.engine.run_cycle`, publishes what
changed, acts on the feed-in decision (:mod:`aggbatt.feedin`), saves the state when the core
says so (:mod:`aggbatt.keeper`), logs transitions (:mod:`aggbatt.journal`) and keeps each
pack's cell subscription as rule 4 decides (:mod:`aggbatt.cells`).

The shell decides nothing. Nothing a battery sends can stop it: a failing cycle is logged and
the next one runs. On SIGTERM the user's feed-in value is written back before the service
leaves the bus (rule 11); a lost bus connection ends the process with one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from aggbatt.cells import CellSubscriber
from aggbatt.config import Config
from aggbatt.core.battery import Invalid
from aggbatt.core.cellwatch import read_namespaces
from aggbatt.core.engine import CycleResult, EngineState, forget, initial_state, run_cycle
from aggbatt.core.safety import urgency
from aggbatt.core.selection import (
    ccl_honoured_with_feed_in,
    measure_current,
    select_batteries,
    service_class,
    wanted_classes,
)
from aggbatt.feedin import FeedInKeeper
from aggbatt.identity import CUSTOM_NAME_MAX, SETTINGS_TIMEOUT, Identity
from aggbatt.journal import Journal
from aggbatt.keeper import StateKeeper
from aggbatt.publish import CELL_FORMAT, cycle_values, formatter_of, is_cell_path, static_paths
from aggbatt.trigger import CycleTrigger, LastMoved
from aggbatt.venus import bus as busmod
from aggbatt.venus.client import Monitor, MonitorListener, RemoteService
from aggbatt.venus.service import VeService
from aggbatt.venus.settings import SETTINGS_SERVICE, SettingsClient
from aggbatt.venus.wire import Value

log = logging.getLogger("aggbatt")

SETTINGS_START_WAIT_S = 2.0
"""How long the start waits for localsettings before it goes on with the config's instance."""
EXIT_CONNECTION_LOST = 3
"""The exit status when a bus connection was lost (daemontools restarts the service)."""
FIRST_PACK_LOG_S = 30.0
"""While no valid pack has been read, say so this often."""
KNOWN_PACKS_WAIT_S = 10.0
"""At start, how long to wait for the bank's known packs before the first cycle: a pack that
is merely slower to scan must not stop charging (rule 15) and flip feed-in for a moment."""
FORGET_PATH = "/Packs/Forget"
"""Write a pack's name (or service name) here to forget it: ``aggbatt forget``."""
BATTERY_FALLBACK_PATHS = ("/Dc/0/Voltage", "/Dc/0/Current", "/Soc", "/ProductName")  # no GetItems


class Daemon(MonitorListener):
    def __init__(
        self,
        config: Config,
        state_dir: Path,
        bus_choice: str | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        mono_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.bus_choice = bus_choice
        self.wall = wall_clock
        self.mono = mono_clock
        self.monitor: Monitor | None = None
        self.service: VeService | None = None
        self.identity: Identity | None = None
        self.feed_in: FeedInKeeper | None = None
        self.cells: CellSubscriber | None = None
        self.keeper = StateKeeper(state_dir, wall_clock(), lambda: self.engine, self._saved)
        self.engine: EngineState = initial_state(self.keeper.loaded)
        self.result: CycleResult | None = None
        self.trigger = CycleTrigger(self.cycle, self._now, self._registered, urgency(None, config))
        self.journal = Journal(config, self._now)
        self.moved = LastMoved()
        self.cycles = 0
        self.exit_code = 0
        self._settings_lock = asyncio.Lock()
        self._bank: set[str] = set()
        """The services selected as packs in the last cycle: only they drive urgent cycles."""
        self._stopping = asyncio.Event()
        self._tasks = busmod.Tasks()

    def _now(self) -> float:
        return self.mono()  # late-bound: a test may replace self.mono

    def _saved(self, engine: EngineState) -> None:
        self.engine = engine

    def _registered(self) -> bool:
        return self.service is not None and self.service.registered

    # --- start and stop ---------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        classes = wanted_classes(config)
        self.monitor = await Monitor.connect(
            self.bus_choice,
            want=lambda n: service_class(n) in classes,
            ignore=[config.service.name],
            listener=self,
            fallback_paths={"battery": BATTERY_FALLBACK_PATHS},
            clock=self.mono,
            classify=service_class,
            # rule 4: what the core reads of the packs; their cells only where they matter
            signals=read_namespaces(config),
            in_full=lambda n: service_class(n) != config.batteries.service_class,
        )
        self.cells = CellSubscriber(self.monitor, config, self._tasks.spawn, self.mono)
        settings = SettingsClient(self.monitor.bus)
        self.identity = Identity(settings, config.service, self._tasks.spawn, lambda: self.service)
        self.feed_in = FeedInKeeper(settings, self.keeper)
        # localsettings: waited for briefly, never for long; it may come (back) at any time
        setup = self._tasks.spawn(self._settings_up())
        await asyncio.wait([setup], timeout=SETTINGS_START_WAIT_S)
        instance, custom_name = self.identity.instance, self.identity.custom_name

        self.service = VeService(await busmod.connect(self.bus_choice), config.service.name)
        for path, value in static_paths(config, instance, custom_name).items():
            writable = path == "/CustomName"
            self.service.add_path(
                path, value, writable=writable,
                on_change=self.identity.name_written if writable else None,
            )  # fmt: skip
        self.service.add_path(FORGET_PATH, "", writable=True, on_change=self._forget)
        await self.monitor.start()
        result = await self._first_valid_cycle()
        for path, value in cycle_values(result, config).items():
            self.service.add_path(path, value, formatter=formatter_of(path))
        self._after_cycle(result)
        await self.service.register()
        log.info(
            "%s registered as DeviceInstance %d with %d batteries; select it as battery monitor "
            "and BMS (docs/install.md)",
            config.service.name, instance, len(result.aggregate.batteries),
        )  # fmt: skip

    async def _first_valid_cycle(self) -> CycleResult:
        """Rule 13: no service, so no limit, before the first pack has been read in full; and
        the bank's known packs get :data:`KNOWN_PACKS_WAIT_S` to be scanned (rule 15)."""
        waited = 0.0
        while True:
            result = self._compute()
            absent = [r for r in result.readings if isinstance(r, Invalid) and r.kind.unseen]
            patient = absent and waited < KNOWN_PACKS_WAIT_S
            if (result.aggregate.online and not patient) or self._stopping.is_set():
                return result
            if waited % FIRST_PACK_LOG_S == 0:
                why = "; ".join(f"{r.name}: {r.reason}" for r in result.aggregate.invalid)
                log.warning(
                    "no valid pack on the bus yet%s: not registering until one is read "
                    "(aggbatt doctor shows what is found)",
                    f" (left out: {why})" if why else "",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 1.0)
            waited += 1.0

    async def _settings_up(self) -> None:
        """Everything that needs localsettings, whenever it appears (at start, late, or after
        it restarted): the VRM instance, the CustomName, and feed-in management."""
        assert self.identity is not None and self.feed_in is not None
        async with self._settings_lock:
            if not await self.identity.up():
                return
            await self.feed_in.start()
            self.feed_in.resync()  # the next cycle writes the decision again
            self.trigger.request()

    def owner_changed(self, name: str, old: str, new: str) -> None:
        if name == SETTINGS_SERVICE and new:
            log.info("localsettings is on the bus: VRM instance and feed-in management resume")
            self._tasks.spawn(self._settings_up())
        elif name == SETTINGS_SERVICE:
            log.warning("localsettings left the bus: feed-in is managed again when it is back")

    def _forget(self, path: str, value: Value) -> bool:
        """A client's SetValue on /Packs/Forget: forget that pack of the bank (it must have left
        the bus); refused (SetValue 2) otherwise, and the log says why."""
        if not isinstance(value, str) or not value.strip() or len(value) > CUSTOM_NAME_MAX:
            return False
        on_bus = self.monitor.services if self.monitor is not None else {}
        engine, done, text = forget(self.engine, value.strip(), on_bus)
        log.log(logging.WARNING if done else logging.INFO, "aggbatt forget %s: %s", value, text)
        if not done:
            return False
        self.engine = engine
        self.keeper.save()
        self.trigger.request()
        if self.service is not None:  # ready for the next request (a same value is no change)
            asyncio.get_running_loop().call_soon(self.service.__setitem__, FORGET_PATH, "")
        return True

    async def run(self) -> None:
        """Start, cycle until stop() (SIGTERM), then leave the bus cleanly.

        SIGTERM is honoured at any time, also while the start waits for a pack or a peer.
        """
        asyncio.get_running_loop().set_exception_handler(busmod.quiet_lost_connection)
        starting = asyncio.ensure_future(self.start())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            await self.close()
            return
        starting.result()  # a failed start (the name is taken ...) is raised here
        self.trigger.start(self.config.daemon.update_interval)
        watch = asyncio.ensure_future(self._watch_connections())
        try:
            await self._stopping.wait()
        finally:
            watch.cancel()
            self.trigger.stop()
            await self.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _watch_connections(self) -> None:
        """A lost bus connection (the dbus-daemon restarted, a peer made dbus-fast drop it) is
        never survived silently: for Venus a BMS that vanished is "BMS lost". The process ends
        with a non-zero status, so that daemontools starts it again at once."""
        roles = {"monitor": self.monitor, "service": self.service}
        buses = {name: role.bus for name, role in roles.items() if role is not None}
        self._connection_lost(*await busmod.first_lost(buses))

    def _connection_lost(self, role: str, why: BaseException | None) -> None:
        """One log line, then the exit that daemontools answers with a restart."""
        if self._stopping.is_set():
            return
        log.error(
            "the %s's D-Bus connection is lost (%s): exiting so that daemontools starts aggbatt "
            "again", role, why or "closed",
        )  # fmt: skip
        self.exit_code = EXIT_CONNECTION_LOST
        self.stop()

    async def close(self) -> None:
        saved = self.keeper.save()
        if self.cells is not None:
            self.cells.close()
        await self._tasks.finish(2.0)
        if self.feed_in is not None and not self.exit_code:  # rule 11: before we leave the bus
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.feed_in.restore("aggbatt stopping"), SETTINGS_TIMEOUT)
        for role in (self.service, self.monitor):
            if role is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(role.close(), SETTINGS_TIMEOUT)
        self.service = None
        self.monitor = None
        log.info("stopped; state %s", "saved" if saved else "NOT saved (see above)")

    # --- the cycle --------------------------------------------------------------------------

    def values_changed(self, service: RemoteService, changes: dict[str, Value]) -> None:
        name = service.name
        in_bank = name in self._bank  # a battery that is not in the bank never drives the loop
        if in_bank:
            if self.cells is not None:
                self.cells.on_values(service, changes)
            self.moved.changed(name, changes, service.last_change)
        self.trigger.values_changed(changes, in_bank)

    def service_added(self, service: RemoteService) -> None:
        self.moved.added(service.name, self.mono())
        self.trigger.changed = True
        self.trigger.request()

    def service_removed(self, service: RemoteService) -> None:
        self.moved.removed(service.name)
        self.trigger.changed = True
        self.trigger.request()

    def cycle(self) -> None:
        """One full cycle; never raises (a failure is logged and the next cycle runs)."""
        if self.service is None or self.monitor is None or not self.service.registered:
            return  # start() runs the first cycle itself, before registering
        try:
            result = self._compute()
            self._publish(result)
            self._after_cycle(result)
        except OSError as exc:  # a broken socket: dbus-fast could not even queue the signal
            self._connection_lost("service", exc)
        except Exception:
            log.exception("cycle failed; the service stays up and the next cycle runs")

    def _compute(self) -> CycleResult:
        assert self.monitor is not None
        config = self.config
        now_mono, now_wall = self.mono(), self.wall()
        self.trigger.ran(now_mono)
        services = {s.name: s.values for s in self.monitor.services.values()}
        batteries = select_batteries(services, config, config.service.name)
        self._bank = set(batteries)
        services_by_name = self.monitor.services
        activity = {n: self.moved.activity(n, services_by_name[n].last_change) for n in batteries}
        names = {n: v.get(config.batteries.name_path) for n, v in batteries.items()}
        result = run_cycle(
            batteries, names, config, self.engine,
            now_mono=now_mono, now_wall=now_wall, month=time.localtime(now_wall).tm_mon,
            activity=activity, ccl_honoured=ccl_honoured_with_feed_in(services),
            cell_faults=self.cells.watch.disagree if self.cells else None,
            current=measure_current(services, config),
        )  # fmt: skip
        self.engine = result.state
        self.result = result
        self.trigger.urgency = urgency(result.limits, config)
        if self.cells is not None:
            self.cells.after_cycle(batteries, self.trigger.urgency.attentive, now_mono)
        self.cycles += 1
        return result

    def _publish(self, result: CycleResult) -> None:
        assert self.service is not None
        values = cycle_values(result, self.config)
        if self.config.service.publish_cell_voltages:  # the packs' cells come and go
            self.service.sync_paths(values, is_cell_path, formatter=CELL_FORMAT)
        self.service.publish(values)

    def _after_cycle(self, result: CycleResult) -> None:
        self.journal.cycle(result)
        limits = result.limits
        if self.feed_in is not None and self.feed_in.pending(limits.feed_in_off):
            self._tasks.spawn(self.feed_in.apply(limits.feed_in_off, limits.feed_in_reason))
        self.keeper.save_if_due(self.config)
