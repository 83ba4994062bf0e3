#!/bin/bash
# Install or update aggbatt in /data/apps/aggbatt on Venus OS (v3.60 or later, Python 3.12).
#   bash install.sh                    from an unpacked release or a clone, online (PyPI)
#   bash install.sh --wheels DIR       offline, with the wheels in DIR (see docs/install.md)
# Your config.toml and the state survive updates. ROOT (default /) prefixes every path; the
# tests install into a temporary folder with it.
set -euo pipefail
ROOT=${ROOT:-}
SRC=$(cd "$(dirname "$0")" && pwd)
APP="$ROOT/data/apps/aggbatt"
WHEELS=""
[ "${1:-}" = "--wheels" ] && WHEELS=$(cd "$2" && pwd)

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "aggbatt needs Python 3.11 or later (Venus OS v3.60+); this is $(python3 --version)" >&2
    exit 1
}
if ! python3 -m venv --help >/dev/null 2>&1 && command -v opkg >/dev/null; then
    opkg update && opkg install python3-venv python3-pip
fi

mkdir -p "$APP/state"
rm -rf "$APP/src" "$APP/service"
cp -r "$SRC/src" "$SRC/service" "$SRC/pyproject.toml" "$SRC/README.md" "$APP/"
cp "$SRC/install.sh" "$SRC/uninstall.sh" "$SRC/enable.sh" "$SRC/rclocal.sh" "$APP/"
cp "$SRC/config.toml" "$APP/config.default.toml"
[ -f "$APP/config.toml" ] || cp "$SRC/config.toml" "$APP/config.toml"
chmod +x "$APP"/*.sh "$APP/service/run" "$APP/service/log/run"

# system site packages: Venus's own python3-dbus-fast is used when it is new enough
[ -x "$APP/venv/bin/python" ] || python3 -m venv --system-site-packages "$APP/venv"
PIP=("$APP/venv/bin/python" -m pip install -q --disable-pip-version-check)
[ -n "$WHEELS" ] && PIP+=(--no-index --find-links "$WHEELS")
if ! "$APP/venv/bin/python" -c 'import dbus_fast, sys; from importlib.metadata import version
sys.exit(tuple(map(int, version("dbus-fast").split(".")[:2])) < (2, 22))' 2>/dev/null; then
    SKIP_CYTHON=1 "${PIP[@]}" "dbus-fast>=2.22"
fi
"${PIP[@]}" "pydantic>=2"

# aggbatt itself runs from $APP/src (PYTHONPATH in service/run): nothing to build on the device
PYTHONPATH="$APP/src" "$APP/venv/bin/python" -m aggbatt check --config "$APP/config.toml" >/dev/null || {
    echo "installed, but $APP/config.toml is not valid: fix it, then: bash $APP/enable.sh" >&2
    exit 1
}
bash "$APP/enable.sh"
echo "aggbatt installed in $APP. Select it in the GUI as battery monitor and BMS: docs/install.md"
