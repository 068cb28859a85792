"""``torch.backends.opt_einsum``: graphc's ``einsum`` does not use the opt_einsum
package, so it is reported unavailable."""
enabled = False
strategy = None


def is_available() -> bool:
    return False
