"""``graphc.utils.hooks``: PyTorch's home of ``RemovableHandle`` (defined with the
autograd hooks)."""
from graphc.autograd.hooks import RemovableHandle

__all__ = ["RemovableHandle"]
