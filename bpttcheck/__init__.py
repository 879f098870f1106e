"""bpttcheck: tells you exactly what is wrong with your hand-written backpropagation through time."""

__version__ = "0.1.0"
