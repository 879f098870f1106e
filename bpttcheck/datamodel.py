"""The base of the result's data classes (result.py): standard dataclasses that convert their
fields on construction the way pydantic's models did (numpy numbers to Python numbers, an int
in a float field to a float, a tuple to a list, a dict to the nested class) and keep the few
pydantic methods the reports and the grader call (model_dump, model_copy, model_validate,
model_validate_json, model_dump_json).

Why not pydantic itself: importing it and building the report's thirteen models is about a
quarter of the checker's CPU time in a one-shot `bpttcheck run` of a passing Karpathy-size
model (benchmarks/RESULTS.md, (k, startup)), for data that our own code builds. What is kept
of pydantic's behaviour is what the JSON report depends on; tests/test_datamodel.py holds the
conversions equal to pydantic's, which stays the validator of specs (spec.py)."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

Convert = Callable[[Any], Any]
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}
_WHOLE = re.compile(r"[+-]?[0-9]+(\.0*)?")  # "3", "-3", "3.0": an int field's strings
# per class, made on its first construction: (name, converter) of each public field
_CONVERSIONS: dict[type, list[tuple[str, Convert]]] = {}


class ValidationError(ValueError):
    """A value a field cannot hold (a ValueError, as pydantic's is: a reader of a report.json
    that is not one catches ValueError)."""


def _float(v: Any) -> float:
    if isinstance(v, float):
        return float(v)  # a numpy float64 (a float subclass) becomes a plain float
    if isinstance(v, str):
        try:
            return float(v)  # "nan", "inf", "-inf": how report_json writes them
        except ValueError:
            raise ValidationError(f"{v!r} is not a number") from None
    if isinstance(v, (int, bool)) or (hasattr(v, "__float__") and hasattr(v, "dtype")):
        return float(v)  # ints, bools and numpy scalars
    raise ValidationError(f"{v!r} is not a number")


def _int(v: Any) -> int:
    if isinstance(v, int):
        return int(v)  # bools too, as pydantic's lax mode takes them
    if getattr(getattr(v, "dtype", None), "kind", "") == "b":  # a numpy bool
        return int(bool(v))
    if isinstance(v, float) or getattr(getattr(v, "dtype", None), "kind", "") == "f":
        if math.isfinite(v) and float(v).is_integer() and abs(v) < 2.0 ** 63:
            return int(v)  # pydantic reads a float into an int field within int64 only
        raise ValidationError(f"{v!r} is not a whole number")
    if hasattr(v, "__index__"):
        return v.__index__()  # numpy integers
    if isinstance(v, str) and _WHOLE.fullmatch(v.strip()):
        return int(v.strip().split(".")[0])
    raise ValidationError(f"{v!r} is not a whole number")


def _str(v: Any) -> str:
    if isinstance(v, str):
        return str.__str__(v)  # an ErrorKind (StrEnum) or numpy str: the plain string
    raise ValidationError(f"{v!r} is not a string")


def _bool(v: Any) -> bool:
    if isinstance(v, bool) or getattr(getattr(v, "dtype", None), "kind", "") == "b":
        return bool(v)
    if (isinstance(v, (int, float)) or hasattr(v, "dtype")) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    raise ValidationError(f"{v!r} is not true or false")


def _items(v: Any) -> Iterable:
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
        raise ValidationError(f"{type(v).__name__} is not a list")
    return v


def _converter(tp: Any) -> Convert:
    """The function that turns a value into one of type ``tp`` (or raises ValidationError)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return lambda v: v
    if origin is Literal:
        def literal(v):
            if v in args:
                return v
            raise ValidationError(f"{v!r} is none of {', '.join(map(repr, args))}")
        return literal
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"only X | None unions are supported, not {tp}")
        inner = _converter(rest[0])
        return lambda v: None if v is None else inner(v)
    if origin is list:
        item = _converter(args[0])
        return lambda v: [item(x) for x in _items(v)]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            each = _converter(args[0])
            return lambda v: tuple(each(x) for x in _items(v))
        parts = [_converter(a) for a in args]

        def fixed(v):
            xs = list(_items(v))
            if len(xs) != len(parts):
                raise ValidationError(f"{len(xs)} items, not {len(parts)}")
            return tuple(p(x) for p, x in zip(parts, xs, strict=True))
        return fixed
    if origin is dict:
        key, val = _converter(args[0]), _converter(args[1])

        def mapping(v):
            if not isinstance(v, Mapping):
                raise ValidationError(f"{type(v).__name__} is not a mapping")
            return {key(k): val(x) for k, x in v.items()}
        return mapping
    if isinstance(tp, type) and issubclass(tp, Model):
        return lambda v: v if isinstance(v, tp) else tp.model_validate(v)
    simple = {float: _float, int: _int, str: _str, bool: _bool}.get(tp)
    if simple is None:
        raise TypeError(f"no conversion for a field of type {tp}")
    return simple


def _fields(obj: Any) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(obj)  # a Model subclass is a dataclass (the type checker can't tell)


def _dump(v: Any) -> Any:
    if isinstance(v, Model):
        return v.model_dump()
    if isinstance(v, list):
        return [_dump(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_dump(x) for x in v)
    if isinstance(v, dict):
        return {k: _dump(x) for k, x in v.items()}
    return v


def _finite(v: Any) -> Any:
    """For model_dump_json: NaN and infinities as null (pydantic's default)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


class Model:
    """A dataclass (``@dataclass(kw_only=True)``) whose public fields are converted to their
    declared types on construction, as pydantic validates; assignment later is not converted
    (nor was it in pydantic). Fields whose names start with ``_`` are private: declared
    ``field(init=False)``, never converted or dumped, copied with the object."""

    @classmethod
    def _conversions(cls) -> list[tuple[str, Convert]]:
        got = _CONVERSIONS.get(cls)
        if got is None:
            hints = get_type_hints(cls)
            got = [(f.name, _converter(hints[f.name])) for f in _fields(cls)
                   if not f.name.startswith("_")]
            _CONVERSIONS[cls] = got
        return got

    def __post_init__(self) -> None:
        d = self.__dict__
        for name, convert in self._conversions():
            try:
                d[name] = convert(d[name])
            except ValidationError as e:
                raise ValidationError(f"{type(self).__name__}.{name}: {e}") from None

    @classmethod
    def model_validate(cls, data: Any):
        """An instance from a mapping of its fields (other keys ignored, as pydantic does)."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValidationError(f"{cls.__name__}: {type(data).__name__} is not a mapping")
        names = {f.name for f in _fields(cls) if f.init}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as e:  # a required field missing
            raise ValidationError(f"{cls.__name__}: {e}") from None

    @classmethod
    def model_validate_json(cls, text: str | bytes):
        return cls.model_validate(json.loads(text))

    def model_dump(self, mode: str = "python") -> dict:
        """The public fields as plain dicts and lists, in declaration order."""
        if mode != "python":
            raise ValueError(f"model_dump: mode {mode!r} is not supported")
        d = self.__dict__
        return {f.name: _dump(d[f.name]) for f in _fields(self)
                if not f.name.startswith("_")}

    def model_dump_json(self) -> str:
        return json.dumps(_finite(self.model_dump()), separators=(",", ":"), ensure_ascii=False)

    def model_copy(self, update: Mapping[str, Any] | None = None, deep: bool = False):
        """A copy (deep: of everything in it too) with the fields in ``update`` replaced as
        given, not converted (pydantic's model_copy)."""
        out = copy.deepcopy(self) if deep else copy.copy(self)
        for k, v in (update or {}).items():
            setattr(out, k, v)
        return out
