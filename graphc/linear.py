"""``F.bilinear``: y = x1^T A x2 + b for each output feature (``F.linear`` lives in
``graphc.composite``)."""
from __future__ import annotations

from graphc import functional as F


def bilinear(input1, input2, weight, bias=None):
    """out[..., o] = sum_ij input1[..., i] weight[o, i, j] input2[..., j] + bias[o]:
    one matmul of input1 with the weight's (i, o*j) matrix, then a product with input2
    summed over j."""
    if input1.dim() != input2.dim():
        raise RuntimeError(f"bilinear(): input dimensions do not match: got {input1.dim()} "
                           f"and {input2.dim()}")
    for d in range(input1.dim() - 1):
        if input1.shape[d] != input2.shape[d]:
            raise RuntimeError(f"bilinear(): input batch dimensions do not match at dim {d}: "
                               f"got {input1.shape[d]} and {input2.shape[d]}")
    out_features, in1, in2 = weight.shape
    for name, got, want in (("input1", input1.shape[-1], in1),
                            ("input2", input2.shape[-1], in2)):
        if got != want:
            raise RuntimeError(f"bilinear(): {name} size does not match weight size: got "
                               f"{got} but expected {want}")
    if bias is not None and bias.shape[-1] != out_features:
        raise RuntimeError(f"bilinear(): bias size does not match weight size: got "
                           f"{bias.shape[-1]} but expected {out_features}")
    left = F.matmul(input1, weight.permute(1, 0, 2).reshape(in1, out_features * in2))
    left = left.reshape(tuple(input1.shape[:-1]) + (out_features, in2))
    out = (left * input2.unsqueeze(-2)).sum(-1)
    return out + bias if bias is not None else out
