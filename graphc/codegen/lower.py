"""Lowering: fused groups of IR ops -> loop IR kernels (``graphc.codegen.loops``).

Every value a kernel needs is an expression at an index: a load from a buffer (graph
inputs, constants, values stored by earlier kernels), an index map composed onto its
input (views never move data), an elementwise op on its operands' expressions, or an
accumulator of the kernel's own reductions.  Broadcasting is index arithmetic: a size-1
dimension reads index 0.  Index expressions are folded as they are built, so the common
case (same shapes, contiguous) is a plain ``buffer[i]``.

Reductions accumulate in ``accumulator_dtype``: float32 sums in float64 (so their result
does not depend on the order a backend adds in), integer sums and products in int64.
"""
from __future__ import annotations

import math

from graphc import dtypes
from graphc.codegen import loops as L
from graphc.ir import Graph, Value
from graphc.codegen.fusion import Fusion, fuse
from graphc.codegen.memory import plan_memory
from graphc.ops import REGISTRY


# A convolution whose output planes have fewer elements than this is one product over
# all samples, not one per sample (see ``Lowering.lower_conv``).
MERGED_PLANE = 64


def accumulator_dtype(kind: str, dtype):
    """The dtype a reduction of ``kind`` producing ``dtype`` accumulates in: float32 sums
    in float64, so a sum (and mean, var, softmax's denominator, layer_norm's statistics)
    is within float64 rounding of the exact sum before it is rounded once to float32,
    whatever order a backend adds in (a constant row of 3.7 has mean exactly 3.7, as in
    PyTorch, where float32 accumulation drifts by 1e-4 relative and more); integer sums
    and products in int64 (their result dtype already).  Readers of the accumulator
    (``Acc``) carry the reduction's dtype and round to it."""
    return dtypes.float64 if kind == "sum" and dtype is dtypes.float32 else dtype


# ---- index arithmetic with folding -----------------------------------------------------------
def iop(op, a, b):
    if isinstance(a, L.IConst) and isinstance(b, L.IConst):
        return L.IConst(L.INDEX_OPS[op].fn(a.value, b.value))
    zero_a = isinstance(a, L.IConst) and a.value == 0
    zero_b = isinstance(b, L.IConst) and b.value == 0
    one_b = isinstance(b, L.IConst) and b.value == 1
    if op == "add" and (zero_a or zero_b):
        return b if zero_a else a
    if op == "sub" and zero_b:
        return a
    if op == "mul":
        if zero_a or zero_b:
            return L.IConst(0)
        if one_b:
            return a
        if isinstance(a, L.IConst) and a.value == 1:
            return b
    if op == "floordiv" and one_b:
        return a
    if op == "mod" and one_b:
        return L.IConst(0)
    return L.IOp(op, a, b)


def contiguous_strides(shape) -> tuple:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))


def linear(index, shape):
    """Row-major offset of ``index`` in a contiguous array of ``shape``."""
    out = L.IConst(0)
    for i, s, d in zip(index, contiguous_strides(shape), shape):
        if d != 1:
            out = iop("add", out, iop("mul", i, L.IConst(s)))
    return out


def unravel(offset, shape) -> tuple:
    """The index in ``shape`` of a row-major offset."""
    out = []
    for i, (s, d) in enumerate(zip(contiguous_strides(shape), shape)):
        if d == 1:
            out.append(L.IConst(0))
            continue
        q = iop("floordiv", offset, L.IConst(s))
        out.append(q if i == 0 else iop("mod", q, L.IConst(d)))
    return tuple(out)


def reshape_index(index, from_shape, to_shape) -> tuple:
    """Index into ``to_shape`` of the element at ``index`` of ``from_shape`` (same size).
    Unit dims added or removed map directly; the other dims fall into the smallest runs
    of equal size on both sides (a split, a merge), each mapped through its own offset,
    so an unflatten reads ``(i // k, i % k)`` rather than the unravelled offset of the
    whole tensor."""
    sized_from = [(i, d) for i, d in zip(index, from_shape) if d != 1]
    sized_to = [d for d in to_shape if d != 1]
    if 0 in from_shape or 0 in to_shape:
        return unravel(linear(index, from_shape), to_shape)
    mapped, f, t = [], 0, 0
    while t < len(sized_to):
        run_from, run_to = [sized_from[f]], [sized_to[t]]
        f, t = f + 1, t + 1
        while math.prod(d for _, d in run_from) != math.prod(run_to):
            if math.prod(d for _, d in run_from) < math.prod(run_to):
                run_from.append(sized_from[f])
                f += 1
            else:
                run_to.append(sized_to[t])
                t += 1
        offset = linear(tuple(i for i, _ in run_from), tuple(d for _, d in run_from))
        mapped.extend(unravel(offset, tuple(run_to)))
    it = iter(mapped)
    return tuple(next(it) if d != 1 else L.IConst(0) for d in to_shape)


def broadcast_index(index, out_shape, in_shape) -> tuple:
    lead = len(out_shape) - len(in_shape)
    return tuple(L.IConst(0) if d == 1 and out_shape[lead + k] != 1 else index[lead + k]
                 for k, d in enumerate(in_shape))


class IndexMapper:
    """What a movement primitive's ``index_map`` builds with (see ``graphc.ops.movement``):
    reads of the op's inputs inside the current kernel, folded index arithmetic, and a
    few scalar expressions."""

    iop = staticmethod(iop)
    reshape_index = staticmethod(reshape_index)
    broadcast_index = staticmethod(broadcast_index)

    def __init__(self, lowering, op):
        self.lowering = lowering
        self.op = op
        self.shapes = [v.shape for v in op.inputs]

    def read(self, k: int, index):
        return self.lowering.value(self.op.inputs[k], index)

    @staticmethod
    def const(n: int) -> L.IConst:
        return L.IConst(n)

    def checked(self, value, size: int) -> L.CheckedIndex:
        return self.lowering.checked(self.op, value, size)

    def fill(self, value) -> L.Const:
        return L.Const(value, self.op.out.type.dtype)

    def select(self, cond, a, b) -> L.Op:
        return L.Op("where", (L.IndexValue(cond, dtypes.bool_), a, b), self.op.out.type.dtype)


# ---- lowering --------------------------------------------------------------------------------
class Lowering:
    def __init__(self, fusion: Fusion, name: str):
        self.fusion = fusion
        self.graph: Graph = fusion.graph
        self.name = name
        self.producer = self.graph.producers()
        self.buffers: dict = {}
        self.buffer_of: dict = {}
        self.constants: dict = {}
        self.kernels: list = []
        self.sites: dict = {}                  # loops.Site -> its number
        self.products: dict = {}               # Value -> index -> its load from a product
        self.group = None

    def checked(self, op, value, size: int) -> L.CheckedIndex:
        """``value`` as an index into ``op``'s first input along its ``axis``, checked at
        run time; the error names the op and the user's line."""
        site = L.Site(op.name, op.source, op.attr_dict.get("axis", 0), size)
        return L.CheckedIndex(value, size, self.site_number(site))

    def site_number(self, site: L.Site) -> int:
        """``site``'s position (from 1) in the program's ``sites``, added if new."""
        return self.sites.setdefault(site, len(self.sites) + 1)

    # ---- buffers ----------------------------------------------------------------------------
    def add_buffer(self, v: Value, name: str, kind: str) -> str:
        self.buffers[name] = L.BufferInfo(name, v.type.dtype, math.prod(v.shape), kind)
        self.buffer_of[v] = name
        return name

    def assign_buffers(self):
        for i, v in enumerate(self.graph.inputs):
            self.add_buffer(v, f"in{i}_{v.name}", "input")
        outputs = set(self.graph.outputs)
        for op in self.graph.ops:
            if op.name == "constant" and (op.out in outputs or not self.is_splat(op.out)):
                name = self.add_buffer(op.out, f"const_{op.out.name}", "constant")
                self.constants[name] = op.attr_dict["value"].array
        # In program order, not set order: the buffer order is in the generated code, and
        # code that changes from one process to the next never hits the disk cache.
        materialized = self.fusion.materialized()
        for v in [op.out for op in self.graph.ops if op.out in materialized]:
            kind = "output" if v in outputs else "temp"
            self.add_buffer(v, f"{'out' if kind == 'output' else 'tmp'}_{v.name}", kind)

    def is_splat(self, v: Value) -> bool:
        array = self.producer[v].attr_dict["value"].array
        flat = array.reshape(-1)
        return flat.size <= 1 or bool((flat == flat[0]).all())

    # ---- expressions ------------------------------------------------------------------------------
    def load(self, v: Value, index) -> L.Load:
        return L.Load(self.buffer_of[v], linear(index, v.shape), v.type.dtype)

    def value(self, v: Value, index):
        """The scalar expression of value ``v`` at ``index`` inside the current kernel."""
        group = self.fusion.group_of.get(v)
        if group is not None and group is not self.group:
            return self.load(v, index)
        if v in self.products:
            return self.products[v](index)
        op = self.producer.get(v)
        if op is None:                                   # a graph input
            return self.load(v, index)
        if op.name == "constant":
            if v in self.buffer_of:
                return self.load(v, index)
            flat = op.attr_dict["value"].array.reshape(-1)
            return L.Const(flat[0].item() if flat.size else 0, v.type.dtype)
        if REGISTRY[op.name].kind in ("reduction", "contraction"):
            return L.Acc(self.acc_name(v), v.type.dtype)
        return self.apply(op, index)

    def acc_name(self, v: Value) -> str:
        return "acc" if self.producer[v].name in ("matmul", "conv2d") else f"acc_{v.name}"

    def apply(self, op, index):
        """An elementwise op on its operands' values at the (broadcast) index, or an index
        map, or a random draw."""
        prim = REGISTRY[op.name]
        out_shape = op.out.shape
        if prim.index_map is not None:
            return prim.index_map(IndexMapper(self, op), index, **op.attr_dict)
        if prim.kind == "random":
            return L.Uniform(self.value(op.inputs[0], ()), linear(index, out_shape),
                             op.out.type.dtype)
        assert prim.kind == "elementwise", op
        args = tuple(self.value(v, broadcast_index(index, out_shape, v.shape))
                     for v in op.inputs)
        k = prim.divisor
        if k is not None and not op.inputs[k].type.dtype.is_floating_point:
            divisor = L.NonZero(args[k], self.site_number(L.Site(op.name, op.source)))
            args = args[:k] + (divisor,) + args[k + 1:]
        return L.Op(op.name, args, op.out.type.dtype)

    # ---- kernels -----------------------------------------------------------------------------------
    def stored_values(self, group) -> list:
        return [op.out for op in group.ops if op.out in self.buffer_of]

    def kernel_name(self, group) -> str:
        names = []
        for op in group.ops:
            if op.name not in names:
                names.append(op.name)
        return f"k{group.index}_" + "_".join(names[:4])

    def comment(self, group) -> list:
        from graphc.ir.text import format_op
        return [format_op(op) for op in group.ops]

    def io(self, group):
        reads, writes = [], self.stored_values(group)
        for op in group.ops:
            for v in self.fusion.sources(op):
                b = self.buffer_of.get(v)
                if b and b not in reads and self.fusion.group_of.get(v) is not group:
                    reads.append(b)
        return reads, [self.buffer_of[v] for v in writes]

    def lower_group(self, group):
        self.group = group
        if group.kind == "matmul":
            return self.lower_matmul(group)
        if group.kind == "scatter":
            return self.lower_scatter(group)
        if group.kind == "conv2d":
            return self.lower_conv(group)
        if group.kind == "collective":
            return self.lower_collective(group)
        return self.lower_loops(group)

    def lower_collective(self, group) -> L.Collective:
        """Start the all-reduce or broadcast of the operand's buffer (a contiguous copy
        when the operand is a view of part of one) into the result's; ``place_waits``
        adds its ``Wait``."""
        op = group.ops[0]
        x, out = op.inputs[0], op.out
        view = self.strided(x)
        if view is None or view[1] != contiguous_strides(x.shape) or view[2] != 0 or \
                self.buffers[view[0]].size != out.size:
            view = self.materialize(x)
        slot = sum(isinstance(k, L.Collective) for k in self.kernels)
        return L.Collective(self.kernel_name(group), op.name, op.attr_dict.get("op"),
                            op.attr_dict.get("src"), view[0], self.buffer_of[out], out.size,
                            out.type.dtype, slot, self.comment(group))

    def lower_loops(self, group):
        shape, axes = group.shape, group.axes
        par = [(f"p{d}", n) for d, n in enumerate(shape) if d not in axes]
        red = [(f"r{d}", n) for d, n in enumerate(shape) if d in axes]
        full = tuple(L.Var(f"r{d}") if d in axes else L.Var(f"p{d}") for d in range(len(shape)))
        kept_shape = tuple(n for d, n in enumerate(shape) if d not in axes)
        kept = tuple(L.Var(f"p{d}") for d, _ in enumerate(shape) if d not in axes)
        body = []
        for op in group.ops:
            if REGISTRY[op.name].kind == "reduction":
                body.append(self.reduce(op, full, red, shape))
            v = op.out
            if v not in self.buffer_of:
                continue
            if group.kind == "reduction" and math.prod(v.shape) != math.prod(shape):
                index = reshape_index(kept, kept_shape, v.shape)
                body.append(L.Store((), self.buffer_of[v], linear(index, v.shape),
                                    self.value(v, index)))
            else:
                index = reshape_index(full, shape, v.shape)
                body.append(L.Store(tuple(red), self.buffer_of[v], linear(index, v.shape),
                                    self.value(v, index)))
        reads, writes = self.io(group)
        return L.LoopKernel(self.kernel_name(group), tuple(par), body, reads, writes,
                            self.comment(group))

    def reduce(self, op, full, red, shape):
        x = op.inputs[0]
        value = self.value(x, full)
        dtype = op.out.type.dtype
        accumulation = REGISTRY[op.name].accumulation
        index = None
        if accumulation.is_arg:
            index = L.Var(red[0][0])
        else:
            dtype = accumulator_dtype(accumulation.kind, dtype)
            if value.dtype != dtype:
                value = L.Op("cast", (value,), dtype)
        return L.Reduce(tuple(red), (L.Accumulator(self.acc_name(op.out), accumulation.kind,
                                                   value, dtype, index),))

    def lower_conv(self, group):
        """A convolution as a matrix product: weight (O x C*KH*KW) times the im2col
        columns of the input, so it runs on the matmul kernel (packed, register-tiled).
        Its weight gradient is a convolution too (its input gradient a matmul, see
        ``graphc.ops.contraction``), so all of a training step's products take this
        path.  Per sample (out[n] = weight @ cols[n], O x P*Q, NCHW as it comes, with
        the group's bias and activation as the product's epilogue) unless a sample's
        output plane is small (P*Q < ``MERGED_PLANE``: a weight gradient, whose P x Q is
        the kernel's, or a late feature map), where that product would be too narrow to
        fill the register tile: then one product over all samples (``lower_conv_merged``)."""
        conv = group.ops[0]
        x, w = conv.inputs
        n, o, p, q = conv.out.shape
        if p * q < MERGED_PLANE and n > 1:
            return self.lower_conv_merged(group)
        depth = math.prod(w.shape[1:])
        index = (L.Var("b0"), L.Var("i"), iop("floordiv", L.Var("j"), L.IConst(q)),
                 iop("mod", L.Var("j"), L.IConst(q)))
        stores = [(self.buffer_of[v], self.value(v, index)) for v in self.stored_values(group)]
        weight = self.conv_weight(w)
        cols = self.conv_input(conv)
        # What the kernel reads: its operands and the epilogue's loads, not the buffers
        # the convolution's input is computed from (the im2col kernel read those).
        reads = [weight.buffer, cols.buffer]
        for _, value in stores:
            for load in _loads(value):
                if load.buffer not in reads:
                    reads.append(load.buffer)
        writes = [buffer for buffer, _ in stores]
        return L.MatmulKernel(self.kernel_name(group), (n,), o, p * q, depth, weight, cols,
                              conv.out.type.dtype, stores, reads, writes, self.comment(group))

    def lower_conv_merged(self, group):
        """One product over all samples: product (O x N*P*Q) = weight @ cols (C*KH*KW x
        N*P*Q) into a temporary, then a loop kernel that stores the group's values (the
        convolution read from the product, transposed to NCHW; bias, activation) ."""
        conv = group.ops[0]
        x, w = conv.inputs
        n, o, p, q = conv.out.shape
        dtype = conv.out.type.dtype
        weight = self.conv_weight(w)
        cols = self.im2col(conv, merged=True)
        name = f"tmp_{conv.out.name}_product"
        self.buffers[name] = L.BufferInfo(name, dtype, n * o * p * q, "temp")
        self.kernels.append(L.MatmulKernel(
            f"{self.kernel_name(group)}_product", (), o, n * p * q, math.prod(w.shape[1:]),
            weight, cols, dtype, [(name, L.Acc("acc", dtype))], [weight.buffer, cols.buffer],
            [name], [f"product of conv2d %{conv.out.name}, (O, N, P, Q)"]))
        self.products[conv.out] = lambda index: L.Load(
            name, linear((index[1], index[0], index[2], index[3]), (o, n, p, q)), dtype)
        out_index = tuple(L.Var(v) for v in ("n", "o", "p", "q"))
        body = [L.Store((), self.buffer_of[v], linear(out_index, v.shape),
                        self.value(v, out_index)) for v in self.stored_values(group)]
        reads = sorted({load.buffer for s in body for load in _loads(s.value)})
        return L.LoopKernel(self.kernel_name(group), tuple(zip(("n", "o", "p", "q"),
                                                                conv.out.shape)),
                            body, reads, [s.buffer for s in body], self.comment(group))

    def conv_weight(self, w: Value) -> L.Operand:
        """The weight (O, C, KH, KW) as the product's A (O x C*KH*KW), the same matrix
        for every sample: a strided view when (C, KH, KW) are one stride apart, else a
        contiguous copy (a flipped weight of an input gradient)."""
        view = self.strided(w)
        if view is None or _merged_stride(w.shape[1:], view[1][1:]) is None:
            view = self.materialize(w)
        buffer, strides, offset = view
        return L.Operand(buffer, (0,), strides[0], _merged_stride(w.shape[1:], strides[1:]),
                         offset)

    def conv_input(self, conv) -> L.Operand:
        """The product's B for each sample (C*KH*KW x P*Q): the input itself when the
        kernel is 1x1 with stride 1 and the input a strided view whose (H, W) are one
        stride apart, else the im2col buffer."""
        x, w = conv.inputs
        n, c, h, wd = x.shape
        _, _, p, q = conv.out.shape
        stride = conv.attr_dict["stride"]
        if w.shape[2:] == (1, 1) and tuple(stride) == (1, 1):
            view = self.strided(x)
            if view is not None:
                buffer, strides, offset = view
                spatial = _merged_stride((h, wd), strides[2:])
                if spatial is not None:
                    return L.Operand(buffer, (strides[0] if n > 1 else 0,), strides[1],
                                     spatial, offset)
        return self.im2col(conv)

    def im2col(self, conv, merged: bool = False) -> L.Operand:
        """A loop kernel storing cols[n, (c, kh, kw), (p, q)] = x[n, c, p * stride +
        kh * dilation, q * stride + kw * dilation] into a temporary (``merged``: laid
        out as cols[(c, kh, kw), (n, p, q)], one matrix for all samples).  It reads x through
        its index maps when that is one load (a view, a padding: no kernel of their own),
        else from a contiguous copy of x (a pooling's gather: once per element, not once
        per window that holds it)."""
        x, w = conv.inputs
        _, c, kh, kw = w.shape
        n, _, p, q = conv.out.shape
        stride, dilation = conv.attr_dict["stride"], conv.attr_dict["dilation"]
        name = f"tmp_{conv.out.name}_cols"
        depth = c * kh * kw
        shape = (n, depth, p, q)
        self.buffers[name] = L.BufferInfo(name, x.type.dtype, math.prod(shape), "temp")
        # One loop over the (c, kh, kw) rows: LLVM unrolls short constant loops, and a
        # six-deep nest of them took longer to compile than the matmul kernel.
        loop = tuple(L.Var(v) for v in ("n", "r", "p", "q"))
        vn, vr, vp, vq = loop
        vc, vkh, vkw = unravel(vr, (c, kh, kw))
        at = (vn, vc,
              iop("add", iop("mul", vp, L.IConst(stride[0])),
                  iop("mul", vkh, L.IConst(dilation[0]))),
              iop("add", iop("mul", vq, L.IConst(stride[1])),
                  iop("mul", vkw, L.IConst(dilation[1]))))
        group, self.group = self.group, None
        value = self.value(x, at)
        self.group = group
        if len(list(_loads(value))) > 1:
            source, strides, offset = self.buffered(x)
            address = L.IConst(offset)
            for i, s in zip(at, strides):
                address = iop("add", address, iop("mul", i, L.IConst(s)))
            value = L.Load(source, address, x.type.dtype)
        reads = sorted({e.buffer for e in _loads(value)})
        # Loops in the per-sample order either way: it reads x's planes in order.
        at = linear((vr, vn, vp, vq), (depth, n, p, q)) if merged else linear(loop, shape)
        self.kernels.append(L.LoopKernel(
            f"im2col_{conv.out.name}", tuple((v.name, d) for v, d in zip(loop, shape)),
            [L.Store((), name, at, value)], reads, [name],
            [f"im2col of %{x.name} for conv2d %{conv.out.name}"]))
        if merged:
            return L.Operand(name, (), n * p * q, 1, 0)
        return L.Operand(name, (depth * p * q if n > 1 else 0,), p * q, 1, 0)

    def lower_scatter(self, group):
        op = group.ops[0]
        x, idx, src = op.inputs
        axis = op.attr_dict["axis"]
        out = self.buffer_of[op.out]
        xs = tuple(L.Var(f"x{d}") for d in range(len(x.shape)))
        copy = L.Store(tuple((f"x{d}", n) for d, n in enumerate(x.shape)), out,
                       linear(xs, x.shape), self.value(x, xs))
        if op.name == "index_add":
            loop_shape = src.shape
            s = tuple(L.Var(f"s{d}") for d in range(len(loop_shape)))
            j = self.checked(op, self.value(idx, (s[axis],)), x.shape[axis])
        else:
            loop_shape = idx.shape
            s = tuple(L.Var(f"s{d}") for d in range(len(loop_shape)))
            j = self.checked(op, self.value(idx, s), x.shape[axis])
        target = s[:axis] + (j,) + s[axis + 1:]
        add = L.Store(tuple((f"s{d}", n) for d, n in enumerate(loop_shape)), out,
                      linear(target, x.shape), self.value(src, s), accumulate=True)
        reads, writes = self.io(group)
        return L.LoopKernel(self.kernel_name(group), (), [copy, add], reads, writes,
                            self.comment(group), serial=True)

    def lower_matmul(self, group):
        mm = group.ops[0]
        a, b = mm.inputs
        out_shape = mm.out.shape
        batch = out_shape[:-2]
        m, n = out_shape[-2:]
        k = a.shape[-1]
        index = tuple(L.Var(f"b{d}") for d in range(len(batch))) + (L.Var("i"), L.Var("j"))
        stores = [(self.buffer_of[v], self.value(v, index)) for v in self.stored_values(group)]
        reads, writes = self.io(group)
        ops = [self.operand(a, batch), self.operand(b, batch)]
        for operand in ops:
            if operand.buffer not in reads:
                reads.append(operand.buffer)
        return L.MatmulKernel(self.kernel_name(group), batch, m, n, k, ops[0], ops[1],
                              mm.out.type.dtype, stores, reads, writes, self.comment(group))

    def operand(self, v: Value, batch) -> L.Operand:
        """A strided view of v's buffer, following views; a copy kernel when the chain
        of index maps is not a strided view."""
        view = self.strided(v)
        if view is None:
            view = self.materialize(v)
        buffer, strides, offset = view
        lead = len(batch) - (len(v.shape) - 2)
        batch_strides = tuple(0 if d < lead or v.shape[d - lead] == 1 else strides[d - lead]
                              for d in range(len(batch)))
        return L.Operand(buffer, batch_strides, strides[-2], strides[-1], offset)

    def strided(self, v: Value):
        """(buffer, strides, offset) when v is a strided view of a buffer, else None."""
        if v in self.buffer_of and (self.fusion.group_of.get(v) is not self.group):
            return self.buffer_of[v], contiguous_strides(v.shape), 0
        op = self.producer.get(v)
        if op is None or v not in self.fusion.inline:
            return None
        base = self.strided(op.inputs[0])
        if base is None:
            return None
        buffer, strides, offset = base
        x = op.inputs[0]
        attrs = op.attr_dict
        if op.name == "permute":
            return buffer, tuple(strides[p] for p in attrs["perm"]), offset
        if op.name == "expand":
            lead = len(v.shape) - len(x.shape)
            return buffer, tuple(0 if d < lead or x.shape[d - lead] == 1 else strides[d - lead]
                                 for d in range(len(v.shape))), offset
        if op.name == "slice":
            return buffer, tuple(s * st for s, st in zip(strides, attrs["steps"])), \
                offset + sum(s * a for s, a in zip(strides, attrs["starts"]))
        if op.name == "reshape":
            kept = [(d, s) for d, s in zip(x.shape, strides) if d != 1]
            if [d for d, _ in kept] == [d for d in v.shape if d != 1]:
                it = iter(s for _, s in kept)
                return buffer, tuple(next(it) if d != 1 else 0 for d in v.shape), offset
            if strides == contiguous_strides(x.shape):
                return buffer, contiguous_strides(v.shape), offset
        return None

    def buffered(self, v: Value):
        """(buffer, strides, offset) of v: a strided view of a buffer, else a permutation
        of a contiguous copy of what v permutes (a weight gradient's transposed input
        shares the copy the forward made), else a contiguous copy of v."""
        view = self.strided(v)
        if view is not None:
            return view
        op = self.producer.get(v)
        if op is not None and op.name == "permute" and v in self.fusion.inline:
            buffer, strides, offset = self.buffered(op.inputs[0])
            return buffer, tuple(strides[p] for p in op.attr_dict["perm"]), offset
        return self.materialize(v)

    def materialize(self, v: Value):
        """A copy kernel that stores v contiguously (a matmul operand that no strided
        view can express), made once however many operands read v (``c @ c``)."""
        name = f"tmp_{v.name}_copy"
        if name in self.buffers:
            return name, contiguous_strides(v.shape), 0
        self.buffers[name] = L.BufferInfo(name, v.type.dtype, math.prod(v.shape), "temp")
        index = tuple(L.Var(f"p{d}") for d in range(len(v.shape)))
        group, self.group = self.group, None
        value = self.value(v, index)
        self.group = group
        reads = sorted({e.buffer for e in _loads(value)})
        self.kernels.append(L.LoopKernel(
            f"copy_{v.name}", tuple((f"p{d}", n) for d, n in enumerate(v.shape)),
            [L.Store((), name, linear(index, v.shape), value)], reads, [name],
            [f"copy of %{v.name} for a matmul operand"]))
        return name, contiguous_strides(v.shape), 0

    def run(self) -> L.Program:
        self.assign_buffers()
        for group in self.fusion.groups:
            self.kernels.append(self.lower_group(group))
        self.kernels = place_waits(self.kernels)
        inputs = [self.buffer_of[v] for v in self.graph.inputs]
        outputs = [self.buffer_of[v] for v in self.graph.outputs]
        program = L.Program(self.name, self.buffers, self.kernels, inputs, outputs,
                            self.constants, sites=list(self.sites))
        return plan_memory(program)


def place_waits(kernels: list) -> list:
    """``kernels`` with each ``Collective``'s ``Wait`` just before the first kernel that
    reads its result or writes either of its buffers (or at the end), so the kernels in
    between overlap the communication."""
    out, flying = [], []
    for kernel in kernels:
        for c in [c for c in flying if c.recv in kernel.inputs
                  or {c.send, c.recv} & set(kernel.outputs)]:
            out.append(L.Wait(f"wait_{c.name}", c))
            flying.remove(c)
        out.append(kernel)
        if isinstance(kernel, L.Collective):
            flying.append(kernel)
    return out + [L.Wait(f"wait_{c.name}", c) for c in flying]


def _merged_stride(shape, strides):
    """The one stride of dims ``shape`` (row-major, with ``strides``) read as a single
    flat dim, or None when they are not evenly spaced: a reshape of a strided view."""
    dims = [(d, s) for d, s in zip(shape, strides) if d != 1]
    if not dims:
        return 1
    for (_, outer), (size, inner) in zip(dims, dims[1:]):
        if outer != size * inner:
            return None
    return dims[-1][1]


def _loads(expr):
    """Every Load inside a scalar expression tree."""
    if isinstance(expr, L.Load):
        yield expr
        yield from _loads(expr.offset)
    for attr in ("args", "a", "b", "value", "index", "seed", "counter", "offset"):
        child = getattr(expr, attr, None)
        if isinstance(child, tuple):
            for c in child:
                yield from _loads(c)
        elif child is not None and not isinstance(child, (int, float, bool, str)) \
                and not isinstance(expr, L.Load):
            yield from _loads(child)


def lower(graph: Graph, fuse_ops: bool = True, name: str = "program"):
    """Fuse and lower ``graph``; returns (loops.Program, Fusion)."""
    fusion = fuse(graph, fuse_ops)
    return Lowering(fusion, name).run(), fusion

