"""kcrash.gdb without a dump: the remote-protocol server over a synthetic kernel (packets and framing),
the MI record parser, and the fallback's behaviour when gdb is missing."""

from __future__ import annotations

import os
import socket
import stat
import threading

import pytest
from test_expr import TASK_ADDR, FakeKernel

from kcrash.gdb.mi import GdbError, GdbMissing, GdbSession, parse_c_string, parse_record
from kcrash.gdb.server import TARGET_XML, RemoteTarget, RspConnection, serve, start_private_server


def _checksum(data: str) -> str:
    return f"{sum(data.encode()) & 0xFF:02x}"


def frame(data: str) -> bytes:
    return f"${data}#{_checksum(data)}".encode()


@pytest.fixture
def target() -> RemoteTarget:
    t = RemoteTarget(FakeKernel())
    t._regs = {"rip": 0xFFFFFFFF81100010, "rsp": 0xFFFFC90000003F00, "rax": 1, "eflags": 0x246, "cs": 0x10}
    return t


def test_capabilities_and_description(target):
    assert "qXfer:features:read+" in target.handle("qSupported:multiprocess+;xmlRegisters=i386")
    first = target.handle("qXfer:features:read:target.xml:0,40")  # offset and length are hex
    assert first[0] == "m" and first[1:] == TARGET_XML[:0x40]
    last = target.handle(f"qXfer:features:read:target.xml:{len(TARGET_XML) - 5:x},100")
    assert last == "l" + TARGET_XML[-5:]
    assert "<architecture>i386:x86-64</architecture>" in TARGET_XML
    assert 'name="org.gnu.gdb.i386.core"' in TARGET_XML and 'name="org.gnu.gdb.i386.sse"' in TARGET_XML


def test_registers(target):
    g = target.handle("g")
    assert g[:16] == (1).to_bytes(8, "little").hex()  # rax
    rip_at = 16 * 16
    assert g[rip_at : rip_at + 16] == (0xFFFFFFFF81100010).to_bytes(8, "little").hex()
    assert g[rip_at + 16 : rip_at + 24] == (0x246).to_bytes(4, "little").hex()
    assert "xx" in g  # FP/SSE registers are unavailable
    assert target.handle("p10") == (0xFFFFFFFF81100010).to_bytes(8, "little").hex()  # register 16: rip
    assert target.handle("p7") == (0xFFFFC90000003F00).to_bytes(8, "little").hex()  # rsp
    assert target.handle("p30") == "xx" * 16  # xmm0 (register 48 = 0x30)... as unavailable
    assert target.handle("G00") == "E01" and target.handle("P0=00") == "E01"


def test_memory_reads_by_virtual_address(target):
    assert bytes.fromhex(target.handle(f"m{TASK_ADDR:x},4")) == (42).to_bytes(4, "little")
    assert target.handle("m0,8") == "E0e"
    # A read running off the end of mapped memory returns the readable part.
    end = TASK_ADDR + 120
    reply = target.handle(f"m{end - 4:x},16")
    assert bytes.fromhex(reply) == target.kernel.read(end - 4, 4)


def test_read_only_and_no_execution(target):
    assert target.handle(f"M{TASK_ADDR:x},1:00") == "E01"
    assert target.handle(f"X{TASK_ADDR:x},1:\x00") == "E01"
    assert target.handle("Z0,ffffffff81100000,1") == ""
    assert target.handle("c").startswith("T05")
    assert target.handle("vCont;c").startswith("T05")
    assert target.handle("?").startswith("T05thread:")
    assert target.handle("qfThreadInfo") == "m1" and target.handle("qsThreadInfo") == "l"
    assert target.handle("qAttached") == "1"
    assert target.handle("vMustReplyEmpty") == ""
    assert target.handle("k") is None


def test_framing_over_a_socket(target):
    ours, theirs = socket.socketpair()
    thread = threading.Thread(target=RspConnection(ours, target).serve, daemon=True)
    thread.start()
    try:
        theirs.sendall(frame("qAttached"))
        assert theirs.recv(1) == b"+"
        assert _read_packet(theirs) == "1"
        theirs.sendall(b"$qAttached#00")  # bad checksum: NAK, no reply
        assert theirs.recv(1) == b"-"
        theirs.sendall(frame("QStartNoAckMode"))
        assert theirs.recv(1) == b"+"
        assert _read_packet(theirs) == "OK"
        theirs.sendall(frame(f"m{TASK_ADDR:x},4"))  # no ack any more
        assert bytes.fromhex(_read_packet(theirs)) == (42).to_bytes(4, "little")
        theirs.sendall(frame("k"))
        thread.join(5)
        assert not thread.is_alive()
    finally:
        theirs.close()


def _read_packet(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"#") and b"#" not in data:
        data += sock.recv(1)
    data += sock.recv(2)
    start = data.index(b"$")
    body = data[start + 1 : data.index(b"#")].decode()
    assert _checksum(body) == data[-2:].decode()
    return body


def test_private_server_directory_is_private():
    path, target, thread, directory = start_private_server(FakeKernel())
    try:
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        client.sendall(frame("qAttached"))
        assert client.recv(1) == b"+"
        assert _read_packet(client) == "1"
        client.close()
        thread.join(5)
    finally:
        for p in (path,):
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(directory)


def test_serve_refuses_network_addresses():
    from kcrash.errors import KcrashError

    with pytest.raises(KcrashError, match="only unix:PATH"):
        serve(FakeKernel(), "tcp:localhost:1234")
    with pytest.raises(KcrashError, match="socket path"):
        serve(FakeKernel(), "unix:")


def test_serve_one_client(tmp_path):
    path = str(tmp_path / "sock")
    ready = threading.Event()
    thread = threading.Thread(
        target=serve,
        args=(FakeKernel(), f"unix:{path}"),
        kwargs={"once": True, "ready": ready.set},
        daemon=True,
    )
    thread.start()
    assert ready.wait(5)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    client = socket.socket(socket.AF_UNIX)
    client.connect(path)
    client.sendall(frame(f"m{TASK_ADDR:x},4"))
    assert client.recv(1) == b"+"
    assert bytes.fromhex(_read_packet(client)) == (42).to_bytes(4, "little")
    client.sendall(frame("D"))
    client.recv(1)
    assert _read_packet(client) == "OK"
    client.close()
    thread.join(5)
    assert not thread.is_alive()
    assert not os.path.exists(path)


# --- MI --------------------------------------------------------------------------------------------------


def test_mi_strings_and_records():
    assert parse_c_string(r'"a\"b\\c\n\t\033"') == ('a"b\\c\n\t\x1b', 17)
    assert parse_c_string('"caf\\303\\251"')[0] == "café"
    assert parse_record('~"$1 = 5\\n"') == ("stream", ("~", "$1 = 5\n"))
    assert parse_record('&"warning: x\\n"') == ("stream", ("&", "warning: x\n"))
    assert parse_record("12^done") == ("result", ("12", "done", ""))
    assert parse_record('3^error,msg="No symbol \\"x\\" in current context."') == (
        "result",
        ("3", "error", 'msg="No symbol \\"x\\" in current context."'),
    )
    assert parse_record("(gdb) ") == ("prompt", None)
    assert parse_record('=thread-group-added,id="i1"')[0] == "async"
    with pytest.raises(GdbError):
        parse_c_string('"unterminated')


def test_missing_gdb(monkeypatch):
    monkeypatch.setenv("KCRASH_GDB", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(GdbMissing, match="gdb is not installed"):
        GdbSession(FakeKernel())


def test_missing_gdb_leaves_native_p_working(monkeypatch):
    """Native expressions work without gdb; a construct needing gdb says, in one line, that it is missing."""
    import io

    from kcrash.shell.core import Shell
    from kcrash.shell.registry import Registry

    monkeypatch.setenv("KCRASH_GDB", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    registry = Registry()
    registry.load_entry_points()
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(FakeKernel(), registry=registry, stdout=out, stderr=err)
    shell.execute("p init_task.pid")
    assert out.getvalue() == "$1 = 42\n"
    shell.execute("p $_strlen(init_task.comm)")
    assert err.getvalue().strip().splitlines() == [
        "p: gdb is not installed: only the native evaluator is available"
    ]
