#!/bin/bash
# Stop aggbatt and remove it from the boot; --purge also deletes /data/apps/aggbatt and its
# logs (config and state included). Then set the battery monitor and BMS back in the GUI.
set -eu
ROOT=${ROOT:-}
APP="$ROOT/data/apps/aggbatt"
RC="$ROOT/data/rc.local"
if command -v svc >/dev/null && [ -z "$ROOT" ]; then svc -d /service/aggbatt 2>/dev/null || true; fi
rm -f "$ROOT/service/aggbatt"
[ -f "$RC" ] && sed -i '\#/data/apps/aggbatt/enable.sh#d' "$RC"
if [ "${1:-}" = "--purge" ]; then
    rm -rf "$APP" "$ROOT/var/log/aggbatt"
    echo "aggbatt removed"
else
    echo "aggbatt stopped and disabled; $APP kept (--purge removes it)"
fi
