#!/bin/bash
# Install or update aggbatt in /data/apps/aggbatt on Venus OS (v3.60 or later, Python 3.12).
#   bash install.sh [--yes]              from an unpacked release or a clone, online (PyPI)
#   bash install.sh [--yes] --wheels DIR offline, with the wheels in DIR (see docs/install.md)
# A first install checks the live system (aggbatt doctor --before-enable) and starts the
# service only when you confirm (or pass --yes): the shipped config may not be your bank.
# Running it again is an upgrade: the service is stopped and waited for, the files are
# replaced in place (never the service folder under svscan), the service comes back up; your
# config.toml and the state are kept byte for byte. ROOT (default /) prefixes every path; the
# tests install into a temporary folder with it; AGGBATT_BUS (default system) is the bus.
set -euo pipefail
ROOT=${ROOT:-}
SRC=$(cd "$(dirname "$0")" && pwd)
APP="$ROOT/data/apps/aggbatt"
WHEELS=""
YES=""
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) WHEELS=$(cd "$2" && pwd); shift 2 ;;
        --yes) YES=1; shift ;;
        *) echo "usage: install.sh [--yes] [--wheels DIR]" >&2; exit 2 ;;
    esac
done
# a release tarball carries its wheels: use the ones for this CPU, offline
[ -z "$WHEELS" ] && [ -d "$SRC/wheels" ] && WHEELS="$SRC/wheels"
if [ -n "$WHEELS" ] && [ -d "$WHEELS/$(uname -m)" ]; then
    WHEELS="$WHEELS/$(uname -m)"
fi
UPGRADE=""
grep -qs "/data/apps/aggbatt/enable.sh" "$ROOT/data/rc.local" && UPGRADE=1

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "aggbatt needs Python 3.11 or later (Venus OS v3.60+); this is $(python3 --version)" >&2
    exit 1
}
if ! python3 -m venv --help >/dev/null 2>&1 && command -v opkg >/dev/null; then
    opkg update && opkg install python3-venv python3-pip
fi

SERVICE="$ROOT/service/aggbatt"
if command -v svc >/dev/null && [ -e "$SERVICE" ]; then
    svc -d "$SERVICE" 2>/dev/null || true  # SIGTERM: aggbatt writes the feed-in back first
    for _ in $(seq 1 40); do
        svstat "$SERVICE" 2>/dev/null | grep -q ": up" || break
        sleep 0.5
    done
fi
mkdir -p "$APP/state" "$APP/service/log"
rm -rf "$APP/src"
cp -r "$SRC/src" "$SRC/pyproject.toml" "$SRC/README.md" "$APP/"
# in place: svscan's supervise/ folders inside the service folder stay where they are
cp "$SRC/service/run" "$APP/service/run"
cp "$SRC/service/log/run" "$APP/service/log/run"
cp "$SRC/install.sh" "$SRC/uninstall.sh" "$SRC/enable.sh" "$SRC/rclocal.sh" "$SRC/aggbatt" "$APP/"
cp "$SRC/config.toml" "$APP/config.default.toml"
[ -f "$APP/config.toml" ] || cp "$SRC/config.toml" "$APP/config.toml"
chmod +x "$APP"/*.sh "$APP/aggbatt" "$APP/service/run" "$APP/service/log/run"

# system site packages: Venus's own python3-dbus-fast is used when it is new enough
[ -x "$APP/venv/bin/python" ] || python3 -m venv --system-site-packages "$APP/venv"
PIP=("$APP/venv/bin/python" -m pip install -q --disable-pip-version-check)
[ -n "$WHEELS" ] && PIP+=(--no-index --find-links "$WHEELS")
if ! "$APP/venv/bin/python" -c 'import dbus_fast, sys; from importlib.metadata import version
sys.exit(tuple(map(int, version("dbus-fast").split(".")[:2])) < (2, 22))' 2>/dev/null; then
    SKIP_CYTHON=1 "${PIP[@]}" "dbus-fast>=2.22" || {
        echo "dbus-fast 2.22 or newer is missing and could not be installed: aggbatt needs" >&2
        echo "Venus OS v3.60 or later, which ships it (docs/install.md)" >&2
        exit 1
    }
fi
"${PIP[@]}" "pydantic>=2" || {
    echo "could not install pydantic. Without internet, use the wheels of a release tarball" >&2
    echo "(they are used by themselves) or: bash install.sh --wheels DIR (docs/install.md)" >&2
    exit 1
}

# aggbatt itself runs from $APP/src (PYTHONPATH in service/run): nothing to build on the device
PYTHONPATH="$APP/src" "$APP/venv/bin/python" -m aggbatt check --config "$APP/config.toml" >/dev/null || {
    echo "installed, but $APP/config.toml is not valid: fix it, then: bash $APP/enable.sh" >&2
    exit 1
}
if [ -n "$UPGRADE" ]; then
    bash "$APP/enable.sh"
    echo "aggbatt updated in $APP and running again; config and state kept"
    exit 0
fi
echo "Checking the live system against $APP/config.toml:"
PYTHONPATH="$APP/src" "$APP/venv/bin/python" -m aggbatt doctor --before-enable \
    --config "$APP/config.toml" --bus "${AGGBATT_BUS:-system}" || true
answer=""
if [ -n "$YES" ]; then
    answer=y
elif [ -t 0 ]; then
    read -r -p "Start aggbatt now with this config? [y/N] " answer || answer=""
fi
if [ "$answer" = y ] || [ "$answer" = Y ]; then
    bash "$APP/enable.sh"
    echo "aggbatt installed in $APP and started. Select it in the GUI as battery monitor and BMS:"
    echo "see docs/install.md"
else
    echo "aggbatt installed in $APP but NOT started. Edit $APP/config.toml (batteries.expected,"
    echo "cells_per_battery, chemistry, the voltages of [control.own]), check it with"
    echo "  $APP/aggbatt doctor --before-enable --config $APP/config.toml"
    echo "then start it with: bash $APP/enable.sh"
fi
