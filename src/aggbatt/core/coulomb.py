"""The bank's own Coulomb counter: integrates current over monotonic time (pure).

* Time comes in as a monotonic reading, so an NTP step of the wall clock never moves the SoC
  (the reference integrated wall-clock differences: docs/comparison.md). A gap longer than
  ``MAX_GAP_S`` (a stalled loop) is not integrated: the current during it is unknown.
* The measured current is corrected by ``offset_a``; below ``deadband_a`` it counts as zero
  (a shunt's or BMS's zero error would otherwise walk the count for days).
* Charge current counts times the efficiency; discharge counts in full.
* The count stays within [0, installed capacity]. When the installed capacity changes (a pack
  drops out or rejoins) the count is scaled so the SoC stays where it was.
* Synchronisation to 100 % ("charged") is judged on the **bank voltage**, never on one cell, so
  a runner cell cannot make 100 %. The monitor rule is a Victron battery monitor's: bank voltage
  at or above ``charged_voltage`` with the current at or below the tail current for
  ``charged_time_s``. The reference's rule (``tail_c=None``): the voltage alone, at once.
* Optional 0 % when the lowest cell falls to the empty voltage (the emptiest cell ends the
  discharge, so here one cell is the right witness).
* ``needs_save`` says when the count moved by ``save_precision`` x capacity since the last save.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

MAX_GAP_S = 30.0


@dataclass(frozen=True, slots=True)
class CounterSettings:
    efficiency: float = 0.98
    save_precision: float = 0.0025
    charged_voltage: float = 54.08
    """Bank volts at or above which the bank may count as charged."""
    tail_c: float | None = 0.04
    """Tail current as a fraction of the installed capacity per hour; None: not checked."""
    charged_time_s: float = 180.0
    max_cell_diff: float | None = 0.1
    """The monitor rule also needs the cells within this (V): a bank is full when its
    emptiest cell is; None: not checked (the reference's rule)."""
    empty_cell_voltage: float = 2.90
    zero_reset: bool = False
    deadband_a: float = 0.0
    offset_a: float = 0.0


class Event(enum.Enum):
    """What a counter step did beyond integrating (:attr:`Counter.event` says it in words)."""

    STARTED = "started"
    CAPACITY_CHANGED = "capacity changed"
    GAP = "gap"
    SYNCHRONISED = "synchronised"
    RESET = "reset"

    @property
    def logged(self) -> bool:
        """Worth a log line: a capacity change is every pack that joins or leaves, said by
        the pack's own line already."""
        return self is not Event.CAPACITY_CHANGED


@dataclass(frozen=True, slots=True)
class Counter:
    charge_ah: float
    """Charge in the bank, Ah."""
    installed_ah: float
    last_time: float | None = None
    """Monotonic time of the last step."""
    last_current: float = 0.0
    saved_ah: float | None = None
    """Charge at the last save; None: never saved."""
    event: str = ""
    """What the last step did beyond integrating ("synchronised to 100 % ...", "gap ...")."""
    kind: Event | None = None
    """The same, as a type to branch on; None with no event."""
    charged_since: float | None = None
    """Monotonic time since which the charged condition holds; None: it does not."""
    synced_wall: float | None = None
    """Unix time at which the bank was last found charged (kept in the state file): the
    start of the last charged episode, so a bank held full writes the flash once."""
    sync_reason: str = ""
    """Why the counter last synchronised, for /Info/SocSync."""

    @property
    def soc(self) -> float:
        return 100.0 * self.charge_ah / self.installed_ah if self.installed_ah > 0 else 0.0


def start_counter(
    installed_ah: float,
    stored_ah: float | None,
    stored_installed_ah: float | None,
    bms_soc: float,
    synced_wall: float | None = None,
) -> Counter:
    """A counter from the stored charge (scaled to today's capacity), else from the BMS SoC.

    Its ``event`` says how it started, for the one log line at every start. A stored charge
    without a stored capacity (the reference's files, an import) is taken against today's
    capacity: it is the same bank's count, and the BMS SoC is what it was meant to replace.
    """
    if stored_ah is not None and installed_ah > 0:
        if stored_installed_ah:
            charge = min(max(stored_ah * installed_ah / stored_installed_ah, 0.0), installed_ah)
            event = f"counter restored from the state file: {charge:.1f} of {installed_ah:.1f} Ah"
            return Counter(
                charge, installed_ah, saved_ah=charge, event=event, kind=Event.STARTED,
                synced_wall=synced_wall,
            )  # fmt: skip
        charge = min(max(stored_ah, 0.0), installed_ah)
        event = (
            f"counter restored from a migrated charge of {stored_ah:.1f} Ah (no capacity was "
            f"stored: taken against today's {installed_ah:.1f} Ah)"
        )
        return Counter(
            charge, installed_ah, saved_ah=None, event=event, kind=Event.STARTED,
            synced_wall=synced_wall,
        )  # fmt: skip
    charge = min(max(bms_soc / 100.0 * installed_ah, 0.0), installed_ah)
    # not on disk yet: saved at the first cycle, so a restart cannot fall back to the BMS SoC
    event = f"counter started from the BMS SoC {bms_soc:.1f} %: the state holds no charge"
    return Counter(
        charge, installed_ah, saved_ah=None, event=event, kind=Event.STARTED,
        synced_wall=synced_wall,
    )  # fmt: skip


def corrected_current(current_a: float, settings: CounterSettings) -> float:
    """The current the counter integrates: offset applied, zero inside the dead-band."""
    current = current_a + settings.offset_a
    return 0.0 if abs(current) < settings.deadband_a else current


def _charged(
    bank_voltage: float | None,
    cell_diff: float | None,
    current_a: float,
    installed_ah: float,
    s: CounterSettings,
) -> str:
    """Why the bank counts as charged now (before the detection time), or ""."""
    if bank_voltage is None or bank_voltage < s.charged_voltage:
        return ""
    if s.max_cell_diff is not None and (cell_diff is None or cell_diff > s.max_cell_diff):
        return ""
    if s.tail_c is None:
        return f"reference rule: {bank_voltage:.2f} V >= {s.charged_voltage:.2f} V"
    tail_a = s.tail_c * installed_ah
    if current_a > tail_a:
        return ""
    return (
        f"monitor rule: {bank_voltage:.2f} V >= {s.charged_voltage:.2f} V with "
        f"{current_a:.1f} A <= tail {tail_a:.1f} A for {s.charged_time_s:.0f} s, cells within "
        f"{cell_diff:.3f} V"
    )


def step(
    counter: Counter,
    current_a: float,
    now: float,
    installed_ah: float,
    bank_voltage: float | None,
    min_cell_v: float | None,
    settings: CounterSettings,
    wall: float | None = None,
    cell_diff: float | None = None,
) -> Counter:
    """Advance to monotonic time ``now`` (Unix time ``wall``) with the bank current (+ = in)."""
    current_a = corrected_current(current_a, settings)
    charge, event, kind = counter.charge_ah, "", None
    if installed_ah > 0 and counter.installed_ah > 0 and installed_ah != counter.installed_ah:
        charge = charge * installed_ah / counter.installed_ah
        event, kind = "capacity changed", Event.CAPACITY_CHANGED
    if counter.last_time is not None:
        dt = now - counter.last_time
        if dt > MAX_GAP_S:
            event, kind = f"gap of {dt:.0f} s not integrated", Event.GAP
        elif dt > 0:
            current = counter.last_current
            gain = settings.efficiency if current > 0 else 1.0
            charge += current * gain * dt / 3600.0
    why = _charged(bank_voltage, cell_diff, current_a, installed_ah, settings)
    since = (counter.charged_since if counter.charged_since is not None else now) if why else None
    synced_wall, reason = counter.synced_wall, counter.sync_reason
    if since is not None and now - since >= settings.charged_time_s:
        was = counter.charged_since
        if (
            was is None
            or counter.last_time is None
            or counter.last_time - was < settings.charged_time_s
        ):
            event = f"synchronised to 100 % ({why})"  # once per charged episode
            kind = Event.SYNCHRONISED
            synced_wall, reason = (wall if wall is not None else synced_wall), why
        charge = installed_ah
    elif (
        settings.zero_reset and min_cell_v is not None and min_cell_v <= settings.empty_cell_voltage
    ):
        if charge > 0:
            event, kind = "reset to 0 %", Event.RESET
        charge = 0.0
    charge = min(max(charge, 0.0), installed_ah)
    return replace(
        counter,
        charge_ah=charge,
        installed_ah=installed_ah,
        last_time=now,
        last_current=current_a,
        event=event,
        kind=kind,
        charged_since=since,
        synced_wall=synced_wall,
        sync_reason=reason,
    )


def needs_save(counter: Counter, settings: CounterSettings) -> bool:
    if counter.saved_ah is None:
        return True
    return (
        abs(counter.charge_ah - counter.saved_ah) >= settings.save_precision * counter.installed_ah
    )


def mark_saved(counter: Counter) -> Counter:
    return replace(counter, saved_ah=counter.charge_ah)
