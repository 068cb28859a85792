"""The PyTorch features graphc refuses, in one table: each is a callable that raises
``NotImplementedError`` naming the feature, why, and the closest supported spelling.

Registering here (rather than raising ad hoc) is what lets ``docs/support.md`` list
every refusal, generated from the code (``python -m graphc.testing.support``).
"""
from __future__ import annotations

REFUSED: dict[str, tuple[str, str]] = {}
"""PyTorch's name -> (why graphc refuses it, what to use instead)."""


def refused(name: str, why: str, instead: str):
    """A stand-in for PyTorch's ``name`` that raises when called (or constructed)."""
    REFUSED[name] = (why, instead)

    def refuse(*args, **kwargs):
        raise NotImplementedError(f"{name} is not supported by graphc: {why}. Instead: "
                                  f"{instead}")
    refuse.__name__ = refuse.__qualname__ = name.rsplit(".", 1)[-1]
    refuse.__doc__ = f"Not supported: {why}. Instead: {instead}."
    return refuse
