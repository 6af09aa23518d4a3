"""Writing outputs never clobbers what is not a regular file, never leaves half a file, and gives readable modes."""

from __future__ import annotations

import os
import stat

import pytest
from helpers import call

from mldoctor.output import write_output


@pytest.fixture
def null_device(tmp_path):
    """A character device like /dev/null, made in the test's own directory (never the machine's /dev)."""
    path = tmp_path / "null"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root (CAP_MKNOD): run the tests as root, as CI does")
    return path


def test_a_device_is_written_in_place_not_replaced(null_device):
    write_output(str(null_device), "report\n")
    assert stat.S_ISCHR(os.stat(null_device).st_mode)


def test_the_cli_leaves_a_device_a_device(capsys, null_device):
    code, _, err = call(capsys, "check", "--only", "host", "--format", "json", "-o", str(null_device))
    assert code in (0, 1), err
    assert stat.S_ISCHR(os.stat(null_device).st_mode)
    code, _, err = call(capsys, "check", "--only", "host", "--junit", str(null_device))
    assert stat.S_ISCHR(os.stat(null_device).st_mode)


def test_a_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_output(str(fifo), "through the pipe\n")
        assert os.read(reader, 100) == b"through the pipe\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_regular_files_follow_the_umask_and_private_ones_stay_private(tmp_path):
    old = os.umask(0o022)
    try:
        write_output(str(tmp_path / "report.prom"), "x 1\n")
        write_output(str(tmp_path / "bundle.json"), "{}\n", private=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "report.prom").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "bundle.json").st_mode) == 0o600


def test_a_symlink_is_replaced_and_its_target_left_alone(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("keep me\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_output(str(link), "new\n")
    assert target.read_text() == "keep me\n"
    assert not link.is_symlink() and link.read_text() == "new\n"


def test_no_temp_file_is_left_when_writing_fails(tmp_path, monkeypatch):
    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_output(str(tmp_path / "out.json"), "{}")
    assert list(tmp_path.iterdir()) == []


def test_dash_is_stdout(capsys):
    write_output("-", "to stdout\n")
    assert capsys.readouterr().out == "to stdout\n"
