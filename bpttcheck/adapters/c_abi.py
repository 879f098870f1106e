"""C shared libraries in the ABI of bpttcheck.h (CONTRACT 2.3), called through ctypes inside
the worker. Which functions exist decides the architecture and the dtype. Output buffers are
pre-filled with POISON so a function that adds into gradients it never zeroed is caught."""
from __future__ import annotations

import ctypes

import numpy as np

from bpttcheck.errors import InterfaceError
from bpttcheck.layout import Layout
from bpttcheck.archmeta import meta

POISON = -31337.0  # exact in float32; far from any gradient of a probe case


class _Dims(ctypes.Structure):
    _fields_ = [("T", ctypes.c_int), ("X", ctypes.c_int), ("H", ctypes.c_int), ("Y", ctypes.c_int)]


class CAbiAdapter:
    name = "c"
    priority = 30
    kind = "sequence"
    language = "c"
    fixed_sizes = "none"
    poisoned_buffers = True
    entry = "your bptt_*_loss_and_grads function"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return module is None and path.endswith(".so")

    def __init__(self, module, path, options):
        self.path, self.options, self.notes = path, options, []
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as e:
            raise InterfaceError(f"cannot load {path}: {e}") from None
        found = []
        for arch in ("rnn", "lstm", "gru"):
            for suffix, dt in (("", np.float32), ("_f64", np.float64)):
                sym = f"bptt_{arch}_loss_and_grads{suffix}"
                if hasattr(self.lib, sym):
                    found.append((arch, dt, sym))
        want = options.get("arch")
        found = [f for f in found if want in (None, f[0])]
        if not found:
            raise InterfaceError(
                "the library defines none of the functions of bpttcheck.h "
                "(bptt_rnn_loss_and_grads, bptt_lstm_loss_and_grads, bptt_gru_loss_and_grads, "
                "or their _f64 variants)" + (f" for arch {want}" if want else "")
                + "; check the spelling and that they are not `static`"
                + (". It does define forward and backward: if your C keeps the model in global "
                   "arrays (the globals style), describe them in a spec's [c_globals] table "
                   "and run with --spec (README, 'C (globals)')"
                   if hasattr(self.lib, "forward") and hasattr(self.lib, "backward") else ""))
        if options.get("dtype") == "float64":
            found.sort(key=lambda f: f[1] != np.float64)
        self.arch_name, self.dt, sym = found[0]
        self.arch = meta(self.arch_name)
        self.grad_dtype = "float32" if self.dt == np.float32 else "float64"
        ct = ctypes.c_float if self.dt == np.float32 else ctypes.c_double
        self.ct = ct
        self.fn = getattr(self.lib, sym)
        self.fn.restype = ct
        if len(found) > 1:
            self.notes.append({"id": "c.symbol", "title": f"Checked {sym}",
                               "evidence": f"the library defines {', '.join(f[2] for f in found)}; "
                                           f"checked {sym} (choose with --arch)"})

    def prepare(self, dims) -> None:
        self._dims = dims

    def describe(self) -> dict:
        return {"arch": self.arch_name, "dims": None, "layouts": [Layout()]}

    def _ptr(self, a: np.ndarray):
        return a.ctypes.data_as(ctypes.POINTER(self.ct))

    def call(self, P, xs, ys, state, layout, want_grads):
        d = self._dims
        names = self.arch.param_names
        shapes = self.arch.shapes(d)
        params = [np.ascontiguousarray(P[k], dtype=self.dt) for k in names]
        before = [p.copy() for p in params]
        grads = [np.full(shapes[k], POISON, dtype=self.dt) for k in names]
        pp = (ctypes.POINTER(self.ct) * len(params))(*[self._ptr(p) for p in params])
        gp = (ctypes.POINTER(self.ct) * len(grads))(*[self._ptr(g) for g in grads])
        xs_a = np.ascontiguousarray(xs, dtype=np.int32)
        ys_a = np.ascontiguousarray(ys, dtype=np.int32)
        st = [np.ascontiguousarray(s, dtype=self.dt) for s in state]
        last = [np.full(d.H, POISON, dtype=self.dt) for _ in state]
        ip = ctypes.POINTER(ctypes.c_int)
        dims = _Dims(d.T, d.X, d.H, d.Y)
        args = [ctypes.byref(dims), pp, xs_a.ctypes.data_as(ip), ys_a.ctypes.data_as(ip),
                *[self._ptr(s) for s in st], gp, *[self._ptr(s) for s in last]]
        loss = float(self.fn(*args))
        changed = [k for k, a, b in zip(names, params, before) if not np.array_equal(a, b)]
        out = {k: np.array(g, dtype=np.float64) for k, g in zip(names, grads)}
        return loss, out, tuple(np.array(s, dtype=np.float64) for s in last), changed
