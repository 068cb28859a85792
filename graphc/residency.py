"""Host arrays whose newest value may live in device memory.

A compiled program on a device (the ``cuda`` backend) keeps values in device buffers
between calls instead of copying them back and forth: parameters and optimizer state
stay on the GPU across training steps, and an output is downloaded only when something
reads it on the host.  This module is the bookkeeping that keeps that invisible:

* ``records`` maps a storage root (an ndarray that is not a view of another) to its
  ``DeviceCopy``: where on the device a copy of the array lives, and whether that copy is
  newer than the host array (``pending``).
* Every host access to a tensor's data goes through ``Tensor._data``, which calls
  ``claim`` while any record exists: a pending value is downloaded first, and the record
  is dropped, because the caller may write to the array and graphc cannot tell a read
  from a write.  Device programs read ``Tensor._array`` instead, and ask this module.
* An array handed to code outside graphc (``Tensor.numpy()``, ``np.asarray(tensor)``,
  ``from_numpy``) is ``escaped``: it can be written at any time without graphc seeing
  it, so no device copy of it is ever trusted or left pending.

Nothing here imports a device library: the owner of a ``DeviceCopy`` (a program of a
device backend) does the transfers.
"""
from __future__ import annotations

import weakref

import numpy as np

records: dict = {}       # id(root array) -> DeviceCopy
_escaped: dict = {}      # id(root array) -> weakref to it


class DeviceCopy:
    """A copy of one host array in a device buffer.  ``owner`` keeps the buffer alive and
    moves the bytes: ``owner.download(copy, array)``; ``pending`` means the device value
    is the newer one (the host array is stale until ``claim``)."""
    __slots__ = ("owner", "buffer", "address", "pending", "ref", "__weakref__")

    def __init__(self, owner, buffer: str, address: int, pending: bool):
        self.owner = owner
        self.buffer = buffer
        self.address = address
        self.pending = pending
        self.ref = None                # weakref to the host array, set by ``place``

    def array(self):
        """The host array this copy belongs to, while it is alive and this copy current."""
        a = None if self.ref is None else self.ref()
        return a if a is not None and records.get(id(a)) is self else None


def root_of(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory (``a`` itself unless it is a view)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def find(a) -> DeviceCopy | None:
    return records.get(id(root_of(a))) if isinstance(a, np.ndarray) else None


def claim(a) -> None:
    """The host is about to use ``a`` (read or write): bring its newest value home and
    forget the device copy."""
    if not isinstance(a, np.ndarray):
        return                                   # a tracer's ir.Value
    root = root_of(a)
    copy = records.pop(id(root), None)
    if copy is not None and copy.pending:
        copy.owner.download(copy, root)


def sync(a: np.ndarray) -> None:
    """Download a pending value of ``a`` but keep the (now equal) device copy: for a
    reader that will not write."""
    if not isinstance(a, np.ndarray):
        return
    root = root_of(a)
    copy = records.get(id(root))
    if copy is not None and copy.pending:
        copy.owner.download(copy, root)
        copy.pending = False


def escape(a) -> None:
    """``a`` is handed to code outside graphc: never keep a device copy of it."""
    if not isinstance(a, np.ndarray):
        return
    claim(a)
    root = root_of(a)
    key = id(root)
    if key not in _escaped:
        _escaped[key] = weakref.ref(root, lambda _, key=key: _escaped.pop(key, None))


def can_stay_on_device(a: np.ndarray) -> bool:
    """Whether a device copy of ``a`` may be trusted across calls: ``a`` is a whole,
    contiguous, non-empty storage that never escaped graphc."""
    return (type(a) is np.ndarray and a.base is None and a.flags.c_contiguous
            and a.size > 0 and id(a) not in _escaped)


def place(a: np.ndarray, copy: DeviceCopy) -> None:
    """Record ``copy`` as the device copy of ``a`` (a storage root), replacing any other
    without downloading it: the caller knows ``copy`` holds ``a``'s value."""
    key = id(a)

    def forget(_, key=key, copy=copy):
        if records.get(key) is copy:
            del records[key]
    copy.ref = weakref.ref(a, forget)
    records[key] = copy


def drop(copy: DeviceCopy) -> None:
    """Forget ``copy`` (its buffer is about to be overwritten), downloading its value
    first if the host array is stale and still alive."""
    a = copy.array()
    if a is not None:
        del records[id(a)]
        if copy.pending:
            copy.owner.download(copy, a)


def assign(dest: np.ndarray, src: np.ndarray) -> None:
    """``np.copyto(dest, src)`` for the write-backs of a compiled call: when ``src``'s
    value exists only on a device and ``dest`` is a whole storage of the same size and
    dtype, ``dest`` takes over ``src``'s device copy and nothing is downloaded."""
    if not records:                              # no device copies anywhere
        np.copyto(dest, src)
        return
    copy = records.get(id(src))
    if (copy is not None and copy.pending and can_stay_on_device(dest)
            and dest.dtype == src.dtype and dest.size == src.size):
        del records[id(src)]
        place(dest, copy)                        # replaces dest's own record, if any
        return
    claim(src)
    claim(dest)
    np.copyto(dest, src)
