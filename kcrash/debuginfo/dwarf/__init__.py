"""DWARF debug info: a fast index of top-level names over .debug_info (cached on disk by build-id) and a
lazy DIE reader that turns one DIE at a time into kcrash Types.

Nothing here walks all DIEs at start-up. The index pass visits only the direct children of each unit,
jumping over subtrees with DW_AT_sibling and skipping attributes with sizes precomputed per abbreviation;
everything else is read on demand, one DIE (and its children) at a time, straight from an mmap.

constants: DWARF's numbers; abbrev: abbreviation tables; reader: units, DIEs, attribute values;
typebuilder: DIEs to Types; index: the name index and DwarfIndex.
"""

from kcrash.debuginfo.dwarf.index import INDEX_VERSION, DwarfIndex
from kcrash.debuginfo.dwarf.reader import Die, Unit

__all__ = ["DwarfIndex", "Die", "Unit", "INDEX_VERSION"]
