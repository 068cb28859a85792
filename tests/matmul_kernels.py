"""Matmul kernels built by hand from arrays, for the cpu renderer's tests."""
import math

import numpy as np

from graphc import dtypes
from graphc.codegen import loops as L


def product_kernel(a, b, *, trans_a=False, trans_b=False, stores=None, extra=None,
                   name="mm"):
    """(kernel, inputs, outputs) of a @ b for (batch..., m, k) @ (batch..., k, n) arrays
    (broadcasting batch dims), transposed operands passed as their transposes' buffers."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, k = a.shape[-2:]
    n = b.shape[-1]
    dtype = dtypes.from_numpy(a.dtype)

    def operand(name, x, trans):
        stored = np.ascontiguousarray(np.swapaxes(x, -1, -2)) if trans else x
        strides = [s // x.itemsize for s in stored.strides]
        rows, cols = (strides[-1], strides[-2]) if trans else (strides[-2], strides[-1])
        lead = len(batch) - (x.ndim - 2)
        batch_strides = tuple(0 if d < lead or x.shape[d - lead] == 1 else strides[d - lead]
                              for d in range(len(batch)))
        return stored, L.Operand(name, batch_strides, rows, cols)

    a_buf, a_op = operand("a", a, trans_a)
    b_buf, b_op = operand("b", b, trans_b)
    stores = stores or [("c", L.Acc("acc", dtype))]
    inputs = {"a": a_buf, "b": b_buf, **(extra or {})}
    kernel = L.MatmulKernel(name, tuple(batch), m, n, k, a_op, b_op, dtype, stores,
                            list(inputs), [s[0] for s in stores])
    size = math.prod(batch) * m * n
    return kernel, inputs, {buf: (v.dtype, size) for buf, v in stores}
