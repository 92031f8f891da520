"""Synthetic crash dumps (ELF, kdump-compressed, flattened) written by tests."""
