"""The tierup command's manners: it tells its version, and shows progress bars on a terminal only."""

import io
import os
import pty
import subprocess
import sys
from importlib.metadata import version

import pytest

from tierup.cli import main
from tierup.progress import Bars


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_version_comes_from_the_installed_package(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"tierup {version('tierup')}\n"


def test_bars_draw_on_a_terminal():
    screen = Terminal()
    with Bars(screen) as bars:
        show = bars.bar("importing orders")
        for done in range(0, 101, 20):
            show(done, 100)
    assert "importing orders" in screen.getvalue() and "100/100" in screen.getvalue()


def test_bars_write_nothing_when_the_output_is_not_a_terminal():
    log = io.StringIO()
    with Bars(log) as bars:
        show = bars.bar("importing orders")
        show(50, 100)
        show(100, 100)
        bars.bar("empty")(0, 0)
    assert log.getvalue() == ""


def _seed(database_url: str, stderr) -> subprocess.Popen:
    env = {**os.environ, "TIERUP_DATABASE_URL": database_url}
    return subprocess.Popen([sys.executable, "-m", "tierup.cli", "seed", "--members", "5", "--orders", "20"],
                            env=env, stdout=subprocess.PIPE, stderr=stderr)


def test_seeding_into_a_log_file_writes_no_bars(database_url, tmp_path):
    log = tmp_path / "seed.log"
    with log.open("w") as stderr:
        out, _ = _seed(database_url, stderr).communicate(timeout=120)
    assert "5 members, 20 orders" in out.decode(), log.read_text()
    assert log.read_text() == ""


def test_seeding_on_a_terminal_shows_its_bars(database_url):
    screen, terminal = pty.openpty()
    seeding = _seed(database_url, terminal)
    os.close(terminal)
    drawn = b""
    try:
        while chunk := _read(screen):  # read while it runs, so a full terminal never blocks it
            drawn += chunk
    finally:
        os.close(screen)
    out, _ = seeding.communicate(timeout=120)
    assert seeding.returncode == 0 and "5 members, 20 orders" in out.decode()
    assert b"replaying rules" in drawn and b"points ledger" in drawn


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the last writer closed the terminal
        return b""
