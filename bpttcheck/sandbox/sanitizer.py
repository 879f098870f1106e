"""Reading AddressSanitizer and UBSan reports: what went wrong, and where in the user's C."""
from __future__ import annotations

import os
import re

from bpttcheck.errors import source_line


def sanitizer_report(stderr: str) -> tuple[str, str | None] | None:
    """(what, user's file:line: source) from an AddressSanitizer or UBSan report."""
    m = re.search(r"ERROR: AddressSanitizer: ([^\n]*)", stderr)
    if m:
        what = re.sub(r" on address 0x[0-9a-f]+.*", "", m.group(1))
        acc = re.search(r"\n(READ|WRITE) of size (\d+)", stderr)
        if acc:
            what += f" ({acc.group(1).lower()} of {acc.group(2)} bytes)"
        frame = re.search(r"#\d+ 0x[0-9a-f]+ in (\w+) (\S+\.c):(\d+)", stderr)
    else:
        m = re.search(r"(\S+\.c):(\d+):\d+: runtime error: ([^\n]*)", stderr)
        if not m:
            return None
        what, frame = "undefined behaviour: " + m.group(3), None
        return what, source_line(m.group(1), int(m.group(2)))
    return what, source_line(frame.group(2), int(frame.group(3))) if frame else None

def sanitizer_excerpt(stderr: str, user_file: str) -> str:
    """The lines of a sanitizer report a user needs: what, where in their C, where allocated."""
    keep = []
    for ln in stderr.splitlines():
        frame = re.search(r"#\d+ 0x[0-9a-f]+ in (\w+) (\S+\.c):(\d+)", ln)
        if frame and os.path.basename(frame.group(2)) == user_file:
            keep.append(f"    in {frame.group(1)} {os.path.basename(frame.group(2))}:{frame.group(3)}")
        elif re.search(r"ERROR: AddressSanitizer|^(READ|WRITE) of size|is located|allocated by|"
                       r"runtime error:|^SUMMARY", ln):
            keep.append(re.sub(r"(/[^\s:]+/)([^/\s]+\.c)", r"\2", ln.strip()))
    return "\n".join(keep)
