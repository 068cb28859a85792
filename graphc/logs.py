"""What the compiler tells you it did: standard ``logging`` channels under ``graphc``.

Each channel is a logger, silent until turned on, the way PyTorch's ``TORCH_LOGS`` and
``torch._logging.set_logs`` work:

=================  ==========================================================================
``recompiles``     every recompile of a compiled function: which guard failed, old and new value
``graph_breaks``   code that could not be traced, with its source line (the call runs eagerly)
``guards``         the guards installed with each compiled program
``output_code``    where the generated code of each program went (and the code itself)
``perf_hints``     things that cost speed: a number argument that could not be made dynamic
``compile``        what a compile that has run over a second is doing, and its stages' seconds
=================  ==========================================================================

Turn channels on with the environment (``GRAPHC_LOGS=recompiles,graph_breaks``) or in
code (``graphc.set_logs(recompiles=True)``).  Messages go to stderr, one line each
prefixed ``[graphc.<channel>]``; the loggers are ordinary ``logging`` loggers, so an
application may attach its own handlers instead.
"""
from __future__ import annotations

import logging
import os
import sys

CHANNELS = ("recompiles", "graph_breaks", "guards", "output_code", "perf_hints", "compile")

_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))


def logger(channel: str) -> logging.Logger:
    """The logger of one channel (``graphc.recompiles``, ...)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown graphc log channel {channel!r}; channels: "
                         f"{', '.join(CHANNELS)}")
    return logging.getLogger(f"graphc.{channel}")


def set_logs(**channels: bool) -> None:
    """Turn log channels on or off: ``graphc.set_logs(recompiles=True, guards=False)``.
    A channel not named keeps its state."""
    for channel, on in channels.items():
        log = logger(channel)
        log.setLevel(logging.DEBUG if on else logging.WARNING)
        if on and _handler not in log.handlers:
            log.addHandler(_handler)
            log.propagate = False
        elif not on and _handler in log.handlers:
            log.removeHandler(_handler)
            log.propagate = True


def _from_environment() -> None:
    names = [n.strip() for n in os.environ.get("GRAPHC_LOGS", "").split(",") if n.strip()]
    unknown = [n for n in names if n not in CHANNELS]
    if unknown:
        print(f"graphc: GRAPHC_LOGS names unknown channels {unknown}; channels are "
              f"{', '.join(CHANNELS)}", file=sys.stderr)
    set_logs(**{n: True for n in names if n in CHANNELS})


_from_environment()
