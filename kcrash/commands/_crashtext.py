"""crash's text formats that several commands share: the task header line, dates, and durations."""

from __future__ import annotations

import time

__all__ = ["task_header", "ctime_tz", "format_jiffies", "format_nanoseconds"]


def task_header(pid: int, task: int, cpu: int | str, comm: str) -> str:
    """crash's task header line (print_task_header): ps -p/-c/-g/-t/-l/-a, bt, task and foreach."""
    return f'PID: {pid:<7}  TASK: {task:<16x}  CPU: {cpu!s:<3}  COMMAND: "{comm}"'


def ctime_tz(seconds: int) -> str:
    """crash's ctime_tz(): local time as `%a %b %e %T %Z %Y`."""
    return time.strftime("%a %b %e %T %Z %Y", time.localtime(seconds))


def format_jiffies(jiffies: int, hz: int) -> str:
    """crash's convert_time(): "HH:MM:SS", or "N days, HH:MM:SS"."""
    total = jiffies // hz
    days, total = divmod(total, 86400)
    hours, total = divmod(total, 3600)
    minutes, seconds = divmod(total, 60)
    prefix = f"{days} days, " if days else ""
    return f"{prefix}{hours:02}:{minutes:02}:{seconds:02}"


def format_nanoseconds(ns: int) -> str:
    """crash's translate_nanoseconds(): "D HH:MM:SS.mmm"."""
    ms_total = ns // 1_000_000
    ms = ms_total % 1000
    secs_total = ms_total // 1000
    days, rest = divmod(secs_total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{days} {hours:02}:{minutes:02}:{seconds:02}.{ms:03}"
