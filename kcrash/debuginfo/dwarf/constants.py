"""DWARF constants (DWARF 5 §7): tags, attributes, forms, base-type encodings, unit types, and how to step
over each form."""

from __future__ import annotations

import struct

TAG_array_type = 0x01
TAG_class_type = 0x02
TAG_enumeration_type = 0x04
TAG_formal_parameter = 0x05
TAG_member = 0x0D
TAG_pointer_type = 0x0F
TAG_reference_type = 0x10
TAG_compile_unit = 0x11
TAG_structure_type = 0x13
TAG_subroutine_type = 0x15
TAG_typedef = 0x16
TAG_union_type = 0x17
TAG_unspecified_parameters = 0x18
TAG_subrange_type = 0x21
TAG_base_type = 0x24
TAG_const_type = 0x26
TAG_enumerator = 0x28
TAG_subprogram = 0x2E
TAG_variable = 0x34
TAG_volatile_type = 0x35
TAG_restrict_type = 0x37
TAG_unspecified_type = 0x3B
TAG_type_unit = 0x41
TAG_atomic_type = 0x47

AT_sibling = 0x01
AT_location = 0x02
AT_name = 0x03
AT_byte_size = 0x0B
AT_bit_offset = 0x0C
AT_bit_size = 0x0D
AT_stmt_list = 0x10
AT_low_pc = 0x11
AT_high_pc = 0x12
AT_comp_dir = 0x1B
AT_const_value = 0x1C
AT_lower_bound = 0x22
AT_upper_bound = 0x2F
AT_abstract_origin = 0x31
AT_count = 0x37
AT_data_member_location = 0x38
AT_declaration = 0x3C
AT_encoding = 0x3E
AT_specification = 0x47
AT_type = 0x49
AT_ranges = 0x55
AT_data_bit_offset = 0x6B
AT_str_offsets_base = 0x72
AT_addr_base = 0x73
AT_rnglists_base = 0x74

FORM_addr = 0x01
FORM_block2 = 0x03
FORM_block4 = 0x04
FORM_data2 = 0x05
FORM_data4 = 0x06
FORM_data8 = 0x07
FORM_string = 0x08
FORM_block = 0x09
FORM_block1 = 0x0A
FORM_data1 = 0x0B
FORM_flag = 0x0C
FORM_sdata = 0x0D
FORM_strp = 0x0E
FORM_udata = 0x0F
FORM_ref_addr = 0x10
FORM_ref1 = 0x11
FORM_ref2 = 0x12
FORM_ref4 = 0x13
FORM_ref8 = 0x14
FORM_ref_udata = 0x15
FORM_indirect = 0x16
FORM_sec_offset = 0x17
FORM_exprloc = 0x18
FORM_flag_present = 0x19
FORM_strx = 0x1A
FORM_addrx = 0x1B
FORM_ref_sup4 = 0x1C
FORM_strp_sup = 0x1D
FORM_data16 = 0x1E
FORM_line_strp = 0x1F
FORM_ref_sig8 = 0x20
FORM_implicit_const = 0x21
FORM_loclistx = 0x22
FORM_rnglistx = 0x23
FORM_ref_sup8 = 0x24
FORM_strx1 = 0x25
FORM_strx2 = 0x26
FORM_strx3 = 0x27
FORM_strx4 = 0x28
FORM_addrx1 = 0x29
FORM_addrx2 = 0x2A
FORM_addrx3 = 0x2B
FORM_addrx4 = 0x2C
FORM_GNU_addr_index = 0x1F01
FORM_GNU_str_index = 0x1F02
FORM_GNU_ref_alt = 0x1F20
FORM_GNU_strp_alt = 0x1F21

OP_addr = 0x03
OP_plus_uconst = 0x23
OP_addrx = 0xA1
OP_GNU_addr_index = 0xFB

ATE_boolean = 0x02
ATE_complex_float = 0x03
ATE_float = 0x04
ATE_signed = 0x05
ATE_signed_char = 0x06
ATE_UTF = 0x10

UT_type = 0x02
UT_skeleton = 0x04
UT_split_compile = 0x05
UT_split_type = 0x06

# Attribute sizes that do not depend on the data (32-bit DWARF; FORM_addr is filled in per unit).
FIXED_SIZES = {
    FORM_data1: 1, FORM_ref1: 1, FORM_flag: 1, FORM_strx1: 1, FORM_addrx1: 1,
    FORM_data2: 2, FORM_ref2: 2, FORM_strx2: 2, FORM_addrx2: 2,
    FORM_strx3: 3, FORM_addrx3: 3,
    FORM_data4: 4, FORM_ref4: 4, FORM_strp: 4, FORM_line_strp: 4, FORM_sec_offset: 4, FORM_ref_addr: 4,
    FORM_strx4: 4, FORM_addrx4: 4, FORM_ref_sup4: 4, FORM_strp_sup: 4, FORM_GNU_ref_alt: 4,
    FORM_GNU_strp_alt: 4,
    FORM_data8: 8, FORM_ref8: 8, FORM_ref_sig8: 8, FORM_ref_sup8: 8,
    FORM_data16: 16, FORM_flag_present: 0, FORM_implicit_const: 0,
}  # fmt: skip
# Variable-size attributes, by how to step over them.
SKIP_LEB, SKIP_CSTR, SKIP_BLOCK1, SKIP_BLOCK2, SKIP_BLOCK4, SKIP_BLOCK_LEB, SKIP_INDIRECT = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
)
VARIABLE_SIZES = {
    FORM_udata: SKIP_LEB, FORM_sdata: SKIP_LEB, FORM_ref_udata: SKIP_LEB, FORM_strx: SKIP_LEB, FORM_addrx: SKIP_LEB,
    FORM_loclistx: SKIP_LEB, FORM_rnglistx: SKIP_LEB, FORM_GNU_addr_index: SKIP_LEB, FORM_GNU_str_index: SKIP_LEB,
    FORM_string: SKIP_CSTR, FORM_block1: SKIP_BLOCK1, FORM_block2: SKIP_BLOCK2, FORM_block4: SKIP_BLOCK4,
    FORM_block: SKIP_BLOCK_LEB, FORM_exprloc: SKIP_BLOCK_LEB, FORM_indirect: SKIP_INDIRECT,
}  # fmt: skip
DATA_FORMS = {FORM_data1: 1, FORM_data2: 2, FORM_data4: 4, FORM_data8: 8}
CONST_FORMS = {*DATA_FORMS, FORM_sdata, FORM_udata, FORM_implicit_const}

u16 = struct.Struct("<H").unpack_from
u32 = struct.Struct("<I").unpack_from
u64 = struct.Struct("<Q").unpack_from
