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


# C0 controls but tab and newline, DEL, C1 controls (ESC starts the ANSI sequences that move the
# cursor and repaint a terminal; CR overwrites a line), and the bidirectional overrides that
# make text read in another order than it is stored ("Trojan source")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# what XML 1.0 cannot hold at all, on top of the controls: lone surrogates, U+FFFE, U+FFFF
_NOT_XML = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
                      "\ud800-\udfff\ufffe\uffff]")
FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet cell a formula


def _shown(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str) -> str:
    """``text`` with every control character but tab and newline shown as ``\\xNN`` (bidi
    overrides as ``\\uNNNN``): a student's string (a file name, an exception message, printed
    output) cannot move the cursor, recolour or clear a terminal, or reorder what it shows."""
    return _CONTROL.sub(_shown, text)


def xml_safe(text: str) -> str:
    """``text`` as printable() shows it, also without what XML 1.0 cannot hold (lone
    surrogates, U+FFFE, U+FFFF): any message makes a valid XML document."""
    return _NOT_XML.sub(_shown, text)


def csv_cell(value: object) -> object:
    """A gradebook cell: a string with its controls shown (newlines too: one line a row) and,
    when it starts like a formula (``=``, ``+``, ``-``, ``@``, tab, CR), a ``'`` before it, the
    OWASP rule against CSV injection; also after leading spaces, which some spreadsheet
    programs skip before reading a formula. Numbers are left as they are."""
    if not isinstance(value, str):
        return value
    text = re.sub("[\n\t]", _shown, printable(value))
    return "'" + text if text.lstrip(" ").startswith(FORMULA) else text
