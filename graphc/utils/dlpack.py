"""``torch.utils.dlpack``: ``to_dlpack(t)`` (a legacy ``"dltensor"`` capsule of ``t``'s
memory) and ``from_dlpack`` (a tensor sharing the memory of a capsule or of any object
with ``__dlpack__``)."""
from graphc.creation import from_dlpack, to_dlpack

__all__ = ["from_dlpack", "to_dlpack"]
