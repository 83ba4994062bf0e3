"""The daemon: the imperative shell around the pure core.

Theory of operation
-------------------
One :class:`Daemon` owns a monitor connection (batteries, Multis, MPPTs, shunts, settings) and
the exported service's own connection. It:

1. allocates its VRM DeviceInstance and restores its CustomName through localsettings;
2. scans the bus and waits for the first valid pack (rule 13 of :mod:`aggbatt.core.safety`:
   no limit without a basis), runs a first cycle, and only then claims the service name, so
   consumers scanning on NameOwnerChanged see a complete battery with a valid CVL;
3. runs a cycle every ``daemon.update_interval`` seconds, and at once (coalesced into one cycle
   per event-loop turn) when a battery publishes a change the core calls urgent;
4. each cycle: selects the batteries, passes when their values last moved, reads the Victron
   current, runs :func:`aggbatt.core.engine.run_cycle`, publishes what changed, acts on the
   feed-in decision, saves the state when the core says so, and logs transitions only.

The shell decides nothing: urgency, staleness, the save policy and feed-in are core decisions.
Nothing a battery sends can stop it: bad data is a fault of that value in the core, and a
failing cycle is logged and the next one runs. With no valid battery the service stays
registered with the last CVL and CCL = DCL = 0 (the core's rule), so DVCC stops safely. On
SIGTERM the user's feed-in value is written back before the service leaves the bus (rule 11).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aggbatt.cells import CellSubscriber
from aggbatt.config import Config
from aggbatt.core import coulomb
from aggbatt.core.battery import Invalid
from aggbatt.core.cellwatch import read_namespaces
from aggbatt.core.engine import (
    CycleResult,
    EngineState,
    forget,
    initial_state,
    run_cycle,
    save_due,
    to_state,
)
from aggbatt.core.safety import Activity, is_measurement, is_vital, urgency
from aggbatt.core.selection import (
    ccl_honoured_with_feed_in,
    measure_current,
    select_batteries,
    service_class,
)
from aggbatt.core.stored import State
from aggbatt.feedin import FeedInKeeper
from aggbatt.publish import CELL_FORMAT, FORMATS, cycle_values, static_paths
from aggbatt.state import load_state, save_state
from aggbatt.venus import bus as busmod
from aggbatt.venus.client import Monitor, MonitorListener, RemoteService
from aggbatt.venus.service import VeService
from aggbatt.venus.settings import (
    SETTINGS_SERVICE,
    Setting,
    SettingsClient,
    instance_setting_path,
)
from aggbatt.venus.wire import Value

log = logging.getLogger("aggbatt")

IDLE_CYCLE_S = 5.0
"""With nothing changed on the bus, the periodic cycle runs only this often (the counter,
frozen-pack detection and balancing dates need time to pass, not every second)."""
SETTINGS_TIMEOUT = 5.0
SETTINGS_START_WAIT_S = 2.0
"""How long the start waits for localsettings before it goes on with the config's instance."""
MIN_URGENT_INTERVAL_S = 0.05
"""Urgent cycles run at most 20 times a second on average, whatever a flood of changes asks
for."""
URGENT_BURST = 4
"""Urgent cycles that may run back to back before that rate applies: a peaking cell right after
a cycle runs one at once instead of waiting out the interval (a token bucket)."""
CUSTOM_NAME_MAX = 64
EXIT_CONNECTION_LOST = 3
"""The exit status when a bus connection was lost (daemontools restarts the service)."""
FIRST_PACK_LOG_S = 30.0
"""While no valid pack has been read, say so this often."""
KNOWN_PACKS_WAIT_S = 10.0
"""At start, how long to wait for the bank's known packs before the first cycle: a pack that
is merely slower to scan must not stop charging (rule 15) and flip feed-in for a moment."""
FORGET_PATH = "/Packs/Forget"
"""Write a pack's name (or service name) here to forget it: ``aggbatt forget``."""


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Read a finished task's outcome (its exception is logged where it matters)."""
    if not task.cancelled():
        task.exception()


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
        self.state_dir = state_dir
        self.bus_choice = bus_choice
        self.wall = wall_clock
        self.mono = mono_clock
        self.monitor: Monitor | None = None
        self.service: VeService | None = None
        self.settings: SettingsClient | None = None
        self.feed_in: FeedInKeeper | None = None
        self.cells: CellSubscriber | None = None
        loaded = load_state(state_dir, wall_clock())
        self.engine: EngineState = initial_state(loaded.state)
        self.result: CycleResult | None = None
        self._urgency = urgency(None, config)
        """Which pack changes run a cycle at once; decided anew by every cycle."""
        self.cycles = 0
        self._feed_in_original: int | None = loaded.state.feed_in_original
        self._saved: State | None = loaded.state if loaded.source == "file" else None
        self._vital_at: dict[str, float] = {}
        """Per service, monotonic time of the last change of a cell or the current."""
        self._measured_at: dict[str, float] = {}
        """Per service, monotonic time of the last change of a measurement (rule 10)."""
        self._last_faults: dict[str, frozenset[str]] = {}
        self._last_notes: dict[str, tuple[str, ...]] = {}
        self.exit_code = 0
        self._identity = (config.service.device_instance, config.service.custom_name)
        """(VRM instance, CustomName): the config's until localsettings grants them."""
        self._settings_lock = asyncio.Lock()
        self._instance_watched = False
        self._bank: set[str] = set()
        """The services selected as packs in the last cycle: only they drive urgent cycles."""
        self._save_failing = False
        self._changed_since_cycle = True
        self._last_cycle = -IDLE_CYCLE_S
        self._cycle_requested = False
        self._urgent_tokens = float(URGENT_BURST)
        self._tokens_at = 0.0
        self._stopping = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_status: dict[str, str] = {}
        self._last_mode = ""
        self._current_problem = ""
        self._last_summary = 0.0
        self._published_cells: set[str] = set()

    # --- start and stop ---------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        classes = {
            config.batteries.service_class, "vebus", "solarcharger", "dcload", "battery",
            "acsystem",
        }  # fmt: skip
        self.monitor = await Monitor.connect(
            self.bus_choice,
            want=lambda n: service_class(n) in classes,
            ignore=[config.service.name],
            listener=self,
            fallback_paths={"battery": ["/Dc/0/Voltage", "/Dc/0/Current", "/Soc", "/ProductName"]},
            clock=self.mono,
            # rule 4: what the core reads of the packs; their cells only where they matter
            signals=read_namespaces(config),
            in_full=lambda n: service_class(n) != config.batteries.service_class,
        )
        self.cells = CellSubscriber(self.monitor, config, self._spawn, self.mono)
        self.settings = SettingsClient(self.monitor.bus)
        self.feed_in = FeedInKeeper(self.settings, self._feed_in_original, self._persist_feed_in)
        # localsettings: waited for briefly, never for long; it may come (back) at any time
        setup = asyncio.ensure_future(self._settings_up())
        self._tasks.add(setup)
        setup.add_done_callback(self._tasks.discard)
        await asyncio.wait([setup], timeout=SETTINGS_START_WAIT_S)
        instance, custom_name = self._identity

        self.service = VeService(await busmod.connect(self.bus_choice), config.service.name)
        for path, value in static_paths(config, instance, custom_name).items():
            writable = path == "/CustomName"
            self.service.add_path(
                path, value, writable=writable, on_change=self._custom_name if writable else None
            )
        self.service.add_path(FORGET_PATH, "", writable=True, on_change=self._forget)
        await self.monitor.start()
        result = await self._first_valid_cycle()
        for path, value in cycle_values(result, config).items():
            self.service.add_path(
                path, value, formatter=FORMATS.get(path) or self._cell_format(path)
            )
            if path.startswith("/Voltages/") and "_Cell" in path:
                self._published_cells.add(path)
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

    def _cell_format(self, path: str) -> Any:
        return CELL_FORMAT if path.startswith("/Voltages/") else None

    async def _settings_up(self) -> None:
        """Everything that needs localsettings, whenever it appears (at start, late, or after
        it restarted): the VRM instance, the CustomName, and feed-in management."""
        assert self.settings is not None and self.feed_in is not None
        async with self._settings_lock:
            instance, name, granted = await self._from_settings()
            if not granted:
                return
            self._identity = (instance, name)
            if not self._instance_watched:
                path = instance_setting_path(self.config.service.unique_id)
                await self.settings.watch(path, self._instance)
                self._instance_watched = True
            service = self.service
            if service is not None and service.registered:
                if name and service["/CustomName"] != name:
                    service["/CustomName"] = name
                self._instance(path="", value=f"battery:{instance}")
            await self.feed_in.start()
            self.feed_in.resync()  # the next cycle writes the decision again
            self.request_cycle()

    def owner_changed(self, name: str, old: str, new: str) -> None:
        if name != SETTINGS_SERVICE:
            return
        if new:
            log.info("localsettings is on the bus: VRM instance and feed-in management resume")
            self._spawn(self._settings_up())
        else:
            log.warning("localsettings left the bus: feed-in is managed again when it is back")

    async def _from_settings(self) -> tuple[int, str, bool]:
        """DeviceInstance and CustomName from localsettings (True), or the config's (False)."""
        s = self.config.service
        assert self.settings is not None
        name_path = f"/Settings/Devices/{s.unique_id}/CustomName"
        try:
            instance = await asyncio.wait_for(
                self.settings.allocate_device_instance(s.unique_id, "battery", s.device_instance),
                SETTINGS_TIMEOUT,
            )
            granted = await self.settings.add_settings([Setting(name_path, s.custom_name)])
            name = granted.get(name_path)
            return instance, name if isinstance(name, str) else s.custom_name, True
        except (busmod.BusCallError, TimeoutError, RuntimeError) as exc:
            log.warning(
                "localsettings unavailable (%s): using DeviceInstance %d from the config",
                exc, s.device_instance,
            )  # fmt: skip
            return s.device_instance, s.custom_name, False

    def _instance(self, path: str, value: Value) -> None:
        """The user changed our VRM instance (GUI, VRM): publish it and re-register."""
        cls, _, number = str(value).partition(":")
        service = self.service
        if service is None or cls != "battery" or not number.isdigit():
            return
        if service["/DeviceInstance"] != int(number):
            service["/DeviceInstance"] = int(number)
            log.info("VRM instance changed to %s: re-registering so consumers rescan", number)
            self._spawn(service.reregister())

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
        self._save()
        self.request_cycle()
        service = self.service
        if service is not None:  # ready for the next request (a same value is no change)
            asyncio.get_running_loop().call_soon(service.__setitem__, FORGET_PATH, "")
        return True

    def _custom_name(self, path: str, value: Value) -> bool:
        """A client's SetValue on /CustomName: a name, bounded (it is in every GetItems)."""
        if not isinstance(value, str) or len(value) > CUSTOM_NAME_MAX:
            return False
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            return False
        if self.settings is not None:
            name_path = f"/Settings/Devices/{self.config.service.unique_id}/CustomName"
            self._spawn(self._save_setting(name_path, value))
        return True

    async def _save_setting(self, path: str, value: Value) -> None:
        assert self.settings is not None
        try:
            await self.settings.set_value(path, value)
        except busmod.BusCallError as exc:
            log.warning("could not save %s: %s", path, exc)

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
        loop = asyncio.get_running_loop()
        interval = self.config.daemon.update_interval

        def tick() -> None:  # a timer chain: no task or timeout object per cycle
            if self._changed_since_cycle or self.mono() - self._last_cycle >= IDLE_CYCLE_S:
                self.cycle()
            if not self._stopping.is_set():
                self._timer = loop.call_later(interval, tick)

        self._timer = loop.call_later(interval, tick)
        watch = asyncio.ensure_future(self._watch_connections())
        try:
            await self._stopping.wait()
        finally:
            watch.cancel()
            if self._timer is not None:
                self._timer.cancel()
            await self.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _watch_connections(self) -> None:
        """A lost bus connection (the dbus-daemon restarted, a peer made dbus-fast drop it) is
        never survived silently: for Venus a BMS that vanished is "BMS lost". The process ends
        with a non-zero status, so that daemontools starts it again at once."""
        roles = {"monitor": self.monitor, "service": self.service}
        # shielded: cancelling this watch must not cancel dbus-fast's own disconnect future,
        # which close() still awaits; what the shielded wait ends with is read once, so that
        # a lost connection is one log line, not a "never retrieved" traceback at exit
        waits = {}
        for name, role in roles.items():
            if role is not None:
                inner = asyncio.ensure_future(role.bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
                inner.add_done_callback(_retrieved)
                waits[asyncio.shield(inner)] = name
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:  # both connections may have ended at once: read each
                task.cancel() if not task.done() else _retrieved(task)
        if self._stopping.is_set():
            return
        task = next(iter(done))
        why = task.exception() if not task.cancelled() else None
        self._connection_lost(waits[task], why)

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
        saved = self._save()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 2.0)
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
        self._changed_since_cycle = True
        name = service.name
        if name not in self._bank:
            return  # a battery that is not in the bank never drives the loop
        if self.cells is not None:
            self.cells.on_values(service, changes)
        for path in changes:  # rule 10: the core says which paths are signs of life
            if is_measurement(path):
                self._measured_at[name] = service.last_change
                if is_vital(path):
                    self._vital_at[name] = service.last_change
                    break
        if self._urgency.urgent(changes):
            self.request_cycle()

    def service_added(self, service: RemoteService) -> None:
        self._vital_at[service.name] = self._measured_at[service.name] = self.mono()
        self._changed_since_cycle = True
        self.request_cycle()

    def service_removed(self, service: RemoteService) -> None:
        self._vital_at.pop(service.name, None)
        self._measured_at.pop(service.name, None)
        self._changed_since_cycle = True
        self.request_cycle()

    def request_cycle(self) -> None:
        """Run a cycle soon; a burst of changes in one event-loop turn gives one cycle."""
        if self._cycle_requested or self.service is None or not self.service.registered:
            return
        self._cycle_requested = True
        wait = (1.0 - self._refill_tokens()) * MIN_URGENT_INTERVAL_S
        loop = asyncio.get_running_loop()
        if wait > 0:  # a flood: one cycle per MIN_URGENT_INTERVAL_S once the burst is spent
            loop.call_later(wait, self._requested_cycle)
        else:
            loop.call_soon(self._requested_cycle)

    def _refill_tokens(self) -> float:
        now = self.mono()
        refill = (now - self._tokens_at) / MIN_URGENT_INTERVAL_S
        self._urgent_tokens = min(float(URGENT_BURST), self._urgent_tokens + refill)
        self._tokens_at = now
        return self._urgent_tokens

    def _requested_cycle(self) -> None:
        self._cycle_requested = False
        self._urgent_tokens = self._refill_tokens() - 1.0
        self.cycle()

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
        self._changed_since_cycle, self._last_cycle = False, now_mono
        services = {s.name: s.values for s in self.monitor.services.values()}
        batteries = select_batteries(services, config, config.service.name)
        self._bank = set(batteries)
        activity = {}
        for name in batteries:
            last = self.monitor.services[name].last_change
            moved = self._measured_at.get(name, last)
            activity[name] = Activity(moved, self._vital_at.get(name, moved))
        measured = measure_current(services, config)
        if measured.problem != self._current_problem:
            if measured.problem:
                log.warning("current source unusable (%s): using the BMS current", measured.problem)
            elif self._current_problem:
                log.info("current from %s again", measured.detail)
            self._current_problem = measured.problem
        names = {n: v.get(config.batteries.name_path) for n, v in batteries.items()}
        result = run_cycle(
            batteries, names, config, self.engine,
            now_mono=now_mono, now_wall=now_wall, month=time.localtime(now_wall).tm_mon,
            measured_current=measured.value, activity=activity,
            ccl_honoured=ccl_honoured_with_feed_in(services),
            cell_faults=self.cells.watch.disagree if self.cells else None,
        )  # fmt: skip
        self.engine = result.state
        self.result = result
        self._urgency = urgency(result.limits, config)
        if self.cells is not None:
            self.cells.after_cycle(batteries, self._urgency.attentive, now_mono)
        self.cycles += 1
        return result

    def _publish(self, result: CycleResult) -> None:
        assert self.service is not None
        values = cycle_values(result, self.config)
        if self._current_problem:
            values["/Alarms/InternalFailure"] = max(values["/Alarms/InternalFailure"], 1)
        if self.config.service.publish_cell_voltages:
            cells = {p for p in values if p.startswith("/Voltages/") and "_Cell" in p}
            gone = self._published_cells - cells
            new = cells - self._published_cells
            if gone:
                self.service.remove_paths(gone)
            if new:
                self.service.add_paths({p: values[p] for p in new}, formatter=CELL_FORMAT)
            self._published_cells = cells
        self.service.publish(values)

    def _after_cycle(self, result: CycleResult) -> None:
        self._log_transitions(result)
        limits = result.limits
        if self.feed_in is not None and self.feed_in.pending(limits.feed_in_off):
            self._spawn(self.feed_in.apply(limits.feed_in_off, limits.feed_in_reason))
        if save_due(self.engine, self._saved, self._feed_in_original, self.config):
            self._save()

    def _save(self) -> bool:
        engine = self.engine
        state = to_state(engine, self._feed_in_original)
        try:
            save_state(self.state_dir, state)
        except OSError as exc:
            if not self._save_failing:
                log.error("could not save the state in %s: %s (said once)", self.state_dir, exc)
            self._save_failing = True
            return False
        if self._save_failing:
            log.info("the state is saved again in %s", self.state_dir)
        self._save_failing = False
        self._saved = state
        if engine.counter is not None:
            self.engine = replace(engine, counter=coulomb.mark_saved(engine.counter))
        return True

    def _persist_feed_in(self, original: int | None) -> None:
        self._feed_in_original = original
        self._save()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- logging transitions only -------------------------------------------------------------

    def _log_transitions(self, result: CycleResult) -> None:
        status = {
            r.key: (f"left out: {r.reason}" if isinstance(r, Invalid) else "online")
            for r in result.readings
        }
        for key, text in status.items():
            if self._last_status.get(key) != text:
                level = logging.WARNING if text != "online" else logging.INFO
                log.log(level, "battery %s: %s", key, text)
        for key in self._last_status.keys() - status.keys():
            log.warning("battery %s left the bus", key)
        self._last_status = status
        for found in result.recognised:
            log.warning("%s", found.text)
        self._log_faults(result)
        limits = result.limits
        if limits.mode.text != self._last_mode:
            log.info(
                "mode %s: CVL %.2f V (%s), CCL %.1f A (%s), DCL %.1f A (%s)",
                limits.mode.text, limits.cvl.value, limits.cvl.reason, limits.ccl.value,
                limits.ccl.reason, limits.dcl.value, limits.dcl.reason,
            )  # fmt: skip
            self._last_mode = limits.mode.text
        for event in (
            result.state.balancing.event,
            result.state.counter and result.state.counter.event,
        ):
            if event and event not in ("", "capacity changed"):
                log.info("%s", event)
        period = self.config.daemon.log_period
        now = self.mono()
        if period and now - self._last_summary >= period:
            self._last_summary = now
            agg = result.aggregate
            log.info(
                "%d online, %d offline; %.2f V %.1f A SoC %s; CVL %.2f CCL %.1f DCL %.1f",
                len(agg.batteries), agg.modules_offline, agg.voltage or 0.0, agg.current or 0.0,
                "---" if result.soc is None else f"{result.soc:.1f} %",
                limits.cvl.value, limits.ccl.value, limits.dcl.value,
            )  # fmt: skip

    def _log_faults(self, result: CycleResult) -> None:
        """Rule 2: one line when a pack starts publishing a bad value, one when it stops."""
        faults = result.aggregate.faults
        for key in self._last_faults.keys() | faults.keys():
            now = {f.path for f in faults.get(key, ())}
            before = self._last_faults.get(key, frozenset())
            for fault in faults.get(key, ()):
                if fault.path not in before:
                    log.warning("battery %s: %s", key, fault.text)
            for path in sorted(before - now):
                log.info("battery %s: %s is plausible again", key, path)
        self._last_faults = {k: frozenset(f.path for f in v) for k, v in faults.items()}
        notes = {b.key: b.notes for b in result.aggregate.batteries if b.notes}
        for key, texts in notes.items():
            if self._last_notes.get(key) != texts:
                for text in texts:
                    log.info("battery %s %s", key, text)
        self._last_notes = notes
