"""``torch.set_num_threads`` / ``torch.get_num_threads``: how many threads compiled cpu
kernels (and numpy's OpenBLAS) may use.

The count lives in the cpu backend (``graphc.targets.cpu.threads``), imported on first use
so ``import graphc`` does not load LLVM.  It starts at ``GRAPHC_NUM_THREADS`` or the
number of cores this process may run on.
"""
from __future__ import annotations


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for parallel kernels from the next call on; PyTorch's checks and
    messages (``RuntimeError``: an int, and positive)."""
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    n = n.__index__()
    if n < 1:
        raise RuntimeError("set_num_threads expects a positive integer")
    from graphc.targets.cpu import threads
    threads.set_num_threads(n)


def get_num_threads() -> int:
    from graphc.targets.cpu import threads
    return threads.get_num_threads()
