"""Tensors as MPI buffers: the MPI type of each dtype, contiguous staging, and the
(shape, dtype) records that ranks compare before a collective.

MPI reads and writes flat memory, while a graphc tensor may be a strided numpy view.  A
``Staged`` tensor is the array itself when it is C-contiguous (no copy), else a
contiguous copy that ``write_back`` copies into the view afterwards.  float16 and
bfloat16 have no MPI type: they travel as raw 16-bit words when nothing is computed
(broadcast, gather, send), and are reduced in float32 and rounded once, as graphc
computes on them everywhere else.
"""
from __future__ import annotations

import numpy as np

from graphc import context, dtypes

MPI_NAMES = {"bool": "C_BOOL", "uint8": "UINT8_T", "int8": "INT8_T", "int16": "INT16_T",
              "int32": "INT32_T", "int64": "INT64_T", "float16": "UINT16_T",
              "bfloat16": "UINT16_T", "float32": "FLOAT", "float64": "DOUBLE"}
RECORD = 16          # int64 slots in a rank's record of a call
_DIMS = RECORD - 4   # dims recorded one by one; the product of any further ones goes last


class Staged:
    """A tensor's storage as a contiguous buffer MPI can use.  ``reducing`` stages half
    precision in float32, so MPI's arithmetic applies."""

    def __init__(self, MPI, tensor, what: str, reducing: bool = False):
        array = host_array(tensor, what)
        self.tensor, self.array = tensor, array
        if reducing and tensor.dtype in dtypes.HALF:
            self.buf = np.ascontiguousarray(array, dtype=np.float32)
            self.spec = [self.buf, MPI.FLOAT]
            return
        self.buf = array if array.flags.c_contiguous else np.ascontiguousarray(array)
        raw = self.buf.view(np.uint16) if tensor.dtype in dtypes.HALF else self.buf
        self.spec = [raw, getattr(MPI, MPI_NAMES[tensor.dtype.name])]

    def write_back(self) -> None:
        """Make the tensor hold the buffer's values (no copy when they share memory)."""
        store(self.tensor, self.buf, self.array)


def traced(tensor) -> bool:
    """Whether ``graphc.compile`` is tracing ``tensor`` (it then has no values)."""
    return type(tensor._data) is not np.ndarray


def host_array(tensor, what: str) -> np.ndarray:
    """The tensor's array.  While ``graphc.compile`` traces, a tensor has no values, and
    of the collectives only ``all_reduce`` and ``broadcast`` are ops of the IR: the
    others are a graph break, so the function runs eagerly."""
    if traced(tensor):
        line = context.user_source_line()
        raise context.GraphBreak(f"graphc cannot trace torch.distributed.{what}"
                                 + (f" (at {line})" if line else "")
                                 + ": of the collectives, only all_reduce and broadcast "
                                   "are ops of graphc's IR")
    return tensor._data


def check_writable(tensor, what: str) -> None:
    """Refuse, before any communication, an output no write can go into (an expanded
    view: PyTorch's error for in-place ops on it)."""
    if not host_array(tensor, what).flags.writeable:
        raise RuntimeError(f"{what}: unsupported operation: more than one element of the "
                           f"written-to tensor refers to a single memory location. "
                           f"Please clone() the tensor before performing the operation.")


def store(tensor, values: np.ndarray, array: np.ndarray | None = None) -> None:
    """Write ``values`` (any layout of the right size) into a tensor, as an in-place op."""
    array = tensor._data if array is None else array
    if values is not array:
        np.copyto(array, values.reshape(array.shape), casting="unsafe")
    tensor._version[0] += 1


def describe(dtype, shape) -> str:
    """``f32[3, 4]``: how errors name a tensor."""
    return f"{dtype.short}{list(shape)}"


def record(call: int, arg: int, tensor=None) -> np.ndarray:
    """One rank's record of a call: which call, its argument (op, src), the tensor's
    dtype and shape (none for a barrier)."""
    shape = () if tensor is None else tuple(tensor.shape)
    dtype = dtypes.ALL[0] if tensor is None else tensor.dtype
    r = np.zeros(RECORD, np.int64)
    r[:4] = call, arg, dtypes.ALL.index(dtype), len(shape)
    r[4:4 + min(len(shape), _DIMS)] = shape[:_DIMS]
    if len(shape) > _DIMS:
        r[-1] = int(np.prod(shape[_DIMS - 1:]))
    return r


def unrecord(r: np.ndarray):
    """(call, arg, dtype, shape) back from a record (a shape of more than 12 dims comes
    back with its trailing dims folded into one)."""
    ndim = int(r[3])
    shape = tuple(int(d) for d in r[4:4 + min(ndim, _DIMS)])
    if ndim > _DIMS:
        shape = shape[:-1] + (int(r[-1]),)
    return int(r[0]), int(r[1]), dtypes.ALL[int(r[2])], shape
