import numpy as np
import pytest

from bpttcheck.check.cases import make_case
from bpttcheck.errors import InterfaceError
from bpttcheck.layout import Layout, gate_order
from bpttcheck.oracle import lstm, rnn
from bpttcheck.oracle.common import Dims


@pytest.mark.parametrize("lay", [
    Layout(), Layout(column=True), Layout(concat="xh"), Layout(transposed=True),
    Layout(stacked="ifgo"), Layout(stacked="ogif", concat="xh", column=True),
    Layout(names={"Wf": "W_f", "Wy": "W_v", "by": "b_v"}),
])
def test_lstm_layout_round_trip(lay):
    case = make_case(lstm.ARCH, Dims(4, 3, 5, 2), 0)
    user = lay.params_to_user(lstm.ARCH, case.params, 5)
    back = lay.grads_from_user(lstm.ARCH, user, lstm.ARCH.shapes(case.dims), 5)
    for k, v in case.params.items():
        np.testing.assert_array_equal(back[k], v)


def test_xh_layout_puts_input_columns_first():
    case = make_case(lstm.ARCH, Dims(4, 3, 5, 2), 0)
    user = Layout(concat="xh").params_to_user(lstm.ARCH, case.params, 5)
    np.testing.assert_array_equal(user["Wf"][:, :3], case.params["Wf"][:, 5:])


def test_wrong_shape_names_the_gradient_and_the_expected_shape():
    case = make_case(rnn.ARCH, Dims(4, 3, 5, 2), 0)
    lay = Layout(names={"Whh": "W_hh"})
    user = lay.params_to_user(rnn.ARCH, case.params, 5)
    user["W_hh"] = np.zeros((5, 4))
    with pytest.raises(InterfaceError, match=r"'W_hh' has shape \(5, 4\), expected \(5, 5\)"):
        lay.grads_from_user(rnn.ARCH, user, rnn.ARCH.shapes(case.dims), 5)


def test_gate_order_accepts_c_for_candidate_and_rejects_nonsense():
    assert gate_order("lstm", "ifco") == "ifgo"
    with pytest.raises(InterfaceError):
        gate_order("lstm", "iffo")
