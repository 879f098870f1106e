"""C in the "globals" style of the RNN-in-C seed: fixed-size global arrays and
``forward()``/``backward()`` functions, described by a spec (``[c_globals]``) that names the
symbols and their roles; sizes come from the file's ``#define``s. The checker reads and writes
the arrays in place through ctypes."""
from __future__ import annotations

import ctypes
import re

import numpy as np

from bpttcheck.adapters.base import POISON, CAdapter
from bpttcheck.archmeta import Dims, meta
from bpttcheck.errors import InterfaceError
from bpttcheck.layout import Layout


class CGlobalsAdapter(CAdapter):
    name = "c-globals"
    priority = 40
    fixed_sizes = "TXHY"  # every size is a #define
    entry = "your backward()"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return False  # only on request: the spec's [c_globals] selects it

    def __init__(self, module, path, options):
        super().__init__(module, path, options)
        g = options.get("c_globals") or {}
        self.g = g
        self.arch_name = options.get("arch") or "rnn"
        self.arch = meta(self.arch_name)
        self.use_dtype(np.float64 if g.get("dtype") == "float64" else np.float32)
        self.dims = Dims(**{k: int(v) for k, v in g["sizes"].items()})
        self.fwd = self._fn(g.get("forward", "forward"))
        self.bwd = self._fn(g.get("backward", "backward"))

    def _fn(self, name):
        if not hasattr(self.lib, name):
            raise InterfaceError(f"the library has no function {name!r} (named in [c_globals])")
        f = getattr(self.lib, name)
        f.restype = None
        return f

    def _array(self, name: str, shape: tuple, ctype) -> np.ndarray:
        """A numpy view of the global array ``name`` (reads and writes go to the library)."""
        n = int(np.prod(shape))
        try:
            raw = (ctype * n).in_dll(self.lib, name)
        except ValueError:
            raise InterfaceError(f"the library has no global {name!r} (named in [c_globals]); "
                                 "is it static?") from None
        return np.ctypeslib.as_array(raw).reshape(shape)

    def prepare(self, dims) -> None:
        if (dims.X, dims.H, dims.Y, dims.T) != (self.dims.X, self.dims.H, self.dims.Y, self.dims.T):
            raise InterfaceError(f"the globals are sized {self.dims}, the case is {dims}")

    def describe(self) -> dict:
        return {"arch": self.arch_name, "dims": self.dims, "layouts": [Layout()]}

    def call(self, P, xs, ys, state, layout, want_grads):
        g, d = self.g, self.dims
        shapes = self.arch.shapes(d)
        params = {k: self._array(g["params"].get(k, k), shapes[k], self.ct) for k in self.arch.param_names}
        for k, a in params.items():
            a[...] = P[k]
        before = {k: a.copy() for k, a in params.items()}
        self._array(g.get("inputs", "inputs"), (d.T,), ctypes.c_int)[...] = xs
        self._array(g.get("targets", "targets"), (d.T,), ctypes.c_int)[...] = ys
        h = self._array(g.get("h", "h"), (d.T + 1, d.H), self.ct)
        h[0] = state[0]
        grads = {k: self._array(g["grads"].get(k, "d" + k), shapes[k], self.ct) for k in params}
        for a in grads.values():
            a[...] = POISON  # backward() must overwrite (or zero) them
        self.fwd()
        loss = float(self._array(g.get("loss", "loss"), (1,), self.ct)[0])
        self.bwd()
        changed = [k for k in params if not np.array_equal(params[k], before[k])]
        out = {k: np.array(a, dtype=np.float64) for k, a in grads.items()}
        return loss, out, (np.array(h[d.T], dtype=np.float64),), changed


def sizes_from_defines(source: str, names: dict[str, str]) -> dict[str, int]:
    """{"T": 6, ...} from `#define T_S 6` lines, for the macro names the spec gives."""
    out = {}
    for dim, macro in names.items():
        m = re.search(rf"^\s*#\s*define\s+{re.escape(macro)}\s+\(?\s*(\d+)\s*\)?", source, re.MULTILINE)
        if not m:
            raise InterfaceError(f"no `#define {macro} <number>` in the file (named in "
                                 f"[c_globals.sizes_from] for {dim})")
        out[dim] = int(m.group(1))
    return out
