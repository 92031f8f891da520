"""kcrash's C expression engine: parse and evaluate expressions over dump memory with gdb's semantics,
and print values and types exactly as gdb (inside crash) prints them.

    scope = Scope(kernel)                      # names, types, value history of a session
    value = Evaluator(scope).evaluate("init_task.comm")
    text = ValueFormatter(kernel, scope.symbolizer.suffix).top(value)   # '"swapper/0\\000..."'
"""

from kcrash.expr.errors import ExprError, ExprSyntaxError, Unsupported
from kcrash.expr.evaluate import Evaluator, evaluate, evaluate_type
from kcrash.expr.scope import History, Scope, primitive
from kcrash.expr.typeprint import declaration, ptype, type_name
from kcrash.expr.valfmt import PrintOptions, ValueFormatter

__all__ = [
    "ExprError",
    "ExprSyntaxError",
    "Unsupported",
    "Evaluator",
    "evaluate",
    "evaluate_type",
    "History",
    "Scope",
    "primitive",
    "declaration",
    "ptype",
    "type_name",
    "PrintOptions",
    "ValueFormatter",
]
