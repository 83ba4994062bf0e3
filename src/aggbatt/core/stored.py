"""What of the core's state survives a restart (the shell's ``state.py`` only encodes it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Phase = Literal["idle", "charging", "holding"]
"""The balancing scheduler's phase (core/balancing.py), kept across restarts."""
PHASES: tuple[Phase, ...] = ("idle", "charging", "holding")


@dataclass(frozen=True, slots=True)
class KnownPack:
    """A pack of the bank: its capacity, when (Unix time) it was last seen, and what
    recognises it under another service name (rule 16)."""

    installed_ah: float
    last_seen: float
    serial: str | None = None
    cells: int | None = None
    name: str | None = None
    """Its display name when it was last seen (for logs and ``aggbatt forget``)."""


@dataclass(frozen=True, slots=True)
class State:
    charge_ah: float | None = None
    installed_ah: float | None = None
    last_balancing: float | None = None
    """Unix time of the last completed balancing."""
    balancing_phase: Phase = "idle"
    balancing_since: float | None = None
    """Unix time since which the bank is at the balancing target or holding (rule 9)."""
    balancing_started: float | None = None
    """Unix time at which the balancing in progress started (rule 9)."""
    last_full_charge: float | None = None
    """Unix time at which the own counter last found the bank charged (synchronised)."""
    feed_in_original: int | None = None
    """The user's /Settings/CGwacs/OvervoltageFeedIn while we hold it at 0; None otherwise."""
    packs: Mapping[str, KnownPack] = field(default_factory=dict)
    """The bank's packs until forgotten, so a restart with one missing still stops charging
    and scales the discharge (rules 8 and 15)."""
