"""DWARF DIEs to kcrash Types: base, pointer, qualifier, typedef, struct/union, enum, array, function types,
built lazily and cached per DIE offset."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kcrash.debuginfo.dwarf.constants import (
    CONST_FORMS,
    AT_abstract_origin,
    AT_bit_offset,
    AT_bit_size,
    AT_byte_size,
    AT_const_value,
    AT_count,
    AT_data_bit_offset,
    AT_data_member_location,
    AT_declaration,
    AT_encoding,
    AT_lower_bound,
    AT_name,
    AT_specification,
    AT_type,
    AT_upper_bound,
    ATE_boolean,
    ATE_complex_float,
    ATE_float,
    ATE_signed,
    ATE_signed_char,
    FORM_data8,
    OP_plus_uconst,
    TAG_array_type,
    TAG_atomic_type,
    TAG_base_type,
    TAG_class_type,
    TAG_const_type,
    TAG_enumeration_type,
    TAG_enumerator,
    TAG_formal_parameter,
    TAG_member,
    TAG_pointer_type,
    TAG_reference_type,
    TAG_restrict_type,
    TAG_structure_type,
    TAG_subprogram,
    TAG_subrange_type,
    TAG_subroutine_type,
    TAG_typedef,
    TAG_union_type,
    TAG_unspecified_parameters,
    TAG_unspecified_type,
    TAG_variable,
    TAG_volatile_type,
)
from kcrash.debuginfo.dwarf.reader import Die, Reader
from kcrash.debuginfo.leb128 import uleb128
from kcrash.debuginfo.types import Enumerator, Kind, Member, Parameter, Type
from kcrash.errors import DebugInfoError

if TYPE_CHECKING:
    from kcrash.debuginfo.dwarf.index import DwarfIndex


_QUALIFIER_TAGS = {
    TAG_const_type: Kind.CONST,
    TAG_volatile_type: Kind.VOLATILE,
    TAG_restrict_type: Kind.RESTRICT,
}
_AGGREGATE_TAGS = {TAG_structure_type: Kind.STRUCT, TAG_class_type: Kind.STRUCT, TAG_union_type: Kind.UNION}


def _member_location(die: Die) -> int:
    """DW_AT_data_member_location in bytes: a constant, or (DWARF 2) DW_OP_plus_uconst N."""
    loc = die.attrs.get(AT_data_member_location, 0)
    if isinstance(loc, bytes):
        if loc and loc[0] == OP_plus_uconst:
            return uleb128(loc, 1)[0]
        return 0
    return int(loc)


class TypeBuilder:
    """Builds Types from DIE offsets, each once; references become thunks resolved on first use."""

    def __init__(self, reader: Reader, index: DwarfIndex) -> None:
        self.reader = reader
        self.index = index
        self.built: dict[int, Type] = {}
        self.void = Type(Kind.VOID, "void")

    def ref(self, offset: int | None) -> Type | Callable[[], Type]:
        if not offset:
            return self.void
        t = self.built.get(offset)
        return t if t is not None else lambda: self.type(offset)

    def type(self, offset: int) -> Type:
        t = self.built.get(offset)
        if t is None:
            t = self._make(self.reader.die(offset))
            self.built[offset] = t
        return t

    def _make(self, die: Die) -> Type:
        tag = die.tag
        attrs = die.attrs
        name = attrs.get(AT_name)
        if tag == TAG_pointer_type or tag == TAG_reference_type:
            size = attrs.get(AT_byte_size) or die.unit.addr_size
            return Type(Kind.POINTER, None, size, target=self.ref(attrs.get(AT_type)))
        if tag in _QUALIFIER_TAGS:
            return Type(_QUALIFIER_TAGS[tag], None, None, target=self.ref(attrs.get(AT_type)))
        if tag == TAG_typedef:
            return Type(Kind.TYPEDEF, name, None, target=self.ref(attrs.get(AT_type)))
        if tag == TAG_base_type:
            return self._base(die)
        if tag in _AGGREGATE_TAGS:
            if attrs.get(AT_declaration):
                full = self._definition("union" if tag == TAG_union_type else "struct", name, die.offset)
                if full is not None:
                    return full
                return Type(_AGGREGATE_TAGS[tag], name, None)
            return Type(
                _AGGREGATE_TAGS[tag], name, attrs.get(AT_byte_size), members=lambda: self._members(die)
            )
        if tag == TAG_enumeration_type:
            if attrs.get(AT_declaration):
                full = self._definition("enum", name, die.offset)
                if full is not None:
                    return full
            return self._enum(die)
        if tag == TAG_array_type:
            return self._array(die)
        if tag == TAG_subroutine_type or tag == TAG_subprogram:
            return self._function(die)
        if tag == TAG_atomic_type:
            return self.type(attrs[AT_type]) if attrs.get(AT_type) else self.void
        if tag == TAG_variable or tag == TAG_formal_parameter or tag == TAG_member:
            ref = self.reader.origin(die, AT_type)
            return self.type(ref) if ref else self.void
        if tag == TAG_unspecified_type:
            return Type(Kind.VOID, name or "void")
        raise DebugInfoError(
            self.reader.dwarf.path, f"DIE at .debug_info+{die.offset:#x} (tag {tag:#x}) is not a type"
        )

    def _definition(self, namespace: str, name: str | None, offset: int) -> Type | None:
        if not name:
            return None
        full = self.index._names[namespace].get(name)
        if full is None or full == offset:
            return None
        die = self.reader.die(full)
        if die.attrs.get(AT_declaration):
            return None
        return self.type(full)

    def _base(self, die: Die) -> Type:
        attrs = die.attrs
        encoding = attrs.get(AT_encoding, 0)
        size = attrs.get(AT_byte_size)
        name = attrs.get(AT_name)
        if encoding == ATE_boolean:
            return Type(Kind.BOOL, name, size)
        if encoding in (ATE_float, ATE_complex_float):
            return Type(Kind.FLOAT, name, size, signed=True)
        return Type(Kind.INT, name, size, signed=encoding in (ATE_signed, ATE_signed_char))

    def _members(self, die: Die) -> list[Member]:
        members = []
        for child in self.reader.children(die):
            if child.tag != TAG_member:
                continue
            attrs = child.attrs
            bit_size = attrs.get(AT_bit_size, 0)
            if AT_data_bit_offset in attrs:
                bit_offset = attrs[AT_data_bit_offset]
            else:
                bit_offset = _member_location(child) * 8
                if bit_size and AT_bit_offset in attrs:
                    # DWARF 2/3 bit fields count from the most significant bit of the storage unit.
                    storage = attrs.get(AT_byte_size) or self.type(attrs[AT_type]).sizeof()
                    bit_offset += storage * 8 - attrs[AT_bit_offset] - bit_size
            members.append(Member(attrs.get(AT_name), self.ref(attrs.get(AT_type)), bit_offset, bit_size))
        return members

    def _enum(self, die: Die) -> Type:
        attrs = die.attrs
        size = attrs.get(AT_byte_size)
        signed = False
        if attrs.get(AT_type):
            signed = self.type(attrs[AT_type]).strip().signed
        values = []
        for child in self.reader.children(die):
            if child.tag != TAG_enumerator:
                continue
            value = child.attrs.get(AT_const_value, 0)
            if signed and child.forms.get(AT_const_value) == FORM_data8 and value >= 1 << 63:
                value -= 1 << 64  # as gdb reads it: dataN is unsigned, but 64 bits wrap to negative
            values.append(Enumerator(child.attrs.get(AT_name, ""), value))
        if not attrs.get(AT_type):
            signed = any(e.value < 0 for e in values)
        return Type(Kind.ENUM, attrs.get(AT_name), size, signed=signed, enumerators=values)

    def _array(self, die: Die) -> Type:
        lengths: list[int | None] = []
        for child in self.reader.children(die):
            if child.tag != TAG_subrange_type:
                continue
            attrs, forms = child.attrs, child.forms
            count = None
            if AT_count in attrs:
                if forms[AT_count] in CONST_FORMS:
                    count = attrs[AT_count]
            elif forms.get(AT_upper_bound) in CONST_FORMS:
                upper = attrs[AT_upper_bound]
                if forms[AT_upper_bound] == FORM_data8 and upper == (1 << 64) - 1:
                    upper = -1  # older gcc's "[0]": an upper bound of -1 in a sign-less form
                lower = attrs.get(AT_lower_bound, 0) if forms.get(AT_lower_bound) in CONST_FORMS else 0
                count = upper - lower + 1
            lengths.append(count)
        if not lengths:
            lengths = [None]
        element: Type | Callable[[], Type] = self.ref(die.attrs.get(AT_type))
        for length in reversed(lengths[1:]):
            element = Type(Kind.ARRAY, None, None, target=element, length=length)
        return Type(Kind.ARRAY, None, None, target=element, length=lengths[0])

    def _function(self, die: Die) -> Type:
        if die.tag == TAG_subprogram and AT_type not in die.attrs:
            origin = die.attrs.get(AT_specification) or die.attrs.get(AT_abstract_origin)
            if origin:
                return self._function(self.reader.die(origin))
        params: list[Parameter] = []
        variadic = False
        for child in self.reader.children(die):
            if child.tag == TAG_formal_parameter:
                params.append(
                    Parameter(self.reader.name(child), self.ref(self.reader.origin(child, AT_type)))
                )
            elif child.tag == TAG_unspecified_parameters:
                variadic = True
        return Type(
            Kind.FUNCTION,
            None,
            None,
            target=self.ref(die.attrs.get(AT_type)),
            params=params,
            variadic=variadic,
        )
