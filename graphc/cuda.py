"""``graphc.device`` and ``graphc.cuda``: which devices exist on this machine.

Eager tensors always live in host memory.  ``cuda.is_available()`` is True only when
PyCUDA imports and a GPU is present; asking for a CUDA tensor without one raises a
clear error instead of silently computing on the CPU.
"""
from __future__ import annotations

import functools


class device:
    """``graphc.device("cpu")``, ``graphc.device("cuda:0")``."""

    def __init__(self, type_or_spec, index=None):
        if isinstance(type_or_spec, device):
            type_or_spec, index = type_or_spec.type, type_or_spec.index
        spec = str(type_or_spec)
        kind, _, idx = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device "
                               f"string: {spec}")
        self.type = kind
        self.index = int(idx) if idx else index

    def __repr__(self):
        return f"device(type='{self.type}'" + (f", index={self.index})"
                                               if self.index is not None else ")")

    def __str__(self):
        return self.type + (f":{self.index}" if self.index is not None else "")

    def __eq__(self, other):
        return isinstance(other, device) and (self.type, self.index) == (other.type,
                                                                          other.index)

    def __hash__(self):
        return hash((self.type, self.index))


def _unavailable_reason() -> str | None:
    try:
        import pycuda.driver as drv
    except Exception as e:       # ImportError, or a driver library that will not load
        return f"PyCUDA is not installed or cannot load ({type(e).__name__}: {e})"
    try:
        drv.init()
        if drv.Device.count() == 0:
            return "PyCUDA found no CUDA device"
    except Exception as e:
        return f"no usable CUDA device ({type(e).__name__}: {e})"
    return None


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    return _unavailable_reason()


def is_available() -> bool:
    return unavailable_reason() is None


def device_count() -> int:
    if not is_available():
        return 0
    import pycuda.driver as drv
    return drv.Device.count()


def check_device(spec) -> None:
    """Refuse 'cuda' where CUDA is unavailable, saying why.  Where it is available,
    eager tensors still live in host memory and compiled programs use the GPU."""
    if device(spec).type == "cuda" and not is_available():
        raise RuntimeError(f"Torch not compiled with CUDA enabled: graphc cannot use CUDA "
                           f"here because {unavailable_reason()}")
