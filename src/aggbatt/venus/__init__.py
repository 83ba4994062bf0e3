"""The Victron BusItem protocol on dbus-fast: export a service, monitor others, use settings.

One module per role, as Victron's aiovelib: :mod:`.service` (export), :mod:`.client` (monitor),
:mod:`.settings` (localsettings client); :mod:`.wire` holds the value encoding all three share.
"""
