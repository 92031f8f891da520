"""`log`: the kernel message buffer, formatted as crash prints it."""

from __future__ import annotations

from kcrash.commands import Args, Context, Option, command
from kcrash.commands._crashtext import ctime_tz
from kcrash.errors import KcrashError
from kcrash.kernel.audit import audit_records
from kcrash.kernel.printk import LogRecord, caller_id_width, log_format, log_records, plain_log
from kcrash.kernel.printk_safe import safe_buffers
from kcrash.kernel.time import boot_time

__all__ = ["format_record", "format_plain", "printable"]

# crash prints a character if isprint() or isspace() in the C locale, else '.'.
_PRINTABLE = bytes(b if 0x20 <= b < 0x7F or 0x09 <= b <= 0x0D else 0x2E for b in range(256))
# ...but a dictionary (3.5-5.9 `log -d`) only if isprint(); its NULs end entries.
_DICT_PRINTABLE = bytes(b if 0x20 <= b < 0x7F or b == 0 else 0x2E for b in range(256))


def printable(text: bytes) -> str:
    """`text` with the characters crash would not print replaced by '.'."""
    return text.translate(_PRINTABLE).decode("ascii")


def format_record(
    rec: LogRecord,
    *,
    timestamps: bool = True,
    boot: int | None = None,
    caller_width: int | None = None,
    level: bool = False,
    dictionary: bool = False,
) -> str:
    """One record as crash's `log` prints it (without the final newline).

    `boot` (seconds since the epoch) asks for `-T` times; `caller_width` for `-c` caller ids. Lines after
    the first are indented to the width of the prefix. A data-less record prints as an empty line.
    """
    if rec.dataless:
        return ""
    prefix = ""
    if timestamps:
        seconds, nanos = divmod(rec.ts_nsec, 1_000_000_000)
        if boot is not None:
            prefix = f"[{ctime_tz(boot + seconds)}] "
        else:
            prefix = f"[{seconds:5d}.{nanos // 1000:06d}] "
    if caller_width is not None and rec.caller_id is not None:
        prefix += f"[{rec.caller:>{caller_width}}] "
    if level:
        prefix += f"<{rec.level:x}>"
    indent = " " * len(prefix)
    text = printable(rec.text)
    if "\n" in text:
        text = text.replace("\n", "\n" + indent)
    out = prefix + text
    if dictionary:
        if rec.dictionary:
            # crash indents each entry, as it starts a line, to the prefix width.
            parts = rec.dictionary.translate(_DICT_PRINTABLE).decode("ascii").split("\0")
            out += "\n" + "\n".join(indent + p if p else "" for p in parts)
        else:
            if rec.subsystem:
                out += f"\n{indent}SUBSYSTEM={rec.subsystem.decode('latin-1')}"
            if rec.device:
                out += f"\n{indent}DEVICE={rec.device.decode('latin-1')}"
    return out


def format_plain(text: bytes, at_line_start: bool, level: bool = False) -> str:
    """A pre-3.5 plain log as crash prints it: NULs skipped, each line's `<N>` prefix dropped unless
    `level`, unprintable characters as '.', and a final newline."""
    out = bytearray()
    strip = at_line_start
    last = 0
    for ch in text:
        if strip and not level:
            if ch == 0x3E:  # '>'
                strip = False
                continue
            if ch == 0x3C or 0x30 <= ch <= 0x37:  # '<' and '0'..'7'
                continue
            strip = False
        if ch:
            out.append(ch if 0x20 <= ch < 0x7F or ch in (0x09, 0x0A) else 0x2E)
            strip = ch == 0x0A
            last = ch
    if last != 0x0A:
        out.append(0x0A)
    return out.decode("ascii")


def _safe_buffer_lines(buffers, show_header: bool, text_only: bool, level: bool) -> str:
    """crash's dump of the printk_safe buffers (after `log`, or alone with `log -s`)."""
    out: list[str] = []
    last_name = None
    for buf in buffers:
        if show_header and buf.name != last_name:
            out.append(f"PRINTK_SAFE_SEQ_BUF: {buf.name}\n")
        last_name = buf.name
        if show_header:
            out.append(
                f"CPU: {buf.cpu}  ADDR: {buf.address:x} LEN: {buf.length}  MESSAGE_LOST: {buf.message_lost}\n"
            )
        if buf.length <= 0:
            if show_header:
                out.append("  (empty)\n\n")
            continue
        if show_header:
            ilen = 2
        else:
            ilen = 0 if text_only else len(buf.name) + 3
        if level:
            ilen += 3
        start_of_line = True
        data = buf.data
        i = 0
        while i < len(data):
            ch = data[i]
            sol, start_of_line = start_of_line, False
            if ch == 0x01:  # KERN_SOH: a level follows
                i += 1
                if not sol:
                    out.append("\n")
                if show_header:
                    out.append("  ")
                elif not text_only:
                    out.append(f"[{buf.name}] ")
                if level and i < len(data) and chr(data[i]) in "01234567c":
                    out.append(f"<{chr(data[i])}>")
                i += 1
                continue
            if sol:
                out.append(" " * ilen)
            out.append(chr(_PRINTABLE[ch]))
            if ch == 0x0A:
                start_of_line = True
            i += 1
        if not start_of_line:
            out.append("\n")
        if show_header:
            out.append("\n")
    return "".join(out)


@command(
    "log",
    summary="dump system message buffer",
    options=[
        Option("-T", help="display the message text with human readable timestamps."),
        Option("-t", help="display the message text without the timestamp."),
        Option("-d", help="display the dictionary of key/value pairs appended by dev_printk()."),
        Option("-m", help="display the message log level in brackets preceding each message."),
        Option("-a", help="dump the audit logs remaining in the kernel audit buffers."),
        Option("-s", help="dump the printk logs remaining in the kernel printk_safe per-CPU buffers."),
        Option("-c", help="display the caller id: the thread id or the CPU that logged each message."),
    ],
    help="""
    SYNOPSIS
    log [-Ttdmasc]

    DESCRIPTION
    This command dumps the kernel log_buf contents in chronological order. The
    command supports the older log_buf formats, which may or may not contain a
    timestamp inserted prior to each message, the variable-length record format
    of Linux 3.5 to 5.9 whose timestamp is in each record's header, and the
    lockless ring buffer of Linux 5.10 and later. The log is read with the
    layouts the kernel records in VMCOREINFO, so it needs no debug info.

      -T  Display the message text with human readable timestamps: the boot
          time (crash time less uptime) plus each message's timestamp.
          Beware that it is inaccurate if the system was suspended.
      -t  Display the message text without the timestamp; only applicable to
          the variable-length record and lockless formats.
      -d  Display the dictionary of key/value pair properties that are
          optionally appended to a message by the kernel's dev_printk()
          function (SUBSYSTEM= and DEVICE= on 5.10 and later).
      -m  Display the message log level in brackets preceding each message.
          For the variable-length and lockless formats, the level is shown
          as <N>; in the older plain format it is part of the text.
      -a  Dump the audit logs remaining in the kernel audit buffers that have
          not been copied out to the user-space audit daemon.
      -s  Dump the printk logs remaining in the kernel printk_safe per-CPU
          buffers that had not been flushed out to log_buf.
      -c  Display the caller id of each message: [T<pid>] for a task,
          [C<cpu>] for a CPU (Linux 5.1 and later).

    EXAMPLES
    Dump the kernel message buffer:

      kcrash> log
      [    0.000000] Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) ...
      [    0.000000] Command line: console=ttyS0 panic=0
      ...

    Dump it with log levels and caller ids, without timestamps:

      kcrash> log -tmc
      [     T0] <5>Linux version 6.1.0-56-cloud-amd64 ...

    With human readable timestamps:

      kcrash> log -T
      [Thu Nov 26 10:26:27 UTC 2026] Linux version 6.1.0-56-cloud-amd64 ...
    """,
)
def log_command(ctx: Context, args: Args) -> None:
    k = ctx.kernel
    if args.a:
        audit = audit_records(k)
        if not audit:
            ctx.print("log: kernel audit log is empty")
            return
        for entry in audit:
            ctx.print(f"type={entry.type} {printable(entry.text)}")
        return
    if args.s:
        _print_safe_buffers(ctx, show_header=True, args=args)
        return

    kind = log_format(k)
    if kind == "plain":
        for flag, on in (("T", args.T), ("d", args.d), ("t", args.t)):
            if on:
                raise KcrashError(f"-{flag} option not supported on this dumpfile")
        log = plain_log(k)
        ctx.write(format_plain(log.text, log.at_line_start, level=args.m))
        _print_safe_buffers(ctx, show_header=False, args=args)
        return

    records = log_records(k)
    if ctx.json:
        for rec in records:
            ctx.emit(rec)
        return
    boot = None
    if args.T and not args.t:
        boot = boot_time(k)
        if boot is None:
            raise KcrashError("cannot determine the boot time for -T")
    width = caller_id_width(k) if args.c else None
    lines = [
        format_record(
            rec, timestamps=not args.t, boot=boot, caller_width=width, level=args.m, dictionary=args.d
        )
        for rec in records
    ]
    if lines:
        ctx.write("\n".join(lines) + "\n")
    _print_safe_buffers(ctx, show_header=False, args=args)


def _print_safe_buffers(ctx, show_header: bool, args) -> None:
    k = ctx.kernel
    try:
        buffers = safe_buffers(k)
    except KcrashError:
        if show_header:
            raise
        return
    if buffers:
        ctx.write(_safe_buffer_lines(buffers, show_header, text_only=args.t, level=args.m))
