"""install.sh / enable.sh / uninstall.sh into a temporary root, as on a Venus /data partition."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT_DIR = Path(__file__).resolve().parents[1]
LINE = "bash /data/apps/aggbatt/enable.sh > /data/apps/aggbatt/startup.log 2>&1 &"


def sh(script: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ROOT": str(root),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "AGGBATT_BUS": "unix:path=/nonexistent/bus",  # never the host's system bus
    }
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        ["bash", str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_install_update_and_uninstall(tmp_path: Path) -> None:
    root = tmp_path / "venus"
    (root / "data").mkdir(parents=True)
    (root / "data" / "rc.local").write_text("#!/bin/bash\necho other things\n")
    first = sh(str(ROOT_DIR / "install.sh"), root)
    assert first.returncode == 0, first.stderr
    app = root / "data" / "apps" / "aggbatt"
    assert (app / "venv" / "bin" / "python").exists()
    # a first install is deliberate: checked against the bus, not started without a yes
    assert "NOT started" in first.stdout and "doctor --before-enable" in first.stdout
    assert "Traceback" not in first.stderr  # no bus here: the doctor says so in one line
    assert not (root / "service" / "aggbatt").exists()
    assert LINE not in (root / "data" / "rc.local").read_text()
    confirmed = sh(str(ROOT_DIR / "install.sh"), root, "--yes")
    assert confirmed.returncode == 0, confirmed.stderr
    assert (root / "service" / "aggbatt").resolve() == (app / "service").resolve()
    rc = (root / "data" / "rc.local").read_text()
    assert rc.count(LINE) == 1 and "echo other things" in rc
    # the aggbatt command on the device runs the CLI from the installed tree
    check = subprocess.run(
        [str(app / "aggbatt"), "check", "--config", str(app / "config.toml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "valid" in check.stdout
    # an upgrade keeps config and state byte for byte, and svscan's supervise folders
    config = b"[batteries]\nexpected = 3\n# mine\n"
    (app / "config.toml").write_bytes(config)
    (app / "state" / "state.json").write_bytes(b'{"version": 2, "charge_ah": 12.5}')
    (app / "service" / "supervise").mkdir()
    (app / "service" / "supervise" / "lock").write_text("")
    again = sh(str(ROOT_DIR / "install.sh"), root)
    assert again.returncode == 0, again.stderr
    assert "updated" in again.stdout
    assert (app / "config.toml").read_bytes() == config
    assert (app / "state" / "state.json").read_bytes() == b'{"version": 2, "charge_ah": 12.5}'
    assert (app / "service" / "supervise" / "lock").exists()
    assert (root / "data" / "rc.local").read_text().count(LINE) == 1
    # uninstall removes the boot line and the service link, keeps the app unless --purge
    gone = sh(str(app / "uninstall.sh"), root)
    assert gone.returncode == 0, gone.stderr
    assert LINE not in (root / "data" / "rc.local").read_text()
    assert "echo other things" in (root / "data" / "rc.local").read_text()
    assert not (root / "service" / "aggbatt").exists()
    assert app.exists()
    assert sh(str(app / "uninstall.sh"), root, "--purge").returncode == 0
    assert not app.exists()


def test_service_scripts_are_executable_and_use_multilog() -> None:
    run = ROOT_DIR / "service" / "run"
    log = ROOT_DIR / "service" / "log" / "run"
    assert os.access(run, os.X_OK) and os.access(log, os.X_OK)
    assert "exec multilog t s25000 n4" in log.read_text() and "/var/log/aggbatt" in log.read_text()
    assert 'exec "$PY" -m aggbatt run' in run.read_text()


async def test_uninstall_restores_feed_in_and_purge_keeps_it_until_then(
    bus_address: str, tmp_path: Path
) -> None:
    """Rule 11 of core/safety.py on the way out: the held value is written back first."""
    import asyncio
    import json
    import sys

    from aggbatt.core.stored import State
    from aggbatt.feedin import FEED_IN_PATH
    from aggbatt.sim.localsettings import FakeLocalSettings
    from aggbatt.state import save_state

    root = tmp_path / "root"
    app = root / "data" / "apps" / "aggbatt"
    (app / "venv" / "bin").mkdir(parents=True)
    python = app / "venv" / "bin" / "python"  # this venv's interpreter, as the app's
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (app / "src").symlink_to(ROOT_DIR / "src")
    for script in ("uninstall.sh", "rclocal.sh"):
        shutil.copy(ROOT_DIR / script, app / script)
    save_state(app / "state", State(feed_in_original=1))

    async def uninstall() -> tuple[int, str]:
        env = {**os.environ, "ROOT": str(root), "AGGBATT_BUS": bus_address}
        proc = await asyncio.create_subprocess_exec(
            "bash", str(app / "uninstall.sh"), "--purge", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode()

    code, text = await uninstall()  # no localsettings on the bus: the value must survive
    assert code == 1 and "still holds" in text
    stored = json.loads((app / "state" / "state.json").read_text())
    assert stored["feed_in_original"] == 1 and (app / "uninstall.sh").exists()
    settings = await FakeLocalSettings.start(bus_address, {FEED_IN_PATH: 0})
    try:
        code, text = await uninstall()
        assert code == 0, text
        assert settings[FEED_IN_PATH] == 1
        assert not app.exists()
    finally:
        await settings.close()


def rc(tmp_path: Path, content: str, *calls: str) -> str:
    """Run rc_add / rc_remove of rclocal.sh on an rc.local with ``content``."""
    path = tmp_path / "rc.local"
    path.write_text(content)
    script = f". {ROOT_DIR / 'rclocal.sh'}; " + "; ".join(f"{c} {path}" for c in calls)
    subprocess.run(["bash", "-euc", script], check=True, timeout=30)
    return path.read_text()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # another program's boot line without a final newline: never glued onto it
        ("#!/bin/bash\n/opt/other/start.sh &", f"#!/bin/bash\n/opt/other/start.sh &\n{LINE}\n"),
        # an `exit 0` at the end: inserted before it, or it would never run
        ("#!/bin/bash\necho a\nexit 0\n", f"#!/bin/bash\necho a\n{LINE}\nexit 0\n"),
        ("", f"{LINE}\n"),
    ],
)
def test_rc_local_gets_our_line_once_in_the_right_place(
    tmp_path: Path, before: str, after: str
) -> None:
    """Before: appended after `exit 0`, and glued onto a line without a final newline."""
    assert rc(tmp_path, before, "rc_add", "rc_add") == after


def test_rc_local_loses_exactly_our_line(tmp_path: Path) -> None:
    """Before: every line mentioning enable.sh went, a glued line of another program too."""
    others = "#!/bin/bash\n# aggbatt: see /data/apps/aggbatt/enable.sh\n/opt/x.sh &\nexit 0\n"
    assert rc(tmp_path, others, "rc_add", "rc_remove") == others
    glued = f"#!/bin/bash\n/opt/other/start.sh &{LINE}\n"  # what the old enable.sh left
    assert rc(tmp_path, glued, "rc_remove") == "#!/bin/bash\n/opt/other/start.sh &\n"


def test_a_release_installs_offline_from_its_own_wheels(tmp_path: Path) -> None:
    """`./dev release`: one tarball with pinned wheels for both GX CPUs and checksums; its
    install.sh takes the wheels for the device's CPU by itself (no internet, no --wheels)."""
    import platform
    import tarfile

    dist = tmp_path / "dist"
    built = subprocess.run(
        ["bash", str(ROOT_DIR / "dev"), "release", str(dist)],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT_DIR,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (tarball,) = dist.glob("aggbatt-*.tar.gz")
    sha = subprocess.run(["sha256sum", "-c", tarball.name + ".sha256"], cwd=dist, check=False)
    assert sha.returncode == 0
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (release,) = (tmp_path / "unpacked").iterdir()
    wheels = release / "wheels"
    for arch in ("armv7l", "aarch64"):
        assert list((wheels / arch).glob(f"pydantic_core-*-cp312-*{arch}*.whl")), arch
    sums = subprocess.run(["sha256sum", "-c", "wheels/SHA256SUMS"], cwd=release, check=False)
    assert sums.returncode == 0
    # this machine stands in for the GX: its CPU's wheels (and dbus-fast, which Venus has)
    host = wheels / platform.machine()
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(host),
         "pydantic", "dbus-fast>=2.22"],
        check=True, timeout=300,
    )  # fmt: skip
    root = tmp_path / "venus"
    (root / "data").mkdir(parents=True)
    env = {**os.environ, "ROOT": str(root), "AGGBATT_BUS": "unix:path=/nonexistent/bus",
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}  # fmt: skip
    env.pop("VIRTUAL_ENV", None)
    offline = subprocess.run(
        ["bash", str(release / "install.sh"), "--yes"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    app = root / "data" / "apps" / "aggbatt"
    check = subprocess.run(
        [str(app / "aggbatt"), "check", "--config", str(app / "config.toml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
