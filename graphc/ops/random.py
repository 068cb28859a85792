"""Counter-based random numbers: ``uniform(seed, shape, dtype)``.

Element ``i`` is a pure function of (seed, i): a few rounds of an integer hash.  So the
same draw is reproducible in eager mode, in the interpreter and in generated code, and a
compiled program draws fresh numbers each call simply by taking a new seed as an input.
"""
from __future__ import annotations

import numpy as np

from graphc import dtypes
from graphc.dtypes import TensorType
from graphc.ops.primitive import Primitive, op_error, register

_M1 = np.uint32(0x7FEB352D)
_M2 = np.uint32(0x846CA68B)


def hash32(x: np.ndarray) -> np.ndarray:
    """Chris Wellons' lowbias32: a good 32-bit integer mixer (uint32 in, uint32 out)."""
    x = x ^ (x >> np.uint32(16))
    x = x * _M1
    x = x ^ (x >> np.uint32(15))
    x = x * _M2
    return x ^ (x >> np.uint32(16))


def _uniform_infer(seed: TensorType, shape, dtype) -> TensorType:
    if seed.shape != () or seed.dtype != dtypes.int64 or not dtype.is_floating_point:
        raise op_error("uniform", "needs a 0-dim int64 seed and a floating dtype", seed)
    return TensorType(tuple(shape), dtype)


def _uniform_impl(seed, shape, dtype):
    s = int(seed) & 0xFFFFFFFFFFFFFFFF
    with np.errstate(over="ignore"):          # uint32 arithmetic wraps by design
        key = hash32(np.uint32(s & 0xFFFFFFFF) ^ hash32(np.uint32(s >> 32)))
        bits = hash32(np.arange(int(np.prod(shape)), dtype=np.uint32) ^ key)
    # 24 random bits -> [0, 1) exactly representable in float32.
    return ((bits >> np.uint32(8)).astype(dtype.np) * dtype.np.type(2.0 ** -24)).reshape(shape)


register(Primitive("uniform", "random", _uniform_infer, _uniform_impl,
                             vjp=(None,), attrs=("shape", "dtype")))
