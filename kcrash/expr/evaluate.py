"""Evaluate a parsed C expression over dump memory, with gdb's C semantics: integer promotions and
usual arithmetic conversions (results truncated to the result type), pointer arithmetic scaled by the
target size, `*` of an integer reading an int, `.` through pointers, `sizeof` yielding an int, gdb's
`@` artificial arrays and `{type} addr`. Values are kcrash Objects (in memory, or computed bytes).

Constructs only gdb evaluates (calls, convenience variables and functions, registers, floats,
assignments) raise Unsupported, so the caller can hand the whole expression to gdb.
"""

from __future__ import annotations

from typing import Any

from kcrash.debuginfo.types import QUALIFIERS, Kind, Type
from kcrash.errors import LookupFailedError
from kcrash.expr import parser as ast
from kcrash.expr.errors import ExprError, Unsupported
from kcrash.expr.scope import Scope, pointer_to, primitive
from kcrash.objects import Object

__all__ = ["Evaluator", "evaluate", "evaluate_type"]

_INTEGRAL = (Kind.INT, Kind.BOOL, Kind.ENUM)
_MASK64 = (1 << 64) - 1


def _strip(t: Type) -> Type:
    while t.kind is Kind.TYPEDEF or t.kind in QUALIFIERS:
        t = t.target
    return t


def _int_obj(kernel: Any, t: Type, value: int) -> Object:
    size = _strip(t).size or 8
    return Object(kernel, t, value=(value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))


class Evaluator:
    """Evaluates ASTs in one Scope. `evaluate(text)` parses and evaluates."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.kernel = scope.kernel

    # --- entry points ---------------------------------------------------------------------------------
    def parse(self, text: str) -> ast.Node:
        return ast.parse(text, self.scope.is_typedef)

    def evaluate(self, text: str) -> Object:
        node = self.parse(text)
        if isinstance(node, ast.TypeExpr):
            raise ExprError("Attempt to use a type name as an expression")
        return self.eval(node)

    def type_of(self, text: str) -> tuple[Type, bool]:
        """The type of an expression or type name, and whether the text named a type (whatis/ptype)."""
        node = self.parse(text)
        if isinstance(node, ast.TypeExpr):
            return self.scope.resolve(node.spec), True
        if isinstance(node, ast.Name):
            hit = self.scope.lookup(node.name)
            if hit[0] == "type":
                return hit[1], True
        return self.static_type(node), False

    def static_type(self, node: ast.Node) -> Type:
        """The type of an expression, reading memory only where the value is needed (as gdb's
        evaluate_type): most expressions still just evaluate."""
        if isinstance(node, ast.Unary) and node.op == "sizeof":
            return primitive("int")
        return self.eval(node).type_

    # --- dispatch -------------------------------------------------------------------------------------
    def eval(self, node: ast.Node) -> Object:
        method = getattr(self, "_eval_" + type(node).__name__, None)
        if method is None:
            raise Unsupported(f"{type(node).__name__} expressions")
        return method(node)

    def _eval_Num(self, node: ast.Num) -> Object:
        n, suffix = node.value, node.suffix
        unsigned = "u" in suffix
        longs = suffix.count("l")
        if longs == 0 and n < 1 << 32:
            t = primitive("unsigned int" if unsigned or n & 0x80000000 else "int")
        elif n < 1 << 64:
            t = primitive("unsigned long" if unsigned or n >> 63 else "long")
        else:
            raise ExprError("Numeric constant too large.")
        return _int_obj(self.kernel, t, n)

    def _eval_Char(self, node: ast.Char) -> Object:
        return _int_obj(self.kernel, primitive("char"), node.value)

    def _eval_Str(self, node: ast.Str) -> Object:
        data = node.value + b"\0"
        t = Type(Kind.ARRAY, None, None, target=primitive("char"), length=len(data))
        return Object(self.kernel, t, value=data)

    def _eval_Float(self, node: ast.Float) -> Object:
        raise Unsupported("floating-point arithmetic")

    def _eval_Scope(self, node: ast.Scope) -> Object:
        raise Unsupported(f"scope operator in {node.text}")

    def _eval_Dollar(self, node: ast.Dollar) -> Object:
        text = node.text
        body = text[1:]
        if body == "" or body.isdigit() or body.startswith("$"):
            return self.scope.history.get(text)
        raise Unsupported(f"{text}: convenience variables and registers are gdb's")

    def _eval_TypeExpr(self, node: ast.TypeExpr) -> Object:
        raise ExprError("Attempt to use a type name as an expression")

    def _eval_Name(self, node: ast.Name) -> Object:
        hit = self.scope.lookup(node.name)
        kind = hit[0]
        if kind == "var":
            return Object(self.kernel, hit[2], address=hit[1])
        if kind == "func":
            ftype = hit[2]
            if ftype is None:
                ftype = NO_DEBUG_FUNCTION
            return Object(self.kernel, ftype, address=hit[1])
        if kind == "enum":
            return _int_obj(self.kernel, hit[1], hit[2])
        if kind == "type":
            raise ExprError("Attempt to use a type name as an expression")
        raise ExprError(f"'{node.name}' has unknown type; cast it to its declared type")

    def _eval_Call(self, node: ast.Call) -> Object:
        raise Unsupported("function calls")

    def _eval_Assign(self, node: ast.Assign) -> Object:
        raise Unsupported("assignment")

    def _eval_Postfix(self, node: ast.Postfix) -> Object:
        raise Unsupported(f"the {node.op} operator")

    def _eval_Comma(self, node: ast.Comma) -> Object:
        self.eval(node.left)
        return self.eval(node.right)

    # --- member, index, deref ---------------------------------------------------------------------
    def _eval_Member(self, node: ast.Member) -> Object:
        obj = self.eval(node.obj)
        t = _strip(obj.type_)
        if t.kind is Kind.POINTER:
            target = _strip(t.target)
            if target.kind not in (Kind.STRUCT, Kind.UNION):
                raise ExprError(f'cannot take member "{node.name}" of a pointer to {_tname(t.target)}')
            obj = Object(self.kernel, t.target, address=obj.value())
        elif t.kind not in (Kind.STRUCT, Kind.UNION):
            raise ExprError(f'cannot take member "{node.name}" of {_tname(obj.type_)}: not a struct or union')
        try:
            return obj.member(node.name)
        except LookupFailedError as e:
            raise ExprError(str(e)) from None

    def _eval_Index(self, node: ast.Index) -> Object:
        obj = self.eval(node.obj)
        index = self.eval(node.index)
        t = _strip(obj.type_)
        if t.kind not in (Kind.ARRAY, Kind.POINTER):
            if _strip(index.type_).kind in (Kind.ARRAY, Kind.POINTER):
                obj, index, t = index, obj, _strip(index.type_)
            else:
                raise ExprError(f"cannot subscript something of type `{_tname(obj.type_)}'")
        i = self._int(index)
        if t.kind is Kind.ARRAY:
            elem = t.target
            size = elem.sizeof()
            if obj.address is None:
                if not 0 <= i < (t.length or 0):
                    raise ExprError("no such vector element")
                return Object(self.kernel, elem, value=obj.raw()[i * size : (i + 1) * size])
            return Object(self.kernel, elem, address=(obj.address + i * size) & _MASK64)
        elem = t.target
        if _strip(elem).kind is Kind.VOID:
            raise ExprError("Attempt to take contents of a non-pointer value.")
        return Object(self.kernel, elem, address=(obj.value() + i * elem.sizeof()) & _MASK64)

    def _deref(self, obj: Object) -> Object:
        t = _strip(obj.type_)
        if t.kind is Kind.POINTER:
            target = t.target
            if _strip(target).kind is Kind.VOID:
                raise ExprError("Attempt to take contents of a non-pointer value.")
            return Object(self.kernel, target, address=obj.value())
        if t.kind is Kind.ARRAY:
            return self._eval_index_zero(obj, t)
        if t.kind is Kind.FUNCTION:
            return obj
        if t.kind in (Kind.INT, Kind.ENUM, Kind.BOOL):
            # gdb reads an int at an integer address.
            return Object(self.kernel, primitive("int"), address=self._int(obj) & _MASK64)
        raise ExprError("Attempt to take contents of a non-pointer value.")

    def _eval_index_zero(self, obj: Object, t: Type) -> Object:
        elem = t.target
        if obj.address is None:
            return Object(self.kernel, elem, value=obj.raw()[: elem.sizeof()])
        return Object(self.kernel, elem, address=obj.address)

    def _address_of(self, obj: Object) -> Object:
        t = _strip(obj.type_)
        if obj._bit_size or obj.address is None or obj._buf is not None:
            raise ExprError("Attempt to take address of value not located in memory.")
        return _int_obj(self.kernel, pointer_to(obj.type_), obj.address) if t.kind is not Kind.VOID else obj

    # --- unary ------------------------------------------------------------------------------------------
    def _eval_Unary(self, node: ast.Unary) -> Object:
        op = node.op
        if op == "sizeof":
            t = self._sizeof_operand_type(node.operand)
            return _int_obj(self.kernel, primitive("int"), _sizeof(t))
        if op in ("++", "--"):
            raise Unsupported(f"the {op} operator")
        operand = self.eval(node.operand)
        if op == "*":
            return self._deref(operand)
        if op == "&":
            return self._address_of(operand)
        t = _strip(operand.type_)
        if op == "!":
            if t.kind not in _INTEGRAL and t.kind is not Kind.POINTER:
                raise ExprError("Argument to logical not not a number or boolean.")
            return _int_obj(self.kernel, primitive("int"), 0 if self._int(operand) else 1)
        if t.kind not in _INTEGRAL:
            if t.kind is Kind.FLOAT:
                raise Unsupported("floating-point arithmetic")
            raise ExprError("Argument to arithmetic operation not a number or boolean.")
        rtype = operand.type_ if (t.size or 4) >= 4 and t.kind is Kind.INT else primitive("int")
        if _strip(rtype).kind is not Kind.INT:
            rtype = primitive("int")
        v = self._int(operand)
        if op == "-":
            v = -v
        elif op == "~":
            v = ~v
        return _int_obj(self.kernel, rtype, v)

    def _sizeof_operand_type(self, node: ast.Node) -> Type:
        if isinstance(node, ast.Name):
            hit = self.scope.lookup(node.name)
            if hit[0] == "var":
                return hit[2]
            if hit[0] == "type":
                return hit[1]
        if isinstance(node, ast.TypeExpr):
            return self.scope.resolve(node.spec)
        return self.eval(node).type_

    def _eval_SizeofType(self, node: ast.SizeofType) -> Object:
        return _int_obj(self.kernel, primitive("int"), _sizeof(self.scope.resolve(node.spec)))

    # --- casts ------------------------------------------------------------------------------------------
    def _eval_Cast(self, node: ast.Cast) -> Object:
        return self.cast(self.eval(node.operand), self.scope.resolve(node.spec))

    def _eval_BraceCast(self, node: ast.BraceCast) -> Object:
        t = self.scope.resolve(node.spec)
        operand = self.eval(node.operand)
        return Object(self.kernel, t, address=self._int(self._decay(operand)) & _MASK64)

    def cast(self, obj: Object, t: Type) -> Object:
        new = _strip(t)
        src = _strip(obj.type_)
        if new.kind is Kind.VOID:
            return Object(self.kernel, t, value=b"")
        if new.kind in (Kind.INT, Kind.ENUM, Kind.BOOL, Kind.POINTER):
            obj = self._decay(obj)
            src = _strip(obj.type_)
            if src.kind is Kind.FLOAT:
                raise Unsupported("floating-point conversion")
            if src.kind not in (Kind.INT, Kind.ENUM, Kind.BOOL, Kind.POINTER):
                raise ExprError("Invalid cast.")
            v = self._int(obj)
            if new.kind is Kind.BOOL:
                v = 1 if v else 0
            return _int_obj(self.kernel, t, v)
        if new.kind in (Kind.STRUCT, Kind.UNION, Kind.ARRAY):
            if src is new or (src.kind is new.kind and src.name and src.name == new.name):
                return Object(self.kernel, t, address=obj.address) if obj.address is not None else obj
            raise ExprError("Invalid cast.")
        if new.kind is Kind.FLOAT:
            raise Unsupported("floating-point conversion")
        raise ExprError("Invalid cast.")

    # --- binary -----------------------------------------------------------------------------------------
    def _eval_Binary(self, node: ast.Binary) -> Object:
        op = node.op
        if op == "&&" or op == "||":
            left_true = self._truth(self.eval(node.left))
            if op == "&&" and not left_true:
                return _int_obj(self.kernel, primitive("int"), 0)
            if op == "||" and left_true:
                return _int_obj(self.kernel, primitive("int"), 1)
            return _int_obj(self.kernel, primitive("int"), 1 if self._truth(self.eval(node.right)) else 0)
        left = self.eval(node.left)
        right = self.eval(node.right)
        if op == "@":
            return self._artificial_array(left, right)
        lt, rt = _strip(left.type_), _strip(right.type_)
        if lt.kind is Kind.FLOAT or rt.kind is Kind.FLOAT:
            raise Unsupported("floating-point arithmetic")
        if lt.kind in (Kind.ARRAY, Kind.FUNCTION):
            left = self._decay(left)
            lt = _strip(left.type_)
        if rt.kind in (Kind.ARRAY, Kind.FUNCTION):
            right = self._decay(right)
            rt = _strip(right.type_)
        lp, rp = lt.kind is Kind.POINTER, rt.kind is Kind.POINTER
        if lp or rp:
            return self._pointer_op(op, left, right, lt, rt)
        if lt.kind not in _INTEGRAL or rt.kind not in _INTEGRAL:
            raise ExprError("Argument to arithmetic operation not a number or boolean.")
        a, b = self._int(left), self._int(right)
        if op in ("==", "!=", "<", ">", "<=", ">="):
            rtype = _promoted(lt, rt)
            a, b = _wrap(a, rtype), _wrap(b, rtype)
            result = {"==": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
            return _int_obj(self.kernel, primitive("int"), int(result))
        if op in ("<<", ">>"):
            rtype = _promoted(lt, lt)
            a = _wrap(a, rtype)
            if b < 0:
                raise ExprError(
                    "right shift count is negative" if op == ">>" else "left shift count is negative"
                )
            v = a << b if op == "<<" else a >> b
            return _int_obj(self.kernel, rtype, v)
        rtype = _promoted(lt, rt)
        a, b = _wrap(a, rtype), _wrap(b, rtype)
        if op in ("/", "%"):
            if b == 0:
                raise ExprError("Division by zero")
            q = abs(a) // abs(b)
            if (a < 0) != (b < 0):
                q = -q
            v = q if op == "/" else a - q * b
        else:
            v = {"+": a + b, "-": a - b, "*": a * b, "&": a & b, "|": a | b, "^": a ^ b}[op]
        return _int_obj(self.kernel, rtype, v)

    def _pointer_op(self, op: str, left: Object, right: Object, lt: Type, rt: Type) -> Object:
        lp, rp = lt.kind is Kind.POINTER, rt.kind is Kind.POINTER
        int_t = primitive("int")
        if op in ("==", "!=", "<", ">", "<=", ">="):
            a, b = self._int(left) & _MASK64, self._int(right) & _MASK64
            result = {"==": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
            return _int_obj(self.kernel, int_t, int(result))
        if op == "+" and (lp != rp):
            ptr, other = (left, right) if lp else (right, left)
            if _strip(other.type_).kind not in _INTEGRAL:
                raise ExprError("Argument to arithmetic operation not a number or boolean.")
            size = _target_size(_strip(ptr.type_))
            return _int_obj(self.kernel, ptr.type_, self._int(ptr) + self._int(other) * size)
        if op == "-" and lp and not rp:
            if rt.kind not in _INTEGRAL:
                raise ExprError("Argument to arithmetic operation not a number or boolean.")
            size = _target_size(lt)
            return _int_obj(self.kernel, left.type_, self._int(left) - self._int(right) * size)
        if op == "-" and lp and rp:
            sa, sb = _target_size(lt), _target_size(rt)
            if sa != sb:
                raise ExprError(
                    "First argument of `-' is a pointer and second argument is neither\n"
                    "an integer nor a pointer of the same type."
                )
            diff = (self._int(left) - self._int(right)) & _MASK64
            if diff >> 63:
                diff -= 1 << 64
            return _int_obj(self.kernel, primitive("long"), int(diff / sa) if sa else diff)
        if op in ("&", "|", "^", "*", "/", "%", "<<", ">>", "+", "-"):
            # gdb does integer arithmetic on pointers for the bitwise operators: as unsigned long.
            if op in ("*", "/", "%", "+", "-"):
                raise ExprError("Argument to arithmetic operation not a number or boolean.")
            a, b = self._int(left) & _MASK64, self._int(right) & _MASK64
            v = {"&": a & b, "|": a | b, "^": a ^ b, "<<": a << b, ">>": a >> b}[op]
            return _int_obj(self.kernel, primitive("unsigned long"), v)
        raise ExprError(f"cannot apply {op} to a pointer")

    def _artificial_array(self, left: Object, right: Object) -> Object:
        if _strip(right.type_).kind not in _INTEGRAL:
            raise ExprError('Non-integral right operand for "@" operator.')
        count = self._int(right)
        if left.address is None or left._bit_size:
            raise ExprError("Only values in memory can be extended with '@'.")
        if count <= 0:
            raise ExprError(f"Invalid number {count} of repetitions.")
            raise ExprError("Only values in memory can be extended with '@'.")
        t = Type(Kind.ARRAY, None, None, target=left.type_, length=count)
        return Object(self.kernel, t, address=left.address)

    def _eval_Ternary(self, node: ast.Ternary) -> Object:
        return self.eval(node.then) if self._truth(self.eval(node.cond)) else self.eval(node.other)

    # --- helpers ----------------------------------------------------------------------------------------
    def _decay(self, obj: Object) -> Object:
        t = _strip(obj.type_)
        if t.kind is Kind.ARRAY:
            if obj.address is None:
                raise ExprError("Attempt to take address of value not located in memory.")
            return _int_obj(self.kernel, pointer_to(t.target), obj.address)
        if t.kind is Kind.FUNCTION:
            return _int_obj(self.kernel, pointer_to(obj.type_), obj.address or 0)
        return obj

    def _int(self, obj: Object) -> int:
        t = _strip(obj.type_)
        if t.kind in (Kind.ARRAY, Kind.FUNCTION):
            obj = self._decay(obj)
            t = _strip(obj.type_)
        if t.kind not in _INTEGRAL and t.kind is not Kind.POINTER:
            if t.kind is Kind.FLOAT:
                raise Unsupported("floating-point values")
            raise ExprError(f"Value of type `{_tname(obj.type_)}' is not a number.")
        return int(obj.value())

    def _truth(self, obj: Object) -> bool:
        return self._int(obj) != 0


# A text symbol without debug info: gdb prints `{<text variable, no debug info>} addr <sym>`.
NO_DEBUG_FUNCTION = Type(
    Kind.FUNCTION, "<text variable, no debug info>", None, target=Type(Kind.INT, "int", 4, signed=True)
)


def _tname(t: Type) -> str:
    from kcrash.expr.typeprint import type_name

    return type_name(t)


def _sizeof(t: Type) -> int:
    s = _strip(t)
    if s.kind is Kind.VOID or s.kind is Kind.FUNCTION:
        return 1
    if s.kind in (Kind.STRUCT, Kind.UNION) and s.size is None:
        raise ExprError(f"cannot take the size of the incomplete type {_tname(t)}")
    return t.sizeof()


def _target_size(ptr: Type) -> int:
    target = _strip(ptr.target)
    if target.kind in (Kind.VOID, Kind.FUNCTION):
        return 1
    return ptr.target.sizeof()


def _promoted(a: Type, b: Type) -> Type:
    """gdb's binop_promote for two integral types (C): int, unsigned int, long or unsigned long."""
    la, ua = (a.size or 4), not a.signed
    lb, ub = (b.size or 4), not b.signed
    if la < 4:
        la, ua = 4, False
    if lb < 4:
        lb, ub = 4, False
    if la > lb:
        length, unsigned = la, ua
    elif lb > la:
        length, unsigned = lb, ub
    else:
        length, unsigned = la, ua or ub
    if length <= 4:
        return primitive("unsigned int" if unsigned else "int")
    if length <= 8:
        return primitive("unsigned long" if unsigned else "long")
    return primitive("__int128 unsigned" if unsigned else "__int128")


def _wrap(v: int, t: Type) -> int:
    bits = (t.size or 8) * 8
    v &= (1 << bits) - 1
    if t.signed and v >> (bits - 1):
        v -= 1 << bits
    return v


def evaluate(kernel: Any, text: str, scope: Scope | None = None) -> Object:
    """Evaluate `text` against `kernel` (a one-off Scope unless one is given)."""
    return Evaluator(scope or Scope(kernel)).evaluate(text)


def evaluate_type(kernel: Any, text: str, scope: Scope | None = None) -> tuple[Type, bool]:
    return Evaluator(scope or Scope(kernel)).type_of(text)
