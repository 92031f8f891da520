"""Signals: a task's signal dispositions (sighand_struct), pending and blocked sets, and the queued sigqueue
entries of its private and shared pending lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kcrash.errors import KcrashError
from kcrash.program import per_kernel

if TYPE_CHECKING:
    from kcrash.program import Kernel

__all__ = ["SigAction", "SignalState", "task_signals", "signal_names", "NSIG"]

NSIG = 64  # _NSIG on x86_64
SIGRTMIN = 32
TIF_SIGPENDING = 2  # x86_64's thread_info flag bit (arch/x86/include/asm/thread_info.h)
_MAX_QUEUE = 1 << 16

_NAMES = (
    None,
    ("SIGHUP",),
    ("SIGINT",),
    ("SIGQUIT",),
    ("SIGILL",),
    ("SIGTRAP",),
    ("SIGABRT", "SIGIOT"),
    ("SIGBUS",),
    ("SIGFPE",),
    ("SIGKILL",),
    ("SIGUSR1",),
    ("SIGSEGV",),
    ("SIGUSR2",),
    ("SIGPIPE",),
    ("SIGALRM",),
    ("SIGTERM",),
    ("SIGSTKFLT",),
    ("SIGCHLD", "SIGCLD"),
    ("SIGCONT",),
    ("SIGSTOP",),
    ("SIGTSTP",),
    ("SIGTTIN",),
    ("SIGTTOU",),
    ("SIGURG",),
    ("SIGXCPU",),
    ("SIGXFSZ",),
    ("SIGVTALRM",),
    ("SIGPROF",),
    ("SIGWINCH",),
    ("SIGIO", "SIGPOLL"),
    ("SIGPWR",),
    ("SIGSYS", "SIGUNUSED"),
)


def signal_names(signo: int) -> tuple[str, ...]:
    """The names of signal `signo` (1.._NSIG): the classic names with their aliases, then SIGRTMIN,
    SIGRTMIN+n up to the middle of the real-time range, SIGRTMAX-n above it, and SIGRTMAX."""
    if signo < SIGRTMIN:
        entry = _NAMES[signo] if 0 < signo < len(_NAMES) else None
        return entry or ()
    if signo == SIGRTMIN:
        return ("SIGRTMIN",)
    if signo == NSIG:
        return ("SIGRTMAX",)
    span = NSIG - SIGRTMIN - 1
    above_max = span // 2
    below = span - above_max
    offset = signo - SIGRTMIN
    if offset <= below:
        return (f"SIGRTMIN+{offset}",)
    return (f"SIGRTMAX-{NSIG - signo}",)


@dataclass(frozen=True)
class SigAction:
    """One signal's disposition: its k_sigaction's address, handler (0 SIG_DFL, 1 SIG_IGN, -1 SIG_ERR as
    an unsigned word), sa_mask and sa_flags."""

    signo: int
    address: int
    handler: int
    mask: int
    flags: int


@dataclass
class SignalState:
    """A task's signal state: the thread group's (signal_struct, sighand dispositions, shared pending set and
    queue) and the task's own (TIF_SIGPENDING, blocked set, private pending set and queue). A queue is a list
    of (signal number, address of the entry's siginfo)."""

    signal_struct: int
    nr_threads: int | None
    sighand: int
    actions: list[SigAction] = field(default_factory=list)
    sigpending: bool = False
    blocked: int = 0
    private_signal: int = 0
    private_queue: list[tuple[int, int]] = field(default_factory=list)
    shared_signal: int = 0
    shared_queue: list[tuple[int, int]] = field(default_factory=list)


class _SigLayout:
    def __init__(self, k: Kernel) -> None:
        task = k.type("struct task_struct")
        self.signal = task.offsetof("signal")
        self.sighand = task.offsetof("sighand")
        self.blocked = task.offsetof("blocked")
        self.pending = task.offsetof("pending")
        self.ti_flags = task.offsetof("thread_info.flags") if task.find_member("thread_info") else None
        sig = k.type("struct signal_struct")
        self.nr_threads = sig.offsetof("nr_threads") if sig.find_member("nr_threads") else None
        self.shared_pending = sig.offsetof("shared_pending")
        pend = k.type("struct sigpending")
        self.pending_list = pend.offsetof("list")
        self.pending_signal = pend.offsetof("signal")
        hand = k.type("struct sighand_struct")
        self.action = hand.offsetof("action")
        ksa = k.type("struct k_sigaction")
        self.ksa_size = ksa.sizeof()
        self.sa_handler = ksa.offsetof("sa.sa_handler")
        self.sa_flags = ksa.offsetof("sa.sa_flags")
        self.sa_mask = ksa.offsetof("sa.sa_mask")
        q = k.type("struct sigqueue")
        self.q_list = q.offsetof("list")
        self.q_info = q.offsetof("info")
        self.si_signo = k.type("kernel_siginfo_t").offsetof("si_signo")


@per_kernel
def _layout(k: Kernel) -> _SigLayout:
    return _SigLayout(k)


def _queue(k: Kernel, head: int, lay: _SigLayout) -> list[tuple[int, int]]:
    out = []
    node = k.read_u64(head)
    while node != head and node:
        entry = node - lay.q_list
        out.append((k.read_u32(entry + lay.q_info + lay.si_signo), entry + lay.q_info))
        if len(out) > _MAX_QUEUE:
            raise KcrashError(f"sigqueue list at {head:x} does not end (corrupted?)")
        node = k.read_u64(node)
    return out


def task_signals(k: Kernel, task: int) -> SignalState:
    """The signal state of the task at `task`."""
    lay = _layout(k)
    signal = k.read_u64(task + lay.signal)
    sighand = k.read_u64(task + lay.sighand)
    nr_threads = None
    if signal and lay.nr_threads is not None:
        nr_threads = k.read_u32(signal + lay.nr_threads)
    state = SignalState(signal, nr_threads, sighand)
    if sighand:
        raw = k.read(sighand + lay.action, lay.ksa_size * NSIG)
        for i in range(NSIG):
            base = i * lay.ksa_size
            state.actions.append(
                SigAction(
                    i + 1,
                    sighand + lay.action + base,
                    int.from_bytes(raw[base + lay.sa_handler : base + lay.sa_handler + 8], "little"),
                    int.from_bytes(raw[base + lay.sa_mask : base + lay.sa_mask + 8], "little"),
                    int.from_bytes(raw[base + lay.sa_flags : base + lay.sa_flags + 8], "little"),
                )
            )
    if lay.ti_flags is not None:
        state.sigpending = bool(k.read_u64(task + lay.ti_flags) & (1 << TIF_SIGPENDING))
    state.blocked = k.read_u64(task + lay.blocked)
    state.private_signal = k.read_u64(task + lay.pending + lay.pending_signal)
    state.private_queue = _queue(k, task + lay.pending + lay.pending_list, lay)
    if signal:
        shared = signal + lay.shared_pending
        state.shared_signal = k.read_u64(shared + lay.pending_signal)
        state.shared_queue = _queue(k, shared + lay.pending_list, lay)
    return state
