"""The float64 reference models (CONTRACT §1), with the known bugs as switchable mutants.

Each architecture module exposes ``run(P, xs, ys, state, bugs=frozenset(), reduction="sum")``
returning a :class:`Trace`, and an ``ARCH`` descriptor. Nothing here knows about user code,
the CLI, pydantic or reports.
"""
