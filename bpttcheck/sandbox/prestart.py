"""Starting the worker early (see entry.py): only the standard library and the sandbox modules, which
imports nothing heavy, are used here."""
from __future__ import annotations

import os


def prestart_for(path: str, spec, sanitize: bool, timeout, memory_mb) -> None:
    """Start the worker before this process imports numpy, pydantic and the engine: the two
    start-ups overlap (about a third of a passing check's wall time). The engine takes this
    worker only if the limits it settles on are equal; anything unusual here just skips it."""
    if sanitize or not path.endswith((".py", ".so", ".ipynb")) or not os.path.isfile(path):
        return
    if (timeout is not None and not timeout > 0) or (memory_mb is not None and memory_mb < 64):
        return
    from bpttcheck.sandbox import osbox
    osbox.start_probe()  # bwrap answers while the submission is staged
    from bpttcheck.sandbox.limits import limits_for
    from bpttcheck.sandbox.session import prestart
    raw = None
    if spec:
        try:
            with open(spec, "rb") as f:
                text = f.read()
            # only a [limits] table changes the worker's limits, and importing tomllib (its
            # regular expressions) is a tenth of the time before the worker starts; a guess
            # wrong either way costs only the early worker (the engine compares the limits)
            if b"limits" in text:
                import tomllib
                raw = tomllib.loads(text.decode("utf-8")).get("limits", {})
            limits = limits_for(raw, timeout, memory_mb)
        except Exception:  # noqa: BLE001 - the real spec loader reports what is wrong
            return
    else:
        limits = limits_for(None, timeout, memory_mb)
    limits.run_from = os.getcwd()  # as `run` sets it (cli.py)
    prestart(path, limits, load_early=True)
