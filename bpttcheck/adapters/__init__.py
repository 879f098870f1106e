"""Adapters turn user code into one interface (see bpttcheck/hookspecs.py). They run inside
the worker process, next to the user's code, and hand back plain float64 arrays only."""
