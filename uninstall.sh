#!/bin/bash
# Stop aggbatt and remove it from the boot; --purge also deletes /data/apps/aggbatt and its
# logs (config and state included). Then set the battery monitor and BMS back in the GUI.
# Stopping writes the user's DC-coupled feed-in value back (rule 11 of core/safety.py); if
# aggbatt still holds one afterwards, it is written back here, and a purge keeps the state
# folder until that has worked. AGGBATT_BUS (default: system) is the bus it is written on.
set -eu
ROOT=${ROOT:-}
APP="$ROOT/data/apps/aggbatt"
RC="$ROOT/data/rc.local"
SERVICE="$ROOT/service/aggbatt"
if command -v svc >/dev/null && [ -e "$SERVICE" ]; then
    svc -d "$SERVICE" 2>/dev/null || true
    for _ in $(seq 1 20); do  # the daemon restores feed-in on its way down
        svstat "$SERVICE" 2>/dev/null | grep -q ": up" || break
        sleep 0.5
    done
    svc -dx "$SERVICE" "$SERVICE/log" 2>/dev/null || true  # and supervise leaves too
fi
rm -f "$ROOT/service/aggbatt"
[ -L "$ROOT/usr/local/bin/aggbatt" ] && rm -f "$ROOT/usr/local/bin/aggbatt"
# shellcheck source=rclocal.sh
. "$(dirname "$0")/rclocal.sh"
rc_remove "$RC"
restored=1
if [ -x "$APP/venv/bin/python" ] && [ -f "$APP/state/state.json" ]; then
    PYTHONPATH="$APP/src" "$APP/venv/bin/python" -m aggbatt restore-feed-in \
        --state-dir "$APP/state" --bus "${AGGBATT_BUS:-system}" || restored=0
fi
if [ "${1:-}" = "--purge" ]; then
    if [ "$restored" = 0 ]; then
        find "$APP" -mindepth 1 -maxdepth 1 ! -name state ! -name venv ! -name src \
            ! -name uninstall.sh ! -name rclocal.sh -exec rm -rf {} +
        echo "aggbatt removed, except $APP/state (and what restores from it): it still holds" \
            "your feed-in value; run this again once localsettings answers" >&2
        exit 1
    fi
    rm -rf "$APP" "$ROOT/var/log/aggbatt"
    echo "aggbatt removed"
else
    echo "aggbatt stopped and disabled; $APP kept (--purge removes it)"
fi
