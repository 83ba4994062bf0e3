"""``python -m aggbatt``: the CLI, with a one-line error when the installation is broken."""

import sys

EXIT_BROKEN_INSTALL = 4

if sys.argv[1:2] == ["run"]:
    from aggbatt.lean import leave_out_unused

    leave_out_unused()

try:
    from aggbatt.cli import main
except ImportError as exc:  # a venv without pydantic or dbus-fast: say which, no traceback
    print(
        f"aggbatt: cannot import {exc.name or exc} ({exc}); the installation is broken: run "
        "install.sh again",
        file=sys.stderr,
    )
    raise SystemExit(EXIT_BROKEN_INSTALL) from None

raise SystemExit(main())
