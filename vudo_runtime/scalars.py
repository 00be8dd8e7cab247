"""The scalar kinds of gene fields and how each is stored in linear memory.

Shared by layout.py (sizes and alignments) and codec.py (struct formats): layout.py
imports codec.py, so codec.py must not import layout.py for this table.
"""

from __future__ import annotations

__all__ = ["SCALARS"]

SCALARS: dict[str, tuple[str, int]] = {
    "i32": ("i", 4),
    "u32": ("I", 4),
    "i64": ("q", 8),
    "u64": ("Q", 8),
    "f32": ("f", 4),
    "f64": ("d", 8),
    "bool": ("i", 4),
    "char": ("I", 4),
    "string": ("I", 4),
    "ptr": ("I", 4),
}
"""Canonical scalar kind -> (``struct`` format char, size = alignment in bytes)."""
