"""kcrash.memory on the real fixture dumps: every dump opens, and random pages agree across formats.

The fixture sets come from tests/fixtures/build.py (found through $KCRASH_FIXTURE_DIR or
~/.cache/kcrash/fixtures/*/manifest.json).  Without them these tests fail, unless
KCRASH_SKIP_FIXTURES=1 (the project-wide opt-out, see tests/conftest.py) makes them skip.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from kcrash.errors import MemoryReadError
from kcrash.memory import PhysicalMemory, open_dump

PS = 4096

SAMPLE_PAGES = 2000


def _fixture_sets() -> list[tuple[Path, dict]]:
    """(directory, manifest) of every complete fixture set found, or dumps in KCRASH_FIXTURE_DIR."""
    from tests.fixtures import locate

    roots = []
    if os.environ.get("KCRASH_FIXTURE_DIR"):
        roots.append(Path(os.environ["KCRASH_FIXTURE_DIR"]).expanduser())
    roots.append(locate.fixtures_root())
    found: list[tuple[Path, dict]] = []
    for root in roots:
        candidates = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
        for directory in candidates:
            if directory.name.startswith(".") or any(directory == d for d, _ in found):
                continue
            manifest = locate.load_manifest(directory)
            if manifest:
                found.append((directory, manifest))
    return found


FIXTURE_SETS = _fixture_sets()


def _need_fixtures() -> None:
    if FIXTURE_SETS:
        return
    message = (
        "no real crash-dump fixtures: set KCRASH_FIXTURE_DIR or build them with tests/fixtures/build.py "
        "(looked in $KCRASH_FIXTURE_DIR and ~/.cache/kcrash/fixtures/*/manifest.json)"
    )
    if os.environ.get("KCRASH_SKIP_FIXTURES") != "1":  # missing fixtures fail unless opted out
        pytest.fail(message)
    pytest.skip(message)


def _capture(entry: dict) -> str:
    """Dumps with the same capture hold the same memory. QEMU's ELF comes from its own
    dump-guest-memory command, during which the panicked guest may still touch a few pages."""
    boot = entry.get("boot", "?")
    return f"{boot}/elf" if boot == "qemu" and entry.get("format") == "elf" else boot


@pytest.mark.fixture
def test_fixture_dumps_open_with_vmcoreinfo() -> None:
    _need_fixtures()
    for directory, manifest in FIXTURE_SETS:
        release = manifest.get("kernel_release", "")
        for entry in manifest["dumps"]:
            with open_dump(str(directory / entry["file"])) as mem:
                assert mem.machine == "x86_64" and mem.page_size == 4096
                assert mem.ranges(), entry["file"]
                if "novmci" in entry.get("boot", ""):  # QEMU without -device vmcoreinfo / qemu_fw_cfg
                    assert mem.vmcoreinfo is None, entry["file"]
                    continue
                assert mem.vmcoreinfo and "OSRELEASE=" in mem.vmcoreinfo, entry["file"]
                osrelease = next(
                    line for line in mem.vmcoreinfo.splitlines() if line.startswith("OSRELEASE=")
                )
                assert osrelease.split("=", 1)[1] == release or not release, (entry["file"], osrelease)


@pytest.mark.fixture
def test_fixture_random_pages_agree_across_formats() -> None:
    _need_fixtures()
    report = []
    for directory, manifest in FIXTURE_SETS:
        by_boot: dict[str, list[dict]] = {}
        for entry in manifest["dumps"]:
            by_boot.setdefault(entry.get("boot", "?"), []).append(entry)
        for boot, entries in by_boot.items():
            if len(entries) < 2:
                continue
            mems = {e["file"]: open_dump(str(directory / e["file"])) for e in entries}
            try:
                report.append(_compare_pages(boot, entries, mems))
            finally:
                for mem in mems.values():
                    mem.close()
    print(json.dumps(report, indent=1))


def _compare_pages(boot: str, entries: list[dict], mems: dict[str, PhysicalMemory]) -> dict:
    spans = sorted({span for mem in mems.values() for span in mem.ranges()})
    pfns = [pfn for start, end in spans for pfn in (start // PS, end // PS)]
    total = sum(pfns[i + 1] - pfns[i] for i in range(0, len(pfns), 2))
    rng = random.Random(20240611)
    sample = []
    for _ in range(SAMPLE_PAGES):  # uniform over the union of the dumps' ranges
        k = rng.randrange(total)
        for i in range(0, len(pfns), 2):
            if k < pfns[i + 1] - pfns[i]:
                sample.append((pfns[i] + k) * PS)
                break
            k -= pfns[i + 1] - pfns[i]
    capture = {e["file"]: _capture(e) for e in entries}
    compared = differing_same = differing_other = 0
    for paddr in sample:
        if any(mem.is_excluded(paddr) for mem in mems.values()):
            continue
        contents = {}
        for name, mem in mems.items():
            try:
                contents[name] = mem.read(paddr, PS)
            except MemoryReadError:
                continue
        names = sorted(contents)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                compared += 1
                if contents[a] != contents[b]:
                    if capture[a] == capture[b]:
                        differing_same += 1
                        pytest.fail(f"{boot}: page {paddr:#x} differs between {a} and {b}")
                    differing_other += 1
    assert compared > 0, f"{boot}: no page was readable through two dumps"
    # Separate QEMU captures of a panicked guest: nearly all pages must still agree.
    assert differing_other <= max(5, compared // 100), f"{boot}: {differing_other}/{compared} pairs differ"
    return {"boot": boot, "pairs_compared": compared, "pairs_differing_across_captures": differing_other}
