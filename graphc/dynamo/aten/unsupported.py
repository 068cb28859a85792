"""The FX glue, the decomposition table AOTAutograd traces with, and
``unsupported(node)``: why an FX node stays in PyTorch."""
from __future__ import annotations

import operator

import torch
import torch._decomp

from graphc.dynamo.aten.registry import LOWERINGS, SUPPORTED_DTYPES, aten


# -------------------------------------------------------------------------- FX glue
# AOTAutograd's graphs unpack multi-output ops with ``operator.getitem``.
LOWERINGS[operator.getitem] = operator.getitem


# ------------------------------------------------------------------ decompositions

# PyTorch's core table, less every op graphc lowers itself: graphc's composites for
# them (softmax, log_softmax, layer_norm, gelu, silu, softplus, hardswish, elu,
# logsumexp, var...) are one fused kernel each, rounded once for half input like
# PyTorch's kernels (composite._rounded_once), where a decomposition is several ops
# rounded between them and more nodes to interpret.  Backward ops graphc has no
# lowering for (gelu_backward, native_layer_norm_backward, _softmax_backward_data...)
# stay decomposed.
DECOMPOSITIONS = {op: fn for op, fn in torch._decomp.core_aten_decompositions().items()
                  if op not in LOWERINGS}


# --------------------------------------------------------------------- unsupported

def _tensors(value):
    """The FakeTensors in a node's ``meta["val"]`` (one, a tuple of them, or none)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _tensors(item)]
    return []


def _integer_bitwise(node, args):
    """graphc's bitwise and/or/xor are its logical ones: bool operands only."""
    for arg in args:
        if isinstance(arg, torch.Tensor) and arg.dtype != torch.bool:
            return f"{node.target} on {arg.dtype}: graphc has bitwise ops for bool only"
        if isinstance(arg, int) and not isinstance(arg, bool):
            return f"{node.target} with the integer {arg}: graphc has them for bool only"
    return None


def _boolean_index(node, args):
    """A boolean mask index selects a number of elements that depends on its values:
    a read's shape depends on them, and graphc's traced writes take integer indices."""
    for index in args[1]:
        if isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8):
            return (f"{node.target} with a boolean mask index: how many elements it "
                    "selects depends on the values")
    return None


def _integer_convolution(node, args):
    if not args[1].dtype.is_floating_point:
        return f"{node.target} on {args[1].dtype}: graphc convolves float tensors only"
    return None


def _attention_dropout(node, args):
    """graphc's attention draws its own dropout mask, which the kernels' backward
    cannot see."""
    names = [argument.name for argument in node.target._schema.arguments]
    dropout_p = dict(zip(names, args)).get("dropout_p", node.kwargs.get("dropout_p", 0.0))
    if dropout_p:
        return (f"{node.target} with dropout_p={dropout_p}: graphc draws its own dropout "
                "mask, which the kernel's backward cannot see")
    return None


def _lstm_layer(node, args):
    mode, batch_sizes, bidirectional = args[9], args[8], args[13]
    if mode != 2 or batch_sizes or bidirectional:
        return (f"{node.target} with mode={mode}, batch_sizes={batch_sizes}, "
                f"bidirectional={bidirectional}: graphc lowers the one-direction LSTM "
                "layer (mode 2) of PyTorch's decomposition")
    return None


def _encoder_layer(node, args):
    if args[0].ndim != 3 or (len(args) > 18 and args[18] is not None) or \
            node.kwargs.get("mask") is not None:
        return (f"{node.target} with a mask or an unbatched input: graphc lowers the "
                "batch-first, unmasked layer")
    return None


ARGUMENT_CHECKS = {
    aten._transformer_encoder_layer_fwd.default: _encoder_layer,
    aten.mkldnn_rnn_layer.default: _lstm_layer,
    aten._scaled_dot_product_flash_attention_for_cpu.default: _attention_dropout,
    aten._scaled_dot_product_flash_attention_for_cpu_backward.default: _attention_dropout,
    **{getattr(packet, name): _integer_bitwise
       for packet in (aten.bitwise_and, aten.bitwise_or, aten.bitwise_xor)
       for name in packet.overloads()},
    aten.index.Tensor: _boolean_index,
    aten._unsafe_index.Tensor: _boolean_index,
    aten.index_put.default: _boolean_index,
    aten._unsafe_index_put.default: _boolean_index,
    aten.convolution.default: _integer_convolution,
}


def _meta(value):
    """An argument with every FX node replaced by its FakeTensor (``meta['val']``)."""
    if isinstance(value, torch.fx.Node):
        return value.meta.get("val")
    if isinstance(value, (list, tuple)):
        return type(value)(_meta(v) for v in value)
    return value


def _tensor_reason(target, tensor):
    """Why graphc cannot take or make this (fake) tensor, or None.  Dtypes, layouts and
    devices given as arguments show in the result's FakeTensor, so they are read there."""
    if str(tensor.dtype).removeprefix("torch.") not in SUPPORTED_DTYPES:
        return f"{target} on {tensor.dtype}: graphc has no such dtype"
    if tensor.layout != torch.strided:
        return f"{target} on a {tensor.layout} tensor: graphc tensors are strided"
    if not all(isinstance(size, int) for size in tensor.shape):
        return (f"{target} with symbolic shape {tuple(tensor.shape)}: graphc compiles "
                "static shapes")
    if tensor.device.type not in ("cpu", "cuda"):
        return f"{target} on device {tensor.device}: graphc runs on cpu and cuda"
    return None


def unsupported(node) -> str | None:
    """None when graphc runs this FX node, else why not (naming the op).

    Reasons: no lowering; a tensor of a dtype graphc lacks (complex...); a tensor whose
    shape is symbolic (graphc compiles static shapes); a device graphc does not run on,
    or a move between devices; a sparse or other non-strided layout; a PyTorch random
    generator; or an argument the lowering cannot honour.
    """
    if node.op != "call_function":
        return None
    target = node.target
    if target not in LOWERINGS:
        return f"{target} has no graphc lowering"
    args = _meta(list(node.args))
    kwargs = {k: _meta(v) for k, v in node.kwargs.items()}
    check = ARGUMENT_CHECKS.get(target)
    reason = check(node, args) if check else None
    if reason:
        return reason
    tensors = _tensors([node.meta.get("val"), args, list(kwargs.values())])
    for tensor in tensors:
        reason = _tensor_reason(target, tensor)
        if reason:
            return reason
    devices = {str(tensor.device) for tensor in tensors}
    if len(devices) > 1:
        return f"{target} moves tensors between {' and '.join(sorted(devices))}"
    if node.kwargs.get("generator") is not None:
        return f"{target} with a generator: graphc draws from its own"
    sizes = [v for value in [*args, *kwargs.values()]
             for v in (value if isinstance(value, (list, tuple)) else [value])]
    if any(isinstance(v, torch.SymInt) for v in sizes):
        return f"{target} with a symbolic size argument: graphc compiles static shapes"
    return None
