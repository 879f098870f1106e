"""Arrays a layer function changed in place (the check ``behaviour.<unit>.inputs-unchanged``
and the diagnoses ``grad.inputs-modified`` / ``grad.params-modified`` of the layer style).

A backward function that writes into the upstream gradient it was given (``dh[:, t, :] +=
dprev_h``), into an entry of its cache, or a forward that writes into its input, can return
the right gradients and still break its caller: the notebook's gradient check reuses ``dh``
after the call, a second backward with the same cache sees other values. The worker reports
what changed (adapters/layers.py ``run_unit``: function, argument, role, largest change) and,
asked again, the line that wrote into it (sandbox/writes.py); here that becomes a message, a
diagnosis and a one-line change the repair step can verify."""
from __future__ import annotations

import ast
import os
from dataclasses import dataclass

from bpttcheck.check.rewrite import split_comment
from bpttcheck.result import Location

ROLES = {  # role -> how the array reached the function
    "upstream": "the upstream gradient it was given",
    "input": "an input it was given",
    "parameter": "a parameter it was given",
    "cache": "an entry of the cache the forward made",
}


@dataclass
class Modified:
    function: str  # the user's function that changed it
    argument: str  # the user's name of the array (dh, cache[2][1], parameters['Wax'])
    role: str  # a key of ROLES
    change: float | None  # the largest change of an entry (None: a new shape, NaN)
    # where it was first written (sandbox/writes.py), when that could be found
    file: str | None = None
    line: int | None = None
    source: str = ""
    name: str | None = None  # the local name it was written through
    step: int | None = None
    through_cache: bool = False  # a forward's input that the backward reached in its cache

    @property
    def key(self) -> str:
        return f"{self.role}:{self.argument}"

    def where(self) -> str:
        if self.line is None:
            return ""
        at = f" at {os.path.basename(self.file or '')} line {self.line}"
        at += f" (first at t = {self.step})" if self.step is not None else ""
        return at + (f", `{self.source}`" if self.source else "")

    def sentence(self) -> str:
        """What happened, with the numbers: for the check's message and the evidence."""
        size = (f"its entries changed by up to {self.change:.3g}" if self.change is not None
                else "its shape or NaNs changed")
        how = ROLES.get(self.role, "an array it was given")
        if self.through_cache:
            how = how.replace(" it was given", " its forward was given, which the cache holds")
        return f"{self.function} wrote into {self.argument}, {how}, in place{self.where()}; {size}"

    def fix(self) -> str:
        """One concrete change: the located ``x op= v`` as a new array, else a copy first."""
        code = split_comment(self.source)[0].strip()
        aug = _augmented(code) if self.line is not None else None
        later = (" (a parameter update belongs in the training loop, after the backward pass)"
                 if self.role == "parameter" else "")
        if aug is not None:
            target, op, value = aug
            return (f"write into a new array: `{target} = {target} {op} ({value})` in place of "
                    f"`{code}`" + later)
        if self.role == "cache" or self.through_cache:
            name = self.name or self.argument
            return (f"write into a new array, not the one the cache holds: `{name} = "
                    f"{name}.copy()` before the line that changes it" + later)
        return (f"copy it first: `{self.argument} = {self.argument}.copy()` as the first line "
                f"of {self.function}, or write into a new array" + later)

    def rewrite(self) -> tuple[str, str] | None:
        """The located line rewritten so it no longer writes into the array, for the repair
        step to verify: ``x op= v`` -> ``x = x op (v)``, else ``name = name.copy(); line``."""
        code = split_comment(self.source)[0].strip()
        if self.line is None or not self.name or not _simple_statements(code):
            return None
        aug = _augmented(code)
        if aug is not None and aug[0] == self.name:
            target, op, value = aug
            return (f"{target} = {target} {op} ({value})",
                    f"a new array for {target}, not a write into {self.argument}")
        if self.role == "cache" and self.name == self.argument:
            return None
        return (f"{self.name} = {self.name}.copy(); {code}",
                f"copy {self.name} before writing into it")

    def location(self) -> Location | None:
        if self.line is None:
            return None
        loc = Location(file=self.file, line=self.line, step=self.step, name=self.name,
                       source=self.source)
        fix = self.rewrite()
        if fix is not None:
            loc._rewrites = [fix]
        return loc


def parse(raw, forward: str, backward: str) -> list[Modified]:
    """The worker's ``modified`` field: a list of {"function", "argument", "role",
    "change"} (built-in unit adapters), or a plugin's list of names / {name: change}."""
    if isinstance(raw, dict):
        raw = [{"argument": k, "change": v} for k, v in raw.items()]
    if not isinstance(raw, list):
        return []
    out = []
    for m in raw:
        if isinstance(m, str):
            m = {"argument": m}
        if not isinstance(m, dict) or not isinstance(m.get("argument"), str):
            continue
        change = m.get("change")
        role = m.get("role")
        role = role if isinstance(role, str) and role in ROLES else "input"
        fn = m.get("function")
        out.append(Modified(through_cache=m.get("through") == "cache",
            function=fn if isinstance(fn, str) else f"{forward}/{backward}",
            argument=m["argument"], role=role,
            change=float(change) if isinstance(change, (int, float)) else None))
    return out


def add_writes(mods: list[Modified], writes) -> None:
    """Put the lines the worker found (session.layer_writes) on the modifications."""
    if not isinstance(writes, list):
        return
    by_key = {m.key: m for m in mods}
    for w in writes:
        if not (isinstance(w, list) and len(w) == 7 and w[0] in by_key
                and isinstance(w[1], str) and isinstance(w[2], int)):
            continue
        m = by_key[w[0]]
        m.file, m.line = w[1], w[2]
        m.source = w[3] if isinstance(w[3], str) else ""
        m.name = w[5] if isinstance(w[5], str) else None
        m.step = w[6] if isinstance(w[6], int) else None


def message(mods: list[Modified]) -> str:
    if not mods:
        return "the functions left their inputs as they were"
    return "; ".join(m.sentence() for m in mods) + f". Fix: {mods[0].fix()}"


def _simple_statements(code: str) -> bool:
    """Whether a line is complete simple statements (a loop's header, a statement going on
    to the next line, cannot take a copy in front)."""
    try:
        return len(ast.parse(code).body) >= 1
    except SyntaxError:
        return False


def _augmented(source: str) -> tuple[str, str, str] | None:
    """(target, operator, value) of ``target op= value`` with a plain name as the target."""
    try:
        tree = ast.parse(source.strip())
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.AugAssign):
        return None
    node = tree.body[0]
    if not isinstance(node.target, ast.Name):
        return None
    ops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**",
           ast.MatMult: "@", ast.FloorDiv: "//"}
    op = ops.get(type(node.op))
    if op is None:
        return None
    return node.target.id, op, ast.unparse(node.value)
