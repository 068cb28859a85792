"""graphc's IR -> ONNX nodes: one emitter per primitive of the registry (``graphc.ops``).

Each emitter reproduces the primitive's numpy reference with standard ONNX operators.
Where onnxruntime has no kernel for a dtype (``Add`` on int16, ``Where`` on bool,
``Erf`` on float64...), the emitter computes in a wider dtype and casts back, which is
what graphc itself does for float16/bfloat16 (compute in float32, round once) and gives
the same wrapping for narrow integers.  Where ONNX's operator differs from graphc's
semantics (``ReduceMax`` skips NaN, ``Sign(nan)`` is NaN, ``Mod`` on floats), a few
extra nodes restore graphc's answer.

Shapes may hold a :class:`Dim`, a multiple of the one dynamic dimension of the export;
attributes that hold one (``reshape``'s shape, ``slice``'s bounds) become int64 tensors
computed from the input's runtime shape.  Importing this module imports ``onnx``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from onnx import helper, numpy_helper

from graphc import dtypes
from graphc.onnx.errors import UnsupportedOperatorError

INT64_MIN = -(2 ** 63)
FLOATS = (dtypes.float32, dtypes.float64)
NUMBERS = FLOATS + (dtypes.int32, dtypes.int64)


@dataclass(frozen=True)
class Dim:
    """``factor`` times the export's dynamic dimension (the batch size, usually)."""
    factor: int

    def __str__(self):
        return f"{self.factor}*N" if self.factor != 1 else "N"


def onnx_dtype(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(dtype.np)


class Emitter:
    """The nodes and initializers of one ONNX graph under construction.

    ``dynamic`` is (graph input name, axis) of the dynamic dimension, or None."""

    def __init__(self, opset: int, dynamic=None):
        self.opset = opset
        self.dynamic = dynamic
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0
        self._constants: dict = {}
        self._dynamic_size = None

    def fresh(self, hint="t") -> str:
        self._count += 1
        return f"{hint}~{self._count}"

    def node(self, op_type, inputs, **attrs) -> str:
        out = self.fresh(op_type)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def initializer(self, array, name=None) -> str:
        """A tensor stored in the model; equal constants are stored once."""
        array = np.array(array, order="C")   # (ascontiguousarray makes a 0-d array 1-d)
        key = (array.dtype.str, array.shape, array.tobytes())
        if name is None and key in self._constants:
            return self._constants[key]
        name = name or self.fresh("const")
        self.initializers.append(numpy_helper.from_array(array, name))
        self._constants.setdefault(key, name)
        return name

    def scalar(self, value, dtype) -> str:
        return self.initializer(np.array(value, dtype.np))

    def ints(self, values) -> str:
        """A 1-D int64 tensor of ``values``; a :class:`Dim` entry is computed from the
        dynamic input's shape when the model runs."""
        values = list(values)
        if not any(isinstance(v, Dim) for v in values):
            return self.initializer(np.array(values, np.int64))
        pieces = []
        for v in values:
            if isinstance(v, Dim):
                n = self.dynamic_size()
                pieces.append(n if v.factor == 1 else
                              self.node("Mul", [n, self.initializer(np.array([v.factor]))]))
            else:
                pieces.append(self.initializer(np.array([v], np.int64)))
        return self.node("Concat", pieces, axis=0)

    def dynamic_size(self) -> str:
        """The dynamic dimension's size at run time, as a 1-element int64 tensor."""
        if self._dynamic_size is None:
            name, axis = self.dynamic
            self._dynamic_size = self.node("Shape", [name], start=axis, end=axis + 1)
        return self._dynamic_size

    def cast(self, x: str, frm, to) -> str:
        """graphc's ``cast`` (``ops.elementwise._cast``): float64 reaches float16 and
        bfloat16 through float32, floats reach integers narrower than 32 bits through
        int64 (wrapping, as PyTorch)."""
        if frm == to:
            return x
        if frm == dtypes.float64 and to in dtypes.HALF:
            x, frm = self.node("Cast", [x], to=onnx_dtype(dtypes.float32)), dtypes.float32
        elif frm.is_floating_point and to.category == 1 and to.itemsize < 4:
            x, frm = self.node("Cast", [x], to=onnx_dtype(dtypes.int64)), dtypes.int64
        return self.node("Cast", [x], to=onnx_dtype(to))

    def reduce(self, op_type, x, axes, keepdim) -> str:
        """A Reduce* node: axes are an input from opset 13 (ReduceSum) or 18 (the
        others), an attribute before."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.node(op_type, [x, self.ints(axes)], keepdims=int(keepdim))
        return self.node(op_type, [x], axes=list(axes), keepdims=int(keepdim))


def compute_dtype(dtype, natives):
    """The dtype an op computes in: ``dtype`` when onnxruntime has the kernel, else a
    wider one that gives the same result once cast back (float32 for half types and
    the float64 ops onnxruntime lacks; int32 or int64 for bool and narrow integers)."""
    if dtype in natives:
        return dtype
    if dtype.is_floating_point:
        return dtypes.float32
    return dtypes.int32 if dtypes.int32 in natives else natives[-1]


# ---- elementwise ------------------------------------------------------------------------
# name -> (dtypes onnxruntime computes it in, fn(e, inputs in the compute dtype, compute
# dtype) -> result, in the compute dtype or bool for comparisons)
ELEMENTWISE: dict = {}


def elementwise(name, natives=NUMBERS):
    def register(fn):
        ELEMENTWISE[name] = (natives, fn)
        return fn
    return register


def _simple(name, op_type, natives=NUMBERS):
    elementwise(name, natives)(lambda e, xs, c: e.node(op_type, xs))


for _name, _op in [("neg", "Neg"), ("abs", "Abs"), ("add", "Add"), ("sub", "Sub"),
                   ("mul", "Mul"), ("maximum", "Max"), ("minimum", "Min"),
                   ("eq", "Equal"), ("lt", "Less"), ("le", "LessOrEqual"),
                   ("gt", "Greater"), ("ge", "GreaterOrEqual")]:
    _simple(_name, _op)
for _name, _op in [("exp", "Exp"), ("log", "Log"), ("sqrt", "Sqrt"), ("sin", "Sin"),
                   ("cos", "Cos"), ("tanh", "Tanh"), ("sigmoid", "Sigmoid"),
                   ("floor", "Floor"), ("div", "Div")]:
    _simple(_name, _op, FLOATS)
# onnxruntime has Erf in float32 only: float64 is computed in float32.
_simple("erf", "Erf", (dtypes.float32,))
for _name, _op in [("logical_not", "Not"), ("logical_and", "And"), ("logical_or", "Or")]:
    _simple(_name, _op, (dtypes.bool_,))


@elementwise("ne")
def _ne(e, xs, c):
    return e.node("Not", [e.node("Equal", xs)])


@elementwise("rsqrt", FLOATS)
def _rsqrt(e, xs, c):
    return e.node("Reciprocal", [e.node("Sqrt", xs)])


def _where(e, cond, a, b):
    return e.node("Where", [cond, a, b])


@elementwise("sign")
def _sign(e, xs, c):
    """PyTorch's sign is 0 at NaN; ONNX's is NaN."""
    s = e.node("Sign", xs)
    if not c.is_floating_point:
        return s
    return _where(e, e.node("IsNaN", xs), e.scalar(0, c), s)


def log1p(e, x, c):
    """log(1 + x) accurate near 0 (ONNX has no Log1p): x * log(u) / (u - 1) with
    u = 1 + x (Goldberg's trick), x itself where u rounds to 1, inf at inf."""
    u = e.node("Add", [x, e.scalar(1, c)])
    ratio = e.node("Div", [e.node("Mul", [x, e.node("Log", [u])]),
                           e.node("Sub", [u, e.scalar(1, c)])])
    near = _where(e, e.node("Equal", [u, e.scalar(1, c)]), x, ratio)
    return _where(e, e.node("IsInf", [u]), u, near)


elementwise("log1p", FLOATS)(lambda e, xs, c: log1p(e, xs[0], c))


@elementwise("expm1", FLOATS)
def _expm1(e, xs, c):
    """exp(x) - 1 accurate near 0 (ONNX has no Expm1): (u - 1) * x / log(u) with
    u = exp(x) (Kahan), x where u rounds to 1, -1 where u - 1 does, inf at inf."""
    x, = xs
    u = e.node("Exp", [x])
    um1 = e.node("Sub", [u, e.scalar(1, c)])
    r = e.node("Mul", [um1, e.node("Div", [x, e.node("Log", [u])])])
    r = _where(e, e.node("Equal", [u, e.scalar(1, c)]), x, r)
    r = _where(e, e.node("Equal", [um1, e.scalar(-1, c)]), e.scalar(-1, c), r)
    return _where(e, e.node("IsInf", [u]), u, r)


def _safe_divisor(e, y, c):
    """An integer divisor with 0 replaced by 1: graphc raises on integer division by
    zero, ONNX cannot raise, and onnxruntime's integer Div would crash the process."""
    return _where(e, e.node("Equal", [y, e.scalar(0, c)]), e.scalar(1, c), y)


def _float_mod(e, x, y, c):
    """graphc's floored remainder on floats (``ops.elementwise._fmod_sign_fix``):
    fmod, plus y once where the signs differ; returns (remainder, fmod, fix)."""
    mod = e.node("Mod", [x, y], fmod=1)
    zero = e.scalar(0, c)
    differ = e.node("Xor", [e.node("Less", [y, zero]), e.node("Less", [mod, zero])])
    fix = e.node("And", [e.node("Not", [e.node("Equal", [mod, zero])]), differ])
    return _where(e, fix, e.node("Add", [mod, y]), mod), mod, fix


@elementwise("remainder")
def _remainder(e, xs, c):
    x, y = xs
    if c.is_floating_point:
        return _float_mod(e, x, y, c)[0]
    return e.node("Mod", [x, _safe_divisor(e, y, c)], fmod=0)   # integer Mod is floored


@elementwise("floor_divide")
def _floor_divide(e, xs, c):
    """graphc's floored quotient (``ops.elementwise._floor_divide``)."""
    x, y = xs
    if not c.is_floating_point:
        # x - floored remainder is a multiple of y, so the truncating Div is exact.
        y = _safe_divisor(e, y, c)
        return e.node("Div", [e.node("Sub", [x, e.node("Mod", [x, y], fmod=0)]), y])
    _, mod, fix = _float_mod(e, x, y, c)
    div = e.node("Sub", [e.node("Div", [e.node("Sub", [x, mod]), y]),
                         e.node("Cast", [fix], to=onnx_dtype(c))])
    floored = e.node("Floor", [div])
    up = e.node("Greater", [e.node("Sub", [div, floored]), e.scalar(0.5, c)])
    floored = e.node("Add", [floored, e.node("Cast", [up], to=onnx_dtype(c))])
    quotient = e.node("Div", [x, y])
    signed_zero = e.node("Mul", [quotient, e.scalar(0, c)])
    q = _where(e, e.node("Equal", [div, e.scalar(0, c)]), signed_zero, floored)
    return _where(e, e.node("Equal", [y, e.scalar(0, c)]), quotient, q)


@elementwise("pow")
def _pow(e, xs, c):
    """Integers to a negative power give the truncated quotient, as graphc's
    ``_pow_impl``: 1 for x == 1, +-1 for x == -1, else 0."""
    x, y = xs
    if c.is_floating_point:
        return e.node("Pow", xs)
    zero, one = e.scalar(0, c), e.scalar(1, c)
    negative = e.node("Less", [y, zero])
    odd = e.node("Equal", [e.node("Mod", [y, e.scalar(2, c)], fmod=0), one])
    minus_one = _where(e, odd, e.scalar(-1, c), one)
    inverse = _where(e, e.node("Equal", [x, one]), one,
                     _where(e, e.node("Equal", [x, e.scalar(-1, c)]), minus_one, zero))
    power = e.node("Pow", [x, _where(e, negative, zero, y)])
    return _where(e, negative, inverse, power)


# onnxruntime has Atan in float32 only: float64 is computed in float32.
@elementwise("atan2", (dtypes.float32,))
def _atan2(e, xs, c):
    """atan(y / x) moved to the right quadrant; y = -0.0 with x < 0 gives -pi, as
    numpy.  atan2(+-0, +-0) is 0 (numpy's depends on the signs of the zeros)."""
    y, x = xs
    zero = e.scalar(0, c)
    a = e.node("Atan", [e.node("Div", [y, x])])
    # y >= +0: its reciprocal tells +0 (+inf) from -0 (-inf).
    upper = e.node("Greater", [e.node("Reciprocal", [y]), zero])
    upper = e.node("Or", [e.node("Greater", [y, zero]), upper])
    left = _where(e, upper, e.node("Add", [a, e.scalar(math.pi, c)]),
                  e.node("Sub", [a, e.scalar(math.pi, c)]))
    axis = _where(e, e.node("Greater", [y, zero]), e.scalar(math.pi / 2, c),
                  _where(e, e.node("Less", [y, zero]), e.scalar(-math.pi / 2, c), zero))
    return _where(e, e.node("Greater", [x, zero]), a,
                  _where(e, e.node("Less", [x, zero]), left, axis))


@elementwise("binary_cross_entropy", FLOATS)
def _bce(e, xs, c):
    """(y - 1) * max(log1p(-p), -100) - y * max(log(p), -100), as graphc's ``_bce``."""
    p, y = xs
    floor = e.scalar(-100, c)
    low = e.node("Max", [log1p(e, e.node("Neg", [p]), c), floor])
    high = e.node("Max", [e.node("Log", [p]), floor])
    return e.node("Sub", [e.node("Mul", [e.node("Sub", [y, e.scalar(1, c)]), low]),
                          e.node("Mul", [y, high])])


@elementwise("where")
def _where_op(e, xs, c):
    return e.node("Where", xs)


def emit_elementwise(e, op, names, shapes) -> str:
    """Widen the data operands to the compute dtype, run the emitter, cast back."""
    if op.name == "cast":
        return e.cast(names[0], op.inputs[0].type.dtype, op.attr_dict["dtype"])
    natives, fn = ELEMENTWISE[op.name]
    dtype = op.inputs[-1].type.dtype           # where's condition is input 0
    c = compute_dtype(dtype, natives)
    xs = [n if (op.name == "where" and k == 0) else e.cast(n, dtype, c)
          for k, n in enumerate(names)]
    result = fn(e, xs, c)
    out = op.out.type.dtype
    return e.cast(result, c, out) if out == dtype else result


# ---- reductions -------------------------------------------------------------------------
def _nan_fix(e, x, axes, keepdim, result, nan_value):
    """``nan_value`` where the reduced line holds a NaN (numpy's max/argmax see NaN;
    onnxruntime's ReduceMax and ArgMax skip it)."""
    has_nan = e.reduce("ReduceMax", e.node("Cast", [e.node("IsNaN", [x])],
                                           to=onnx_dtype(dtypes.int32)), axes, keepdim)
    return _where(e, e.node("Cast", [has_nan], to=onnx_dtype(dtypes.bool_)), nan_value,
                  result)


def emit_reduction(e, op, names, shapes) -> str:
    (x,), dtype, out = names, op.inputs[0].type.dtype, op.out.type.dtype
    attrs = op.attr_dict
    if op.name in ("argmax", "argmin"):
        axis, keepdim = attrs["axis"], attrs["keepdim"]
        c = compute_dtype(dtype, NUMBERS)
        xc = e.cast(x, dtype, c)
        result = e.node("ArgMax" if op.name == "argmax" else "ArgMin", [xc], axis=axis,
                        keepdims=int(keepdim), select_last_index=0)
        if c.is_floating_point:      # numpy: the first NaN
            first_nan = e.node("ArgMax", [e.node("Cast", [e.node("IsNaN", [xc])],
                                                 to=onnx_dtype(dtypes.int32))],
                               axis=axis, keepdims=int(keepdim), select_last_index=0)
            result = _nan_fix(e, xc, (axis,), keepdim, result, first_nan)
        return result
    axes, keepdim = attrs["axes"], attrs["keepdim"]
    if not axes:                     # numpy reduces over no axis: the input itself
        return e.cast(x, dtype, out)
    if op.name == "sum":
        # graphc accumulates float32 in float64 and integers in int64 (``ops.reduce``).
        c = dtypes.float64 if dtype.is_floating_point else dtypes.int64
        return e.cast(e.reduce("ReduceSum", e.cast(x, dtype, c), axes, keepdim), c, out)
    if op.name == "prod":
        c = compute_dtype(dtype, FLOATS) if dtype.is_floating_point else dtypes.int64
        return e.cast(e.reduce("ReduceProd", e.cast(x, dtype, c), axes, keepdim), c, out)
    c = compute_dtype(dtype, NUMBERS)
    xc = e.cast(x, dtype, c)
    result = e.reduce("ReduceMax" if op.name == "amax" else "ReduceMin", xc, axes, keepdim)
    if c.is_floating_point:
        result = _nan_fix(e, xc, axes, keepdim, result, e.scalar(np.nan, c))
    return e.cast(result, c, out)


# ---- movement ---------------------------------------------------------------------------
def _slice(e, x, shape, starts, stops, steps) -> str:
    """ONNX Slice over the dimensions not taken whole; a stop of -1 (graphc: before
    index 0, with a negative step) is INT64_MIN, which Slice clamps to the same."""
    axes = [a for a, (d, b, s, t) in enumerate(zip(shape, starts, stops, steps))
            if (b, s, t) != (0, d, 1)]
    if not axes:
        return e.node("Identity", [x])
    return e.node("Slice", [x, e.ints([starts[a] for a in axes]),
                            e.ints([INT64_MIN if stops[a] == -1 else stops[a] for a in axes]),
                            e.ints(axes), e.ints([steps[a] for a in axes])])


def _pad(e, x, shape, widths, value, dtype) -> str:
    c = compute_dtype(dtype, NUMBERS)      # onnxruntime's Pad lacks int16 and halves
    x = e.cast(x, dtype, c)
    shape = list(shape)
    for axis, (d, (_, _, inner)) in enumerate(zip(shape, widths)):
        if inner and d:
            # Interior padding (ONNX has none): give each element `inner` followers
            # (a new axis padded at its end), merge, drop the last element's.
            if isinstance(d, Dim):
                raise UnsupportedOperatorError(
                    "pad: interior padding of the dynamic dimension cannot be exported")
            spread = e.node("Reshape", [x, e.ints(shape[:axis + 1] + [1] + shape[axis + 1:])])
            pads = [0] * (2 * (len(shape) + 1))
            pads[len(shape) + 1 + axis + 1] = inner
            spread = e.node("Pad", [spread, e.ints(pads), e.scalar(value, c)])
            merged = shape[:axis] + [d * (inner + 1)] + shape[axis + 1:]
            x = e.node("Reshape", [spread, e.ints(merged)])
            shape[axis] = (d - 1) * (inner + 1) + 1
            x = _slice(e, x, merged, [0] * len(shape), shape, [1] * len(shape))
    pads = [lo for lo, _, _ in widths] + [hi for _, hi, _ in widths]
    if any(pads):
        x = e.node("Pad", [x, e.ints(pads), e.scalar(value, c)], mode="constant")
    return e.cast(x, c, dtype)


def _scatter_add(e, x, idx, src, axis, dtype) -> str:
    """ScatterElements with reduction="add" (onnxruntime: numbers, no halves)."""
    c = compute_dtype(dtype, NUMBERS)
    out = e.node("ScatterElements", [e.cast(x, dtype, c), idx, e.cast(src, dtype, c)],
                 axis=axis, reduction="add")
    return e.cast(out, c, dtype)


def emit_movement(e, op, names, shapes) -> str:
    attrs, dtype = op.attr_dict, op.out.type.dtype
    x = names[0]
    if op.name == "reshape":
        return e.node("Reshape", [x, e.ints(attrs["shape"])], allowzero=1)
    if op.name == "permute":
        return e.node("Transpose", [x], perm=list(attrs["perm"]))
    if op.name == "expand":
        return e.node("Expand", [x, e.ints(attrs["shape"])])
    if op.name == "slice":
        return _slice(e, x, shapes[0], attrs["starts"], attrs["stops"], attrs["steps"])
    if op.name == "pad":
        return _pad(e, x, shapes[0], attrs["widths"], attrs["value"], dtype)
    if op.name == "concat":
        return e.node("Concat", names, axis=attrs["axis"])
    axis = attrs["axis"]
    if op.name == "take":
        return e.node("Gather", names, axis=axis)
    if op.name == "gather":
        # graphc's index may be smaller than the input outside `axis`; ONNX's may not.
        whole = list(shapes[0])
        smaller = [d if a == axis else shapes[1][a] for a, d in enumerate(whole)]
        if smaller != whole:
            x = _slice(e, x, whole, [0] * len(whole), smaller, [1] * len(whole))
        return e.node("GatherElements", [x, names[1]], axis=axis)
    if op.name == "index_add":
        src_shape = shapes[2]
        line = [1] * len(src_shape)
        line[axis] = src_shape[axis]
        idx = e.node("Expand", [e.node("Reshape", [names[1], e.ints(line)]),
                                e.ints(src_shape)])
        return _scatter_add(e, x, idx, names[2], axis, dtype)
    if op.name == "scatter_add":
        idx_shape, src_shape = shapes[1], shapes[2]
        src = names[2]
        if list(idx_shape) != list(src_shape):
            src = _slice(e, src, src_shape, [0] * len(src_shape), idx_shape,
                         [1] * len(src_shape))
        return _scatter_add(e, x, names[1], src, axis, dtype)
    raise AssertionError(op.name)


# ---- contractions -----------------------------------------------------------------------
def emit_contraction(e, op, names, shapes) -> str:
    if op.name == "matmul":
        return e.node("MatMul", names)
    attrs = op.attr_dict
    if op.out.type.dtype == dtypes.float32:
        return e.node("Conv", names, strides=list(attrs["stride"]),
                      dilations=list(attrs["dilation"]), pads=[0, 0, 0, 0])
    return _conv2d_im2col(e, names, shapes, attrs["stride"], attrs["dilation"])


def _conv2d_im2col(e, names, shapes, stride, dilation) -> str:
    """float64 (onnxruntime's Conv is float32 only): one strided Slice per kernel
    offset, stacked into columns, and one MatMul with the weight."""
    x, w = names
    (_, c, h, wd), (o, _, kh, kw) = shapes
    oh, ow = ((size - d * (k - 1) - 1) // s + 1
              for size, k, s, d in zip((h, wd), (kh, kw), stride, dilation))
    planes = []
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            plane = e.node("Slice", [x, e.ints([top, left]),
                                     e.ints([top + (oh - 1) * stride[0] + 1,
                                             left + (ow - 1) * stride[1] + 1]),
                                     e.ints([2, 3]), e.ints(stride)])
            planes.append(e.node("Unsqueeze", [plane, e.ints([2])]))
    # (N, C, KH*KW, OH, OW) -> (N, C*KH*KW, OH*OW); 0 copies the batch size.
    cols = e.node("Reshape", [e.node("Concat", planes, axis=2),
                              e.ints([0, c * kh * kw, oh * ow])])
    out = e.node("MatMul", [e.node("Reshape", [w, e.ints([o, c * kh * kw])]), cols])
    return e.node("Reshape", [out, e.ints([0, o, oh, ow])])


# Random ops never get here: the export refuses a graph with a draw (its seed input has
# no ONNX counterpart).
EMITTERS = {"elementwise": emit_elementwise, "reduction": emit_reduction,
            "movement": emit_movement, "contraction": emit_contraction}
