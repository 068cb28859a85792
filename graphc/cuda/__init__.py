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


def _require(what: str) -> None:
    if not is_available():
        raise RuntimeError(f"torch.cuda.{what}: Torch not compiled with CUDA enabled: graphc "
                           f"cannot use CUDA here because {unavailable_reason()}")


def current_device() -> int:
    _require("current_device")
    return 0


def set_device(spec) -> None:
    """Only device 0 exists for graphc (compiled programs use the first GPU)."""
    index = spec if isinstance(spec, int) else device(spec).index or 0
    if index != 0:
        raise RuntimeError(f"torch.cuda.set_device({spec!r}): graphc uses only device 0")
    _require("set_device")


def get_device_name(spec=None) -> str:
    _require("get_device_name")
    import pycuda.driver as drv
    return drv.Device(0).name()


def get_device_capability(spec=None) -> tuple:
    _require("get_device_capability")
    import pycuda.driver as drv
    return drv.Device(0).compute_capability()


def is_bf16_supported(including_emulation: bool = True) -> bool:
    return is_available() and get_device_capability() >= (8, 0)


def synchronize(spec=None) -> None:
    """Waits for the GPU when one is in use: graphc's compiled calls return after their
    kernels finish, so there is never outstanding work."""
    _require("synchronize")


# Memory: graphc allocates device memory per compiled program (its arena) and does not
# keep a caching allocator, so there is no cache to empty and no allocator statistics.
def empty_cache() -> None:
    """Nothing to release: graphc keeps no cache of freed device memory."""


def memory_allocated(spec=None) -> int:
    return 0


def max_memory_allocated(spec=None) -> int:
    return 0


def reset_peak_memory_stats(spec=None) -> None:
    """No statistics are kept (see ``memory_allocated``)."""


# Random numbers: graphc draws every random number (eager, and the seeds of compiled
# programs on any device) from the one host generator, so seeding "the CUDA generator"
# has nothing to seed; graphc.manual_seed makes GPU programs reproducible too.
def manual_seed(seed: int) -> None:
    """Accepted for PyTorch programs; ``graphc.manual_seed`` seeds every device."""


manual_seed_all = manual_seed


def seed() -> None:
    """Accepted for PyTorch programs; ``graphc.seed`` reseeds every device."""


seed_all = seed
