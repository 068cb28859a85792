"""``torch.backends.mkl``: graphc does not call MKL."""


def is_available() -> bool:
    return False
