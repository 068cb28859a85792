"""``torch.utils.dlpack``'s two functions: ``to_dlpack(t)`` is a legacy ``"dltensor"``
capsule of ``t``'s memory (what older consumers take), ``from_dlpack`` is
``graphc.from_dlpack``."""
from graphc.creation import from_dlpack


def to_dlpack(tensor):
    return tensor.__dlpack__()


__all__ = ["from_dlpack", "to_dlpack"]
