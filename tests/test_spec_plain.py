"""A spec of only common keys with plain values is read without pydantic (spec.read_plain) to the
same values pydantic's models give it; anything else, an error included, is pydantic's."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpttcheck import spec, spec_models
from bpttcheck.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent


def test_the_defaults_are_the_models_defaults():
    assert spec_models.Spec().model_dump() == spec.DEFAULTS
    assert spec_models.Sizes().model_dump() == spec.SIZES_DEFAULTS
    for table, keys in spec.PLAIN.items():  # every plain key is a key of the model
        model = spec_models.Spec.model_fields[table].annotation
        names = spec_models.Sizes.model_fields if table == "sizes" else model.model_fields
        assert set(keys) <= set(names), table


toml_values = st.one_of(
    st.integers(-5, 5), st.integers(60, 70), st.integers(990, 1010), st.integers(99990, 100010),
    st.integers(3590, 3610), st.sampled_from([-2**63, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 1.0, 1e-9, 3600.0, 64.0]),
    st.booleans(),
    st.sampled_from(["", "rnn", "lstm", "gru", "mlp", "karpathy", "any", "standard", "visible",
                     "hidden", "after_due_date", "x.py"]),
    st.lists(st.integers(0, 3), max_size=2))
KEYS = sorted({k for t in spec.PLAIN.values() for k in t} | {"concat", "bogus"})
tables = st.dictionaries(st.sampled_from([*spec.PLAIN, "layout", "points", "wat"]),
                         st.one_of(st.dictionaries(st.sampled_from(KEYS), toml_values,
                                                   max_size=4), toml_values), max_size=4)


@settings(max_examples=400, deadline=None)
@given(data=tables)
def test_a_plain_spec_reads_as_pydantic_reads_it(data):
    plain = spec.read_plain(data)
    try:
        want = spec_models.validate(data, "s.toml")
    except SpecError:
        assert plain is None, data  # pydantic refuses it: never read here
        return
    if plain is not None:
        assert plain.model_dump() == want.model_dump(), data
        assert plain.adapter_options() == want.adapter_options()


def _spec_files():
    return sorted(p for d in ("benchmarks", "tests", "reference", "reports", "docs")
                  for p in (ROOT / d).rglob("*.toml"))


@pytest.mark.parametrize("path", _spec_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_spec_in_the_project_reads_the_same_either_way(path):
    import tomllib
    data = tomllib.loads(path.read_text())
    try:
        want = spec_models.validate(data, str(path))
    except SpecError:
        assert spec.read_plain(data) is None
        return
    plain = spec.read_plain(data)
    if plain is not None:
        assert plain.model_dump() == want.model_dump()


def test_the_karpathy_benchmark_spec_is_read_without_pydantic_and_a_bad_one_with_it(tmp_path):
    code = ("import sys; from bpttcheck.spec import load_spec; s = load_spec(sys.argv[1]); "
            "print(s.sizes.T, s.limits.memory_mb, 'pydantic' in sys.modules)")
    good = ROOT / "benchmarks" / "subjects" / "karpathy" / "T25.toml"
    out = subprocess.run([sys.executable, "-c", code, str(good)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["25", "4096", "False"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[sizes]\nT = 0\n")  # out of range: pydantic's message names the field
    with pytest.raises(SpecError, match=r"sizes\.T: Input should be greater than or equal to 1"):
        spec.load_spec(str(bad))
    big = tmp_path / "big.toml"  # plain, and still too large for the memory limit
    big.write_text("[sizes]\nT = 1000\nH = 100000\n[limits]\nmemory_mb = 64\n")
    with pytest.raises(SpecError, match="more than the memory limit of 64 MiB"):
        spec.load_spec(str(big))
