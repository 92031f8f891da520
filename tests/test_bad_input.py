"""Bad input on the command line: each case is one error line naming the file and why, exit status 1."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from synth.dumps import write_elf

pytestmark = pytest.mark.fixture


def kcrash(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kcrash", "-s", "-c", "sys", *args], capture_output=True, text=True, timeout=120)


def assert_one_error_line(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kcrash: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_not_a_dump(fixtures61, tmp_path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("this is not a crash dump\n" * 100)
    assert_one_error_line(kcrash(fixtures61.vmlinux, str(junk)), str(junk), "not a crash dump")


def test_empty_dump(fixtures61, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert_one_error_line(kcrash(fixtures61.vmlinux, str(empty)), str(empty))


def test_truncated_kdump_header(fixtures61, tmp_path) -> None:
    cut = tmp_path / "cut.kdump"
    with open(fixtures61.path("kdump-lzo.kdump"), "rb") as f:
        cut.write_bytes(f.read(300))
    assert_one_error_line(kcrash(fixtures61.vmlinux, str(cut)), str(cut), "truncated")


def test_corrupt_bitmap(fixtures61, tmp_path) -> None:
    """A kdump file cut inside its bitmaps: the header points past the end of the file."""
    cut = tmp_path / "cut-bitmap.kdump"
    with open(fixtures61.path("kdump-lzo.kdump"), "rb") as f:
        cut.write_bytes(f.read(3 * 4096 + 100))
    assert_one_error_line(kcrash(fixtures61.vmlinux, str(cut)), str(cut))


def test_non_x86_64_dump(fixtures61, tmp_path) -> None:
    arm = tmp_path / "arm64.vmcore"
    write_elf(arm, {0x1000: b"\0" * 4096}, machine=183)
    assert_one_error_line(kcrash(fixtures61.vmlinux, str(arm)), str(arm), "aarch64")


def test_unreadable_file(fixtures61, tmp_path) -> None:
    """A path that cannot be read as a file (root reads any mode, so use a directory)."""
    assert_one_error_line(kcrash(fixtures61.vmlinux, str(tmp_path)), str(tmp_path))


def test_missing_file(fixtures61, tmp_path) -> None:
    missing = tmp_path / "nope.vmcore"
    assert_one_error_line(kcrash(fixtures61.vmlinux, str(missing)), str(missing))


def test_vmlinux_without_debug_info(fixtures61, tmp_path) -> None:
    if shutil.which("objcopy") is None:
        pytest.fail("objcopy (binutils) is needed to make a vmlinux without debug info")
    stripped = tmp_path / "vmlinux-nodebug"
    subprocess.run(
        [
            "objcopy",
            "--strip-debug",
            "--rename-section",
            ".BTF=.BTF_removed",
            fixtures61.vmlinux,
            str(stripped),
        ],
        check=True,
    )
    assert_one_error_line(
        kcrash(str(stripped), fixtures61.path("kdump-lzo.kdump")), str(stripped), "no debug info"
    )


def test_mismatched_vmlinux(fixtures61, fixtures612) -> None:
    result = kcrash(fixtures612.vmlinux, fixtures61.path("kdump-lzo.kdump"))
    assert_one_error_line(result, "do not match", fixtures61.manifest["kernel_release"])


def test_dump_is_never_written(fixtures61) -> None:
    """kcrash opens the dump and the vmlinux read-only: their mtimes and sizes do not change."""
    paths = [fixtures61.vmlinux, fixtures61.path("kdump-lzo.kdump")]
    before = [(os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths]
    result = subprocess.run(
        ["kcrash", "-s", "-c", "bt; log; ps; sym schedule", *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [(os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths] == before
