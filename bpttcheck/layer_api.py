"""The batched layer API of the course assignment file `rnn_layers.py` (CONTRACT §2.2b):
which functions pair up into a checkable unit, what they take and what they return.
Plain data, shared by the adapter (in the worker) and the engine."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    name: str  # "rnn_step", "rnn", "lstm_step", "lstm"
    family: str  # "rnn", "lstm" or "gru": each family gets its own verdict
    forward: str
    backward: str
    inputs: tuple[str, ...]  # forward's arguments, in order
    outputs: tuple[str, ...]  # forward's outputs before the cache
    grads: tuple[str, ...]  # backward's results, grads[i] is the gradient of inputs[i]

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple("d" + o for o in self.outputs)


LAYER_API: tuple[Unit, ...] = (  # the course API's units (rnn_layers.py)
    Unit("rnn_step", "rnn", "rnn_step_forward", "rnn_step_backward",
         ("x", "prev_h", "Wx", "Wh", "b"), ("next_h",), ("dx", "dprev_h", "dWx", "dWh", "db")),
    Unit("rnn", "rnn", "rnn_forward", "rnn_backward",
         ("x", "h0", "Wx", "Wh", "b"), ("h",), ("dx", "dh0", "dWx", "dWh", "db")),
    Unit("lstm_step", "lstm", "lstm_step_forward", "lstm_step_backward",
         ("x", "prev_h", "prev_c", "Wx", "Wh", "b"), ("next_h", "next_c"),
         ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db")),
    Unit("lstm", "lstm", "lstm_forward", "lstm_backward",
         ("x", "h0", "Wx", "Wh", "b"), ("h",), ("dx", "dh0", "dWx", "dWh", "db")),
)
# GRU units (no bias, blocks z, r, n of the README's convention h' = (1 - z) n + z h) exist for
# unit styles that have a GRU (dlfs2); the layer API itself has none, so its adapter skips them
GRU_UNITS = (
    Unit("gru_step", "gru", "gru_step_forward", "gru_step_backward",
         ("x", "prev_h", "Wx", "Wh"), ("next_h",), ("dx", "dprev_h", "dWx", "dWh")),
    Unit("gru", "gru", "gru_forward", "gru_backward",
         ("x", "h0", "Wx", "Wh"), ("h",), ("dx", "dh0", "dWx", "dWh")),
)
UNITS = LAYER_API + GRU_UNITS
BY_NAME = {u.name: u for u in UNITS}
FUNCTIONS = {f for u in LAYER_API for f in (u.forward, u.backward)}
STEP_OF = {"rnn": "rnn_step", "lstm": "lstm_step", "gru": "gru_step"}  # a sequence unit and its step
BLOCKS = {"rnn": 1, "lstm": 4, "gru": 3}  # gate blocks along the last axis of Wx, Wh (, b)
