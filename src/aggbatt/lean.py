"""The daemon process leaves out what it never uses (figures in docs/benchmarks.md).

asyncio imports ``ssl`` when it can, and ``hashlib`` imports ``_hashlib``: together they map
OpenSSL's libssl and libcrypto, about 5 MiB of a GX's memory for a process that never speaks
TLS. Marked absent before anything imports them, those imports fail the way asyncio and
hashlib expect (an ImportError they catch): asyncio runs without TLS support and hashlib uses
Python's own implementations. Only ``aggbatt run`` does this; every other command and every
importer of the package is left as it is.
"""

from __future__ import annotations

import sys

NOT_NEEDED = ("ssl", "_hashlib")


def leave_out_unused() -> None:
    """Call before asyncio is imported; modules already imported are kept."""
    for name in NOT_NEEDED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
