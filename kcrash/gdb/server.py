"""A GDB remote-serial-protocol server over a dump: gdb reads kernel memory by virtual address through
kcrash's own translation (every dump format), and sees one thread, the context task, with its
registers (the CPU's saved registers for an active task, its switch frame for a sleeping one).

The target is read-only: writes, breakpoints and execution are refused. The channel is a Unix socket
that only the user can open (a mkdtemp directory for kcrash's own gdb; mode 0600 for `--gdbserver`),
never a network port.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading
from typing import Any

from kcrash.errors import KcrashError, MemoryReadError
from kcrash.kernel.panic import default_task
from kcrash.kernel.stack import task_start_registers

__all__ = ["RemoteTarget", "RspConnection", "serve", "serve_socket", "start_private_server", "TARGET_XML"]

# Register layout of the target description below: (name, bytes) in g-packet order.
_GPRS = (
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rbp",
    "rsp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
)
_LAYOUT: list[tuple[str, int]] = (
    [(r, 8) for r in _GPRS]
    + [("rip", 8), ("eflags", 4)]
    + [(s, 4) for s in ("cs", "ss", "ds", "es", "fs", "gs")]
    + [(f"st{i}", 10) for i in range(8)]
    + [(f, 4) for f in ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")]
    + [(f"xmm{i}", 16) for i in range(16)]
    + [("mxcsr", 4), ("orig_rax", 8)]
)


def _target_xml() -> str:
    regs = []
    n = 0
    for name, size in _LAYOUT:
        if name == "rip":
            kind = "code_ptr"
        elif name in ("rbp", "rsp"):
            kind = "data_ptr"
        elif name.startswith("st"):
            kind = "i387_ext"
        elif name.startswith("xmm"):
            kind = "uint128"
        else:
            kind = f"int{size * 8}"
        group = ' group="float"' if name.startswith(("st", "f")) and name not in ("fs",) else ""
        regs.append((name, f'<reg name="{name}" bitsize="{size * 8}" type="{kind}" regnum="{n}"{group}/>'))
        n += 1
    core = "".join(r for name, r in regs if not name.startswith("xmm") and name not in ("mxcsr", "orig_rax"))
    sse = "".join(r for name, r in regs if name.startswith("xmm") or name == "mxcsr")
    linux = "".join(r for name, r in regs if name == "orig_rax")
    return (
        '<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">'
        "<target><architecture>i386:x86-64</architecture>"
        f'<feature name="org.gnu.gdb.i386.core">{core}</feature>'
        f'<feature name="org.gnu.gdb.i386.sse">{sse}</feature>'
        f'<feature name="org.gnu.gdb.i386.linux">{linux}</feature>'
        "</target>"
    )


TARGET_XML = _target_xml()
_EFAULT = "E0e"
_EPERM = "E01"
_THREAD = "1"


class RemoteTarget:
    """Answers RSP packets for a Kernel. `set_task(task)` chooses whose registers gdb sees."""

    def __init__(self, kernel: Any, task: Any = None) -> None:
        self.kernel = kernel
        self.task = task
        self._regs: dict[str, int] | None = None
        self.no_ack = False

    def set_task(self, task: Any) -> None:
        if (
            task is None
            or self.task is None
            or getattr(task, "address", None) != getattr(self.task, "address", None)
        ):
            self._regs = None
        self.task = task

    # --- registers --------------------------------------------------------------------------------------
    def registers(self) -> dict[str, int]:
        if self._regs is None:
            regs: dict[str, int] = {}
            if self.task is not None:
                try:
                    regs, _slot, _source = task_start_registers(self.kernel, self.task)
                except (KcrashError, MemoryReadError, AttributeError, KeyError):
                    regs = {}
            self._regs = dict(regs)
        return self._regs

    def _register_hex(self, name: str, size: int) -> str:
        regs = self.registers()
        value = regs.get(name)
        if value is None and name == "eflags":
            value = regs.get("rflags")
        if value is None:
            if name in _GPRS or name in ("rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs"):
                value = 0  # gdb needs a pc and a stack pointer to connect at all
            else:
                return "xx" * size
        return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little").hex()

    def g_packet(self) -> str:
        return "".join(self._register_hex(name, size) for name, size in _LAYOUT)

    # --- memory -------------------------------------------------------------------------------------------
    def read_memory(self, address: int, length: int) -> bytes:
        """As many bytes as are readable from `address` (page by page); b"" if none."""
        out = bytearray()
        while len(out) < length:
            pos = (address + len(out)) & 0xFFFFFFFFFFFFFFFF
            chunk = min(length - len(out), 4096 - (pos & 4095))
            try:
                out += self.kernel.read(pos, chunk)
            except (MemoryReadError, KcrashError):
                out += self._readable_prefix(pos, chunk)
                break
        return bytes(out)

    def _readable_prefix(self, address: int, length: int) -> bytes:
        """The bytes readable from `address` before the first failing one (halving the reads)."""
        out = bytearray()
        size = length
        while size:
            try:
                out += self.kernel.read(address + len(out), size)
                if len(out) >= length:
                    break
                size = min(size, length - len(out))
            except (MemoryReadError, KcrashError):
                size //= 2
        return bytes(out)

    # --- packets --------------------------------------------------------------------------------------------
    def handle(self, packet: str) -> str | None:
        """The reply to one packet ("" = not supported), or None to end the session."""
        if not packet:
            return ""
        head = packet[0]
        if packet.startswith("qSupported"):
            return "PacketSize=4000;qXfer:features:read+;QStartNoAckMode+"
        if packet == "QStartNoAckMode":
            self.no_ack = True
            return "OK"
        if packet.startswith("qXfer:features:read:"):
            return self._xfer(packet)
        if head == "?":
            return f"T05thread:{_THREAD};"
        if head == "H" or packet.startswith("T"):
            return "OK"
        if packet == "qfThreadInfo":
            return "m" + _THREAD
        if packet == "qsThreadInfo":
            return "l"
        if packet == "qC":
            return "QC" + _THREAD
        if packet == "qAttached":
            return "1"
        if packet.startswith("qThreadExtraInfo"):
            return self._thread_info().encode().hex()
        if packet.startswith("qSymbol"):
            return "OK"
        if head == "g":
            return self.g_packet()
        if head == "p":
            try:
                n = int(packet[1:], 16)
            except ValueError:
                return _EPERM
            if n >= len(_LAYOUT):
                return _EPERM
            return self._register_hex(*_LAYOUT[n])
        if head == "m":
            try:
                addr_text, len_text = packet[1:].split(",")
                address, length = int(addr_text, 16), int(len_text, 16)
            except ValueError:
                return _EPERM
            data = self.read_memory(address, min(length, 0x4000))
            return data.hex() if data else _EFAULT
        if head in "MXGPzZ" or packet.startswith("vFile"):
            return _EPERM if head in "MXGP" else ""
        if head in "cs" or packet.startswith("vCont;"):
            return f"T05thread:{_THREAD};"  # a dump cannot run: report the same stop
        if head == "k":
            return None
        if head == "D":
            return "OK"
        return ""

    def _thread_info(self) -> str:
        task = self.task
        if task is None:
            return "no task"
        try:
            comm = task.comm.string()
            return f"PID {int(task.pid)} {comm} task {task.address:x}"
        except (KcrashError, MemoryReadError, AttributeError):
            return f"task {getattr(task, 'address', 0):x}"

    def _xfer(self, packet: str) -> str:
        try:
            rest = packet[len("qXfer:features:read:") :]
            annex, span = rest.split(":", 1)
            off_text, len_text = span.split(",")
            offset, length = int(off_text, 16), int(len_text, 16)
        except ValueError:
            return _EPERM
        if annex != "target.xml":
            return "E00"
        chunk = TARGET_XML[offset : offset + length]
        return ("l" if offset + length >= len(TARGET_XML) else "m") + chunk


def _checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def _escape(data: str) -> bytes:
    out = bytearray()
    for b in data.encode("latin-1"):
        if b in (0x23, 0x24, 0x7D, 0x2A):  # # $ } *
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


class RspConnection:
    """Packet framing over a connected socket: acks, checksums, no-ack mode."""

    def __init__(self, sock: socket.socket, target: RemoteTarget) -> None:
        self.sock = sock
        self.target = target
        self._buf = bytearray()

    def _read_byte(self) -> int | None:
        if not self._buf:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self._buf += data
        b = self._buf[0]
        del self._buf[0]
        return b

    def read_packet(self) -> str | None:
        while True:
            b = self._read_byte()
            if b is None:
                return None
            if b == 0x24:  # $
                break
            if b == 0x03:  # ^C: nothing runs, report a stop
                self._send(f"T02thread:{_THREAD};")
        body = bytearray()
        while True:
            b = self._read_byte()
            if b is None:
                return None
            if b == 0x23:  # #
                break
            if b == 0x7D:  # } escape
                nxt = self._read_byte()
                if nxt is None:
                    return None
                body.append(nxt ^ 0x20)
            else:
                body.append(b)
        check = bytes(b for b in (self._read_byte(), self._read_byte()) if b is not None)
        if not self.target.no_ack:
            ok = len(check) == 2 and int(check, 16) == _checksum(bytes(body)) if _is_hex(check) else False
            self.sock.sendall(b"+" if ok else b"-")
            if not ok:
                return self.read_packet()
        return body.decode("latin-1")

    def _send(self, reply: str) -> None:
        data = _escape(reply)
        self.sock.sendall(b"$" + data + b"#" + f"{_checksum(data):02x}".encode())

    def serve(self) -> None:
        while True:
            packet = self.read_packet()
            if packet is None:
                return
            reply = self.target.handle(packet)
            if reply is None:
                return
            self._send(reply)
            if packet.startswith("D"):
                return


def _is_hex(data: bytes) -> bool:
    try:
        int(data, 16)
        return True
    except ValueError:
        return False


def serve_socket(sock: socket.socket, target: RemoteTarget) -> None:
    """Serve one connected gdb until it disconnects."""
    try:
        RspConnection(sock, target).serve()
    finally:
        try:
            sock.close()
        except OSError:
            pass


def _listen(path: str) -> socket.socket:
    if os.path.exists(path):
        mode = os.lstat(path).st_mode
        if not stat.S_ISSOCK(mode):
            raise KcrashError(f"{path}: exists and is not a socket")
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        listener.bind(path)
    except OSError as e:
        listener.close()
        raise KcrashError(f"{path}: cannot listen: {e.strerror}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    listener.listen(1)
    return listener


def serve(kernel: Any, where: str, task: Any = None, once: bool = False, ready=None) -> int:
    """`kcrash --gdbserver unix:PATH`: serve the dump to gdb clients, one after another, until
    interrupted. The context task is `task`, by default the task that panicked."""
    if not where.startswith("unix:"):
        raise KcrashError(f"{where}: only unix:PATH is supported (kcrash never listens on a network port)")
    path = where[len("unix:") :]
    if not path:
        raise KcrashError("--gdbserver needs a socket path: unix:PATH")
    if task is None:
        task = _panic_task(kernel)
    listener = _listen(path)
    target = RemoteTarget(kernel, task)
    _terminate_as_interrupt()
    sys.stderr.write(f"kcrash: serving the dump to gdb on unix:{path} (target remote {path})\n")
    sys.stderr.flush()
    if ready is not None:
        ready()
    try:
        while True:
            conn, _ = listener.accept()
            target.no_ack = False
            serve_socket(conn, target)
            if once:
                break
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        try:
            os.unlink(path)
        except OSError:
            pass
    return 0


def _terminate_as_interrupt() -> None:
    """SIGTERM ends `--gdbserver` like Ctrl-C does, so the socket file is removed."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _panic_task(kernel: Any) -> Any:
    try:
        return default_task(kernel)
    except Exception:  # noqa: BLE001 - without a task gdb still reads memory; registers are a bonus
        return None


def start_private_server(kernel: Any, task: Any = None) -> tuple[str, RemoteTarget, threading.Thread, str]:
    """A server for kcrash's own gdb: a socket in a fresh 0700 directory, served from a daemon thread
    for one connection. Returns (socket path, target, thread, directory)."""
    import tempfile

    directory = tempfile.mkdtemp(prefix="kcrash-gdb-")
    os.chmod(directory, 0o700)
    path = os.path.join(directory, "rsp")
    listener = _listen(path)
    target = RemoteTarget(kernel, task)

    def run() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        finally:
            listener.close()
        serve_socket(conn, target)

    thread = threading.Thread(target=run, name="kcrash-rsp", daemon=True)
    thread.start()
    return path, target, thread, directory
