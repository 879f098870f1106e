"""The JSON report (CONTRACT §5)."""
from __future__ import annotations

import json

from bpttcheck.formatting import nonfinite
from bpttcheck.result import Report


def _clean(x):
    """JSON has no NaN or inf: write them as strings a reader can still recognise."""
    if isinstance(x, float) and nonfinite(x):
        return nonfinite(x)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def render(r: Report) -> str:
    return json.dumps(_clean(r.model_dump(mode="python")), indent=2) + "\n"
