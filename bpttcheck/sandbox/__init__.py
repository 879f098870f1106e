"""Everything that starts or runs user code: staging the submission, limits, the worker process
and its guard, the wire protocol, compiling C."""
