"""Output sinks: the pager switch-over, pipelines, files, and records as JSON."""

from __future__ import annotations

import dataclasses
import enum
import io
import json

from kcrash.shell.output import FileSink, PagerSink, PipeSink, json_line, pager_command, to_jsonable


def test_short_output_skips_the_pager(tmp_path):
    stream = io.StringIO()
    sink = PagerSink(stream, ["sh", "-c", f"cat > {tmp_path / 'paged'}"], lines=10)
    for i in range(9):
        sink.write(f"{i}\n")
    sink.close()
    assert stream.getvalue() == "".join(f"{i}\n" for i in range(9))
    assert not (tmp_path / "paged").exists()


def test_long_output_streams_into_the_pager(tmp_path):
    stream = io.StringIO()
    sink = PagerSink(stream, ["sh", "-c", f"cat > {tmp_path / 'paged'}"], lines=10)
    for i in range(100):
        sink.write(f"{i}\n")
    sink.close()
    assert stream.getvalue() == ""
    assert (tmp_path / "paged").read_text() == "".join(f"{i}\n" for i in range(100))


def test_flush_shows_held_output_and_it_counts_towards_the_screen(tmp_path):
    stream = io.StringIO()
    sink = PagerSink(stream, ["sh", "-c", f"cat > {tmp_path / 'paged'}"], lines=10)
    sink.write("working...\n")
    sink.flush()  # a slow command shows its progress at once
    assert stream.getvalue() == "working...\n"
    for i in range(20):
        sink.write(f"{i}\n")
    sink.close()
    assert stream.getvalue() == "working...\n"
    assert (tmp_path / "paged").read_text() == "".join(f"{i}\n" for i in range(20))


def test_output_held_too_long_is_shown(monkeypatch):
    stream = io.StringIO()
    sink = PagerSink(stream, ["cat"], lines=10)
    clock = iter([100.0, 100.1, 101.0])
    monkeypatch.setattr("kcrash.shell.output.time.monotonic", lambda: next(clock))
    sink.write("a\n")
    sink.write("b\n")
    assert stream.getvalue() == ""
    sink.write("c\n")  # a second after the first: show it
    assert stream.getvalue() == "a\nb\nc\n"


def test_missing_pager_falls_back_to_the_terminal():
    stream = io.StringIO()
    sink = PagerSink(stream, ["/nonexistent/pager"], lines=3)
    for i in range(5):
        sink.write(f"{i}\n")
    sink.close()
    assert stream.getvalue() == "0\n1\n2\n3\n4\n"


def test_pager_command_from_the_environment(monkeypatch):
    monkeypatch.setenv("KCRASH_PAGER", "most -s")
    assert pager_command() == ["most", "-s"]
    monkeypatch.delenv("KCRASH_PAGER")
    assert pager_command()[0] in ("less", "more")


def test_pipe_sink(tmp_path):
    sink = PipeSink(f"sort -r > {tmp_path / 'sorted'}", io.StringIO())
    sink.write("a\nc\nb\n")
    sink.close()
    assert (tmp_path / "sorted").read_text() == "c\nb\na\n"
    assert sink.process.returncode == 0


def test_file_sink_appends(tmp_path):
    path = tmp_path / "f"
    for append in (False, True):
        sink = FileSink(str(path), append)
        sink.write("x\n")
        sink.close()
    assert path.read_text() == "x\nx\n"


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Inner:
    name: bytes
    tags: set


@dataclasses.dataclass
class Outer:
    pid: int
    inner: Inner
    colour: Colour
    extra: dict
    ratio: float = 0.5


def test_records_become_plain_json():
    record = Outer(1, Inner(b"\x01\xff", {"a"}), Colour.RED, {1: (2, 3)})
    assert to_jsonable(record) == {
        "pid": 1,
        "inner": {"name": "01ff", "tags": ["a"]},
        "colour": "RED",
        "extra": {"1": [2, 3]},
        "ratio": 0.5,
    }
    assert json.loads(json_line(record))["pid"] == 1 and json_line(record).endswith("}\n")

    class Custom:
        def to_json(self):
            return {"custom": True}

    assert to_jsonable([Custom(), object]) == [{"custom": True}, str(object)]
