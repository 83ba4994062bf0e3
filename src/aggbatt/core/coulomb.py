"""The bank's own Coulomb counter: integrates current over monotonic time (pure).

* Time comes in as a monotonic reading, so an NTP step of the wall clock never moves the SoC
  (the reference integrated wall-clock differences, field notes §4.12). A gap longer than
  ``MAX_GAP_S`` (a stalled loop) is not integrated: the current during it is unknown.
* Charge current counts times the efficiency; discharge counts in full.
* The count stays within [0, installed capacity]. When the installed capacity changes (a pack
  drops out or rejoins) the count is scaled so the SoC stays where it was.
* Resets: 100 % when the highest cell reaches the full voltage, 0 % (optional) when the lowest
  cell falls to the empty voltage.
* ``needs_save`` says when the count moved by ``save_precision`` x capacity since the last save.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

MAX_GAP_S = 30.0


@dataclass(frozen=True, slots=True)
class CounterSettings:
    efficiency: float = 0.98
    save_precision: float = 0.0025
    full_cell_voltage: float = 3.45
    empty_cell_voltage: float = 2.90
    zero_reset: bool = False


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
    """What the last step did beyond integrating ("reset to 100 %", "gap skipped" ...)."""

    @property
    def soc(self) -> float:
        return 100.0 * self.charge_ah / self.installed_ah if self.installed_ah > 0 else 0.0


def start_counter(
    installed_ah: float, stored_ah: float | None, stored_installed_ah: float | None, bms_soc: float
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
            return Counter(charge, installed_ah, saved_ah=charge, event=event)
        charge = min(max(stored_ah, 0.0), installed_ah)
        event = (
            f"counter restored from a migrated charge of {stored_ah:.1f} Ah (no capacity was "
            f"stored: taken against today's {installed_ah:.1f} Ah)"
        )
        return Counter(charge, installed_ah, saved_ah=None, event=event)
    charge = min(max(bms_soc / 100.0 * installed_ah, 0.0), installed_ah)
    # not on disk yet: saved at the first cycle, so a restart cannot fall back to the BMS SoC
    event = f"counter started from the BMS SoC {bms_soc:.1f} %: the state holds no charge"
    return Counter(charge, installed_ah, saved_ah=None, event=event)


def step(
    counter: Counter,
    current_a: float,
    now: float,
    installed_ah: float,
    max_cell_v: float | None,
    min_cell_v: float | None,
    settings: CounterSettings,
) -> Counter:
    """Advance to monotonic time ``now`` with the bank current ``current_a`` (+ = charging)."""
    charge, event = counter.charge_ah, ""
    if installed_ah > 0 and counter.installed_ah > 0 and installed_ah != counter.installed_ah:
        charge = charge * installed_ah / counter.installed_ah
        event = "capacity changed"
    if counter.last_time is not None:
        dt = now - counter.last_time
        if dt > MAX_GAP_S:
            event = f"gap of {dt:.0f} s not integrated"
        elif dt > 0:
            current = counter.last_current
            gain = settings.efficiency if current > 0 else 1.0
            charge += current * gain * dt / 3600.0
    if max_cell_v is not None and max_cell_v >= settings.full_cell_voltage:
        if charge < installed_ah:
            event = "reset to 100 %"
        charge = installed_ah
    elif (
        settings.zero_reset and min_cell_v is not None and min_cell_v <= settings.empty_cell_voltage
    ):
        if charge > 0:
            event = "reset to 0 %"
        charge = 0.0
    charge = min(max(charge, 0.0), installed_ah)
    return replace(
        counter,
        charge_ah=charge,
        installed_ah=installed_ah,
        last_time=now,
        last_current=current_a,
        event=event,
    )


def needs_save(counter: Counter, settings: CounterSettings) -> bool:
    if counter.saved_ah is None:
        return True
    return (
        abs(counter.charge_ah - counter.saved_ah) >= settings.save_precision * counter.installed_ah
    )


def mark_saved(counter: Counter) -> Counter:
    return replace(counter, saved_ah=counter.charge_ah)
