# Sourced by enable.sh and uninstall.sh: aggbatt's one line in /data/rc.local, done right.
# rc_add: a final newline first (never glue onto another program's line), then the line once,
# before the last `exit 0` (after it, it would never run). rc_remove: exactly that line, and
# nothing else; a line an older aggbatt glued onto another program's line gets that line back.
RC_LINE="bash /data/apps/aggbatt/enable.sh > /data/apps/aggbatt/startup.log 2>&1 &"

rc_add() {  # rc_add FILE
    local rc=$1
    if [ ! -f "$rc" ]; then
        mkdir -p "$(dirname "$rc")"
        printf '#!/bin/bash\n' > "$rc"
    fi
    chmod 755 "$rc"
    grep -qxF "$RC_LINE" "$rc" && return 0
    if [ -s "$rc" ] && [ -n "$(tail -c1 "$rc")" ]; then
        printf '\n' >> "$rc"
    fi
    local last
    last=$(grep -nE '^[[:space:]]*exit[[:space:]]+0[[:space:]]*$' "$rc" | tail -n 1 | cut -d: -f1)
    if [ -n "$last" ]; then
        awk -v n="$last" -v line="$RC_LINE" 'NR == n {print line} {print}' "$rc" > "$rc.aggbatt"
        cat "$rc.aggbatt" > "$rc" && rm -f "$rc.aggbatt"
    else
        printf '%s\n' "$RC_LINE" >> "$rc"
    fi
}

rc_remove() {  # rc_remove FILE
    local rc=$1
    [ -f "$rc" ] || return 0
    awk -v line="$RC_LINE" '
        $0 == line { next }
        { i = index($0, line)
          if (i > 1 && i + length(line) - 1 == length($0)) { print substr($0, 1, i - 1); next }
          print }' "$rc" > "$rc.aggbatt"
    cat "$rc.aggbatt" > "$rc" && rm -f "$rc.aggbatt"
}
