"""Errors of the expression engine: what the user typed is wrong, or kcrash cannot evaluate it itself."""

from __future__ import annotations

from kcrash.errors import KcrashError

__all__ = ["ExprError", "ExprSyntaxError", "Unsupported"]


class ExprError(KcrashError):
    """An expression that is wrong (unknown name, bad operand types): the user sees this message."""


class ExprSyntaxError(ExprError):
    """A syntax error, pointing at the column (0-based) where parsing stopped."""

    def __init__(self, message: str, text: str, column: int) -> None:
        self.text = text
        self.column = column
        self.detail = message
        caret = " " * column + "^"
        super().__init__(f"syntax error: {message} at column {column + 1}\n  {text}\n  {caret}")


class Unsupported(ExprError):
    """A construct only gdb evaluates (convenience functions, registers, calls, floats): the caller may
    hand the whole expression to gdb."""
