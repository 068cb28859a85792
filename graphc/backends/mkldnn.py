"""``torch.backends.mkldnn`` (oneDNN): graphc does not call it; ``enabled`` is kept for
programs that set it."""
enabled = True


def is_available() -> bool:
    return False
