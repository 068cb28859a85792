"""``torch.backends.openmp``: whether graphc's generated code runs on OpenMP threads."""


def is_available() -> bool:
    return False
