#!/bin/bash
# (Re)start aggbatt under daemontools and make it survive reboots and firmware updates:
# /service is a tmpfs rebuilt at every boot, so /data/rc.local links it again.
set -eu
ROOT=${ROOT:-}
APP="$ROOT/data/apps/aggbatt"
RC="$ROOT/data/rc.local"
LINE="bash /data/apps/aggbatt/enable.sh > /data/apps/aggbatt/startup.log 2>&1 &"
if [ ! -f "$RC" ]; then
    mkdir -p "$(dirname "$RC")"
    printf '#!/bin/bash\n' > "$RC"
fi
chmod 755 "$RC"
grep -qxF "$LINE" "$RC" || echo "$LINE" >> "$RC"
mkdir -p "$ROOT/service"
ln -sfn "$APP/service" "$ROOT/service/aggbatt"
if command -v svc >/dev/null && [ -z "$ROOT" ]; then
    svc -t /service/aggbatt 2>/dev/null || svc -u /service/aggbatt 2>/dev/null || true
fi
