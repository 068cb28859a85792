"""``graphc.accelerator`` (PyTorch's ``torch.accelerator``): the machine's accelerator,
answered truthfully: CUDA where ``graphc.cuda.is_available()``, otherwise none."""
from graphc import cuda
from graphc.cuda import device


def is_available() -> bool:
    return cuda.is_available()


def current_accelerator(check_available: bool = False):
    """``device(type='cuda')`` when a GPU is usable, else None (PyTorch's answer on a
    machine without one)."""
    return device("cuda") if cuda.is_available() else None


def device_count() -> int:
    return cuda.device_count()


def current_device_index() -> int:
    if not cuda.is_available():
        raise RuntimeError("Cannot access accelerator device when none is available.")
    return cuda.current_device()


current_device_idx = current_device_index


def set_device_index(index) -> None:
    cuda.set_device(index)


set_device_idx = set_device_index


def synchronize(device=None) -> None:
    if cuda.is_available():
        cuda.synchronize()


def empty_cache() -> None:
    cuda.empty_cache()


def memory_allocated(device=None) -> int:
    return cuda.memory_allocated()


def max_memory_allocated(device=None) -> int:
    return cuda.max_memory_allocated()


def reset_peak_memory_stats(device=None) -> None:
    cuda.reset_peak_memory_stats()
