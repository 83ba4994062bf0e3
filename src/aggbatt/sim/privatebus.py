"""A private dbus-daemon for tests, the demo and benchmarks: never the system bus of the host."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_message_size">100000000</limit>
  <limit name="max_match_rules_per_connection">50000</limit>
  <limit name="max_replies_per_connection">50000</limit>
  <limit name="max_connections_per_user">10000</limit>
</busconfig>
"""


class PrivateBusError(RuntimeError):
    pass


class PrivateBus:
    """Start a dbus-daemon on a socket in a temporary folder; ``address`` is its bus address.

    Use it as a context manager. ``export()`` sets DBUS_SESSION_BUS_ADDRESS so that velib's
    rule ("session bus when that variable is set") puts every client on this bus.
    """

    def __init__(self) -> None:
        self._dir: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self.address = ""

    def start(self) -> str:
        daemon = shutil.which("dbus-daemon")
        if daemon is None:
            raise PrivateBusError(
                "dbus-daemon is not installed; on Debian/Ubuntu: apt-get install dbus"
            )
        self._dir = tempfile.mkdtemp(prefix="aggbatt-bus-")
        socket = Path(self._dir) / "bus"
        config = Path(self._dir) / "bus.conf"
        config.write_text(_CONFIG.format(socket=socket))
        return self._launch(daemon, config)

    @property
    def socket_address(self) -> str:
        """The address without the daemon's guid: it stays valid across :meth:`restart`."""
        assert self._dir is not None
        return f"unix:path={Path(self._dir) / 'bus'}"

    def restart(self) -> str:
        """Stop the dbus-daemon and start a new one on the same socket, as after a crash of
        the system bus: every connection to the old one is lost."""
        assert self._dir is not None and self._proc is not None
        self._terminate()
        (Path(self._dir) / "bus").unlink(missing_ok=True)
        daemon = shutil.which("dbus-daemon")
        assert daemon is not None
        return self._launch(daemon, Path(self._dir) / "bus.conf")

    def _launch(self, daemon: str, config: Path) -> str:
        self._proc = subprocess.Popen(
            [daemon, f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line:
            err = self._proc.stderr.read() if self._proc.stderr else ""
            self.stop()
            raise PrivateBusError(f"dbus-daemon did not start: {err.strip()}")
        self.address = line
        return line

    def export(self) -> None:
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = self.address

    def stop(self) -> None:
        self._terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _terminate(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            for stream in (self._proc.stdout, self._proc.stderr):
                if stream is not None:
                    stream.close()
            self._proc = None

    def __enter__(self) -> PrivateBus:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
