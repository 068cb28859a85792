"""``torch.backends.openmp``: whether graphc's generated code runs on OpenMP threads."""


def is_available() -> bool:
    """True when libgomp was found: compiled cpu kernels then run on its thread pool."""
    from graphc.targets.cpu import threads
    return threads.openmp() is not None
