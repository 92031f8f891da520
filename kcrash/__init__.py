"""kcrash: a Python shell for Linux kernel crash dumps."""

__version__ = "0.1.0"
