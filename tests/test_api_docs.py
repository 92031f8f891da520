"""docs/api.md documents the kernel helpers (the plugin API) from their docstrings and `__all__`: this test
fails when the two drift apart. `python3 tests/test_api_docs.py` rewrites docs/api.md."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import kcrash.kernel

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"

HEADER = """# The kernel helpers: kcrash's plugin API

`kcrash.kernel` holds kcrash's knowledge of the kernel as typed functions over a `Kernel`
(`kcrash.program`) and `Object`s (`kcrash.objects`), one module per subsystem, in dependency order
(docs/architecture.md). They return records (dataclasses) and Objects, never crash's text, and cache what
they derive in the Kernel (`kcrash.program.per_kernel`). Commands and plugins call them; a plugin needs
nothing else (docs/plugins.md).

This page is generated from the modules' docstrings and `__all__` (`python3 tests/test_api_docs.py`).
"""


def _first_paragraph(doc: str | None) -> str:
    text = inspect.cleandoc(doc or "")
    return " ".join(text.split("\n\n", 1)[0].split())


def render() -> str:
    out = [HEADER]
    names = sorted(m.name for m in pkgutil.iter_modules(kcrash.kernel.__path__) if not m.name.startswith("_"))
    for name in names:
        module = importlib.import_module(f"kcrash.kernel.{name}")
        out.append(f"\n## kcrash.kernel.{name}\n\n{_first_paragraph(module.__doc__)}\n")
        for public in getattr(module, "__all__", []):
            obj = getattr(module, public)
            if inspect.isfunction(obj):
                signature = str(inspect.signature(obj)).replace("'", "")
                out.append(f"- `{public}{signature}`: {_first_paragraph(obj.__doc__)}")
            elif inspect.isclass(obj):
                out.append(f"- class `{public}`: {_first_paragraph(obj.__doc__)}")
            else:
                out.append(f"- `{public}`")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def test_api_doc_is_current():
    assert DOC.read_text() == render(), "docs/api.md is stale: run python3 tests/test_api_docs.py"


def test_every_helper_module_declares_its_api():
    for m in pkgutil.iter_modules(kcrash.kernel.__path__):
        module = importlib.import_module(f"kcrash.kernel.{m.name}")
        assert module.__doc__, m.name
        assert getattr(module, "__all__", None), m.name


if __name__ == "__main__":
    DOC.write_text(render())
    sys.exit(0)
