"""The static checks CI enforces through the README's test command: mypy (configured in pyproject.toml,
strict for memory, arch, debuginfo, program, objects and kernel) and ruff, both clean over kcrash/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_mypy_is_clean():
    pytest.importorskip("mypy", reason="mypy is in the test extras: pip install -e '.[test]'")
    result = _run(sys.executable, "-m", "mypy")  # files and flags: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is in the test extras: pip install -e '.[test]'")
    result = _run(ruff, "check", "kcrash", "tests", "plugins", "bench")
    assert result.returncode == 0, result.stdout[-4000:]
