"""``torch.backends.cudnn``: cuDNN's flags.  graphc does not use cuDNN (its CUDA code is
generated), so ``is_available()`` is False and the flags change nothing."""
enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    return False


def version():
    return None
