"""C shared libraries in the ABI of bpttcheck.h (CONTRACT 2.3), called through ctypes inside
the worker. Which functions exist decides the architecture and the dtype. Output buffers are
pre-filled with POISON so a function that adds into gradients it never zeroed is caught."""
from __future__ import annotations

import ctypes

import numpy as np

from bpttcheck.adapters.base import POISON, CAdapter, modified, snapshot
from bpttcheck.archmeta import meta
from bpttcheck.errors import InterfaceError
from bpttcheck.layout import Layout

__all__ = ["POISON", "CAbiAdapter"]


class _Dims(ctypes.Structure):
    _fields_ = [("T", ctypes.c_int), ("X", ctypes.c_int), ("H", ctypes.c_int), ("Y", ctypes.c_int)]


def _architectures() -> tuple[str, ...]:
    """Every installed architecture's name (a plugin's C functions follow the same pattern)."""
    from bpttcheck.plugins import architecture_names
    return architecture_names()


class CAbiAdapter(CAdapter):
    name = "c"
    priority = 30
    entry = "your bptt_*_loss_and_grads function"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return module is None and path.endswith(".so")

    def __init__(self, module, path, options):
        super().__init__(module, path, options)
        found = []
        for arch in _architectures():
            for suffix, dt in (("", np.float32), ("_f64", np.float64)):
                sym = f"bptt_{arch}_loss_and_grads{suffix}"
                if hasattr(self.lib, sym):
                    found.append((arch, dt, sym))
        want = options.get("arch")
        found = [f for f in found if want in (None, f[0])]
        if not found:
            raise InterfaceError(
                "the library defines none of the functions of bpttcheck.h ("
                + ", ".join(f"bptt_{a}_loss_and_grads" for a in _architectures())
                + ", or their _f64 variants)" + (f" for arch {want}" if want else "")
                + "; check the spelling and that they are not `static`"
                + (". It does define forward and backward: if your C keeps the model in global "
                   "arrays (the globals style), describe them in a spec's [c_globals] table "
                   "and run with --spec (README, 'C (globals)')"
                   if hasattr(self.lib, "forward") and hasattr(self.lib, "backward") else ""))
        if options.get("dtype") == "float64":
            found.sort(key=lambda f: f[1] != np.float64)
        self.arch_name, dt, sym = found[0]
        self.arch = meta(self.arch_name)
        self.use_dtype(dt)
        self.fn = getattr(self.lib, sym)
        self.fn.restype = self.ct
        if len(found) > 1:
            self.notes.append({"id": "c.symbol", "title": f"Checked {sym}",
                               "evidence": f"the library defines {', '.join(f[2] for f in found)}; "
                                           f"checked {sym} (choose with --arch)"})

    def prepare(self, dims) -> None:
        self._dims = dims

    def describe(self) -> dict:
        return {"arch": self.arch_name, "dims": None, "layouts": [Layout()]}

    def call(self, P, xs, ys, state, layout, want_grads):
        d = self._dims
        names = self.arch.param_names
        shapes = self.arch.shapes(d)
        params = [np.ascontiguousarray(P[k], dtype=self.dt) for k in names]
        before = [p.copy() for p in params]
        grads = [self.poisoned(shapes[k]) for k in names]
        pp = (ctypes.POINTER(self.ct) * len(params))(*[self.pointer(p) for p in params])
        gp = (ctypes.POINTER(self.ct) * len(grads))(*[self.pointer(g) for g in grads])
        xs_a = np.ascontiguousarray(xs, dtype=np.int32)
        ys_a = np.ascontiguousarray(ys, dtype=np.int32)
        st = [np.ascontiguousarray(s, dtype=self.dt) for s in state]
        last = [self.poisoned(d.H) for _ in state]
        ip = ctypes.POINTER(ctypes.c_int)
        dims = _Dims(d.T, d.X, d.H, d.Y)
        args = [ctypes.byref(dims), pp, xs_a.ctypes.data_as(ip), ys_a.ctypes.data_as(ip),
                *[self.pointer(s) for s in st], gp, *[self.pointer(s) for s in last]]
        # the initial state and the sequences are the caller's too (const in bpttcheck.h)
        handed = {**dict(zip(("h0", "c0"), st, strict=False)), "inputs": xs_a, "targets": ys_a}
        kept = snapshot(handed)
        loss = float(self.fn(*args))
        changed = modified(dict(zip(names, before, strict=False)),
                           dict(zip(names, params, strict=False)))
        changed.update(modified(kept, handed))
        out = {k: np.array(g, dtype=np.float64) for k, g in zip(names, grads, strict=False)}
        return loss, out, tuple(np.array(s, dtype=np.float64) for s in last), changed
