#!/bin/bash
# (Re)start aggbatt under daemontools and make it survive reboots and firmware updates:
# /service is a tmpfs rebuilt at every boot, so /data/rc.local links it again.
set -eu
ROOT=${ROOT:-}
APP="$ROOT/data/apps/aggbatt"
RC="$ROOT/data/rc.local"
# shellcheck source=rclocal.sh
. "$(dirname "$0")/rclocal.sh"
rc_add "$RC"
mkdir -p "$ROOT/service"
ln -sfn "$APP/service" "$ROOT/service/aggbatt"
# the aggbatt command on PATH, where the root filesystem lets us (made again at every boot)
if [ -d "$ROOT/usr/local/bin" ] && [ -w "$ROOT/usr/local/bin" ]; then
    ln -sfn "$APP/aggbatt" "$ROOT/usr/local/bin/aggbatt" 2>/dev/null || true
fi
# up (svscan finds a new link within 5 s by itself; an upgrade left it down on purpose)
if command -v svc >/dev/null; then
    svc -u "$ROOT/service/aggbatt" 2>/dev/null || true
fi
