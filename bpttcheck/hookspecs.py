"""The plugin interface, in one place.

bpttcheck finds plugins through two entry-point groups; the built-in adapters and
architectures are registered there exactly as a third party's would be (see pyproject.toml):

``bpttcheck.adapters``
    A class that turns one style of user code into the common interface. It runs inside the
    worker process, next to the user's code. Required members::

        name: str                      # shown in reports, accepted by --style
        priority: int                  # higher wins when several detect() the same module
        @classmethod
        def detect(cls, module, path) -> bool
        def __init__(self, module, path, options: dict)   # options: spec / BPTTCHECK dict
        def prepare(self, dims: Dims) -> None             # sizes of the case about to run
        def describe(self) -> dict
            # {"arch": "rnn"|"lstm"|"gru"|..., "dims": Dims | None (fixed sizes, e.g. globals),
            #  "layouts": [Layout, ...] candidates, most likely first}
        def call(self, P, xs, ys, state, layout, want_grads)
            # -> (loss: float, grads: {canonical name: float64 array} | None,
            #     last_state: tuple of (H,) arrays or None, modified: [names changed in place])
        notes: list[dict]              # findings to report ({"id", "title", "evidence"})
        grad_dtype: str                # "float64" or "float32": what the user computes in

    Adapters for non-Python code (C shared libraries) follow the same interface with
    ``module`` = None and ``path`` the file; ``detect`` then looks at the path.

``bpttcheck.architectures``
    An :class:`bpttcheck.oracle.common.Arch`: parameter names in canonical order (also the
    order of the C ABI's pointer arrays), state names, shapes from Dims, and the float64
    reference ``run(P, xs, ys, state, bugs=frozenset(), reduction="sum") -> Trace``.
"""
