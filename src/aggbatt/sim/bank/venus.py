"""Venus's side of the loop: solar chargers, a Multi with AC loads and ESS, and DVCC.

Written from ``docs/dvcc.md`` and systemcalc's dvcc.py (what it does with a BMS's limits),
reduced to what decides a cell's fate: with DC-coupled PV feed-in on, the solar chargers run
at full power and only the charge *voltage* is honoured (the Multi exports the surplus to hold
the bus at the CVL): neither the CCL, 0 A included, nor the battery's ``AllowToCharge`` stops
PV then (systemcalc reads only the VE.Bus ``/Bms/AllowToCharge``; the conservative reading).
With it off, the charge current is held at the CCL, and ``AllowToCharge`` 0 stops charging.
``AllowToDischarge`` 0 stops discharging; a BMS that vanished stops the solar chargers. A
Multi-RS (``ccl_honoured``) honours the CCL with feed-in on and exports the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from aggbatt.sim.bank.cells import Bank

Weather = Literal["clear", "cloudy", "winter"]


@dataclass(frozen=True)
class Limits:
    """What the BMS (the controller under test) publishes for DVCC."""

    cvl: float
    ccl: float
    dcl: float
    allow_charge: bool = True
    allow_discharge: bool = True
    present: bool = True
    """False: the BMS service is gone (DVCC's "BMS lost")."""


@dataclass(frozen=True)
class SolarSite:
    peak_w: float = 12000.0
    weather: Weather = "clear"
    load_w: float = 600.0
    evening_load_w: float = 2500.0
    ccl_honoured: bool = False
    """A Multi-RS: systemcalc honours the CCL with feed-in on (its acsystem path)."""
    feed_in_offset_v: float = 0.0
    """With feed-in on, how far above the CVL the bank is held: systemcalc lets the solar
    chargers run up to 0.4 V above it (``ovoffset``) while the Multi exports; 0 is a Multi
    that holds the CVL exactly."""


def solar_w(site: SolarSite, t_s: float) -> float:
    """PV power at time ``t_s`` (s since midnight of day 0): a half sine over the daylight."""
    hour = (t_s / 3600.0) % 24.0
    day = int(t_s // 86400)
    rise, set_ = (8.5, 16.0) if site.weather == "winter" else (6.0, 20.0)
    if not rise < hour < set_:
        return 0.0
    power = site.peak_w * math.sin(math.pi * (hour - rise) / (set_ - rise))
    if site.weather == "winter":
        power *= 0.35
    elif site.weather == "cloudy":  # passing clouds, the same every run
        power *= 0.55 + 0.45 * math.sin(hour * 7.3 + day * 1.7) ** 2
    return power


def load_w(site: SolarSite, t_s: float) -> float:
    hour = (t_s / 3600.0) % 24.0
    return site.load_w + (site.evening_load_w if 18.0 <= hour < 22.0 else 0.0)


def battery_current(
    bank: Bank, limits: Limits, feed_in: bool, site: SolarSite, t_s: float
) -> float:
    """The bank current (+ charging) that DVCC and ESS make of the limits this second."""
    volts = bank.share(0.0)
    surplus = (solar_w(site, t_s) - load_w(site, t_s)) / volts
    if not limits.present:
        return 0.0  # BMS lost: the solar chargers stop, the grid feeds the loads
    if surplus >= 0.0:
        hold_cvl = max(0.0, bank.current_for_voltage(limits.cvl, charging=True))
        if feed_in and not site.ccl_honoured:  # chargers maximised: only the CVL holds
            over = site.feed_in_offset_v
            loose = max(0.0, bank.current_for_voltage(limits.cvl + over, charging=True))
            return min(surplus, loose)
        if not limits.allow_charge:
            return 0.0
        return max(0.0, min(surplus, limits.ccl, hold_cvl))
    if not limits.allow_discharge:
        return 0.0
    return max(surplus, -limits.dcl)


def pv_flows(
    limits: Limits, feed_in: bool, site: SolarSite, t_s: float, current_a: float, volts: float
) -> tuple[float, float]:
    """(exported W, curtailed W) of the PV this second: with feed-in on the Multi exports what
    the loads and the bank do not take; with it off the chargers throttle (curtailed)."""
    pv = solar_w(site, t_s)
    if not limits.present:
        return 0.0, pv  # BMS lost: the solar chargers stop
    spare = max(0.0, pv - load_w(site, t_s) - max(0.0, current_a) * volts)
    return (spare, 0.0) if feed_in else (0.0, spare)
