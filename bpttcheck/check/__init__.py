"""Checking: probe cases, comparisons with the reference and finite differences, diagnosis,
and the data behind the pictures. Never imported by the worker (the guard refuses it to user
code)."""
