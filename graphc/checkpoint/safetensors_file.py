"""safetensors files: a JSON header and raw little-endian tensor bytes, no pickle.

Written with ``safetensors.numpy.save`` (which knows bfloat16 through ml_dtypes) and
read with ``safetensors.deserialize``, mapping the file's dtype names to graphc's
ourselves: ``safetensors.numpy.load`` has no BF16.  The library is an optional extra,
imported only here.  safetensors stores a flat ``{name: tensor}`` mapping; tensors that
share memory (tied weights) are each written in full, as ``safetensors.numpy`` does, so
every name loads back (``load_state_dict(strict=True)`` finds them all).
"""
from __future__ import annotations

import os

import numpy as np

from graphc import dtypes
from graphc.checkpoint.archive import UnsupportedCheckpointError
from graphc.tensor import Tensor

_DTYPES = {"BOOL": dtypes.bool_, "U8": dtypes.uint8, "I8": dtypes.int8,
           "I16": dtypes.int16, "I32": dtypes.int32, "I64": dtypes.int64,
           "F16": dtypes.float16, "BF16": dtypes.bfloat16, "F32": dtypes.float32,
           "F64": dtypes.float64}


def _library():
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ImportError("graphc.save/graphc.load of a .safetensors file needs the "
                          "safetensors package: pip install 'graphc[safetensors]'") from None
    return safetensors


def save(obj, f, metadata=None) -> None:
    """Write a ``{str: Tensor}`` mapping (a ``state_dict()``) and optional
    ``{str: str}`` metadata to a path or binary file object."""
    library = _library()
    if not isinstance(obj, dict) or not all(
            type(k) is str and isinstance(v, Tensor) for k, v in obj.items()):
        raise TypeError("graphc.save: a safetensors file holds a dict of str to tensors "
                        "(a state_dict()); got " + _describe(obj))
    if metadata is not None and not (isinstance(metadata, dict) and all(
            type(k) is str and type(v) is str for k, v in metadata.items())):
        raise TypeError("graphc.save: safetensors metadata must be a dict of str to str")
    arrays = {k: np.ascontiguousarray(v._concrete("graphc.save")) for k, v in obj.items()}
    data = library.numpy.save(arrays, metadata=metadata)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as opened:
            opened.write(data)
    else:
        f.write(data)


def _describe(obj) -> str:
    if not isinstance(obj, dict):
        return type(obj).__name__
    bad = next((k, v) for k, v in obj.items()
               if type(k) is not str or not isinstance(v, Tensor))
    return f"the entry {bad[0]!r}: {type(bad[1]).__name__}"


def load(data: bytes, name: str) -> dict:
    """The tensors of a safetensors file's bytes, by name, in the file's order."""
    library = _library()
    try:
        entries = library.deserialize(data)
    except library.SafetensorError as e:
        raise ValueError(f"not a readable safetensors file ({e})") from None
    tensors = {}
    for key, entry in entries:
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise UnsupportedCheckpointError(
                f"graphc.load: {name} holds tensor {key!r} of safetensors dtype "
                f"{entry['dtype']}, which graphc does not have (it reads "
                f"{', '.join(_DTYPES)})")
        array = np.frombuffer(bytearray(entry["data"]), dtype.np).reshape(entry["shape"])
        tensors[key] = Tensor._wrap(array, dtype)
    return tensors


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file starts with the little-endian length of its JSON header,
    then ``{``."""
    return len(head) >= 9 and head[8:9] == b"{" and \
        int.from_bytes(head[:8], "little") <= size - 8
