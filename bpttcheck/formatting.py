"""Small rules every report shares, written once: how a non-finite number is spelled and how
student names are ordered."""
from __future__ import annotations

import math
import re


def nonfinite(x: float) -> str | None:
    """"nan", "inf" or "-inf" for a non-finite number (JSON has none, and a report should spell
    them the same everywhere); None for a finite one."""
    if math.isfinite(x):
        return None
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def natural_key(name: str) -> tuple:
    """Sort key for names as people read them: student2 before student10, case and the
    spelling of letters ignored (casefold: "Straße" sorts as "strasse"), the exact name last
    so the order is total."""
    parts = [(0, int(p), "") if p.isdigit() else (1, 0, p)
             for p in re.split(r"(\d+)", name.casefold()) if p]
    return (parts, name)
