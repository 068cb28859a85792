"""Dtypes and PyTorch's type-promotion rules.

A dtype is a small immutable record that knows its numpy dtype, its short IR spelling
(``f32``) and its category.  Promotion follows PyTorch: operands are split into
dimensioned tensors, zero-dim tensors and Python scalars; a lower priority group only
changes the result when it is of a higher *category* (bool < integer < floating).
Within a category two dtypes promote to the narrowest dtype holding both
(``promote_types``): uint8 with int8 is int16, float16 with bfloat16 is float32.

float16 and bfloat16 are *storage* dtypes: every backend computes on them in float32 and
rounds each op's result back once (``compute_dtype``), as PyTorch's CPU kernels do.
bfloat16 arrays are numpy arrays of ``ml_dtypes.bfloat16``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import ml_dtypes
import numpy as np


@dataclass(frozen=True, eq=False)     # dtypes are singletons: identity is equality
class DType:
    name: str          # PyTorch spelling without the prefix: "float32"
    short: str         # IR spelling: "f32"
    np: np.dtype
    category: int      # 0 bool, 1 integer, 2 floating
    itemsize: int

    @property
    def is_floating_point(self) -> bool:
        return self.category == 2

    @property
    def is_signed(self) -> bool:
        return self.name not in ("bool", "uint8")

    is_complex = False

    @property
    def bits(self) -> int:
        return 8 * self.itemsize

    def __repr__(self) -> str:
        return f"graphc.{self.name}"


bool_ = DType("bool", "b8", np.dtype(np.bool_), 0, 1)
uint8 = DType("uint8", "u8", np.dtype(np.uint8), 1, 1)
int8 = DType("int8", "i8", np.dtype(np.int8), 1, 1)
int16 = DType("int16", "i16", np.dtype(np.int16), 1, 2)
int32 = DType("int32", "i32", np.dtype(np.int32), 1, 4)
int64 = DType("int64", "i64", np.dtype(np.int64), 1, 8)
float16 = DType("float16", "f16", np.dtype(np.float16), 2, 2)
bfloat16 = DType("bfloat16", "bf16", np.dtype(ml_dtypes.bfloat16), 2, 2)
float32 = DType("float32", "f32", np.dtype(np.float32), 2, 4)
float64 = DType("float64", "f64", np.dtype(np.float64), 2, 8)

ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64)
# The storage dtypes computed in float32 (see the module docstring).
HALF = (float16, bfloat16)
_BY_NP = {d.np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_SHORT = {d.short: d for d in ALL}
_ORDER = {d: i for i, d in enumerate(ALL)}   # within a category, later is wider

# The default dtype of floating tensors and of float Python scalars.
default_float = float32


def from_name(name: str) -> DType:
    return _BY_NAME[name]


def from_short(short: str) -> DType:
    return _BY_SHORT[short]


def compute_dtype(dtype: DType) -> DType:
    """The dtype arithmetic on ``dtype`` is carried out in: float32 for the half types."""
    return float32 if dtype in HALF else dtype


def from_numpy(dt) -> DType:
    """The graphc dtype for a numpy dtype; wider unsigned types map to a signed one."""
    dt = np.dtype(dt)
    if dt in _BY_NP:
        return _BY_NP[dt]
    if dt.kind == "f":
        return float64 if dt.itemsize > 4 else float32
    if dt.kind in "iu" and dt.itemsize <= 4:
        return int32 if dt.kind == "i" else int64
    if dt.kind in "iu":
        return int64
    raise TypeError(f"unsupported numpy dtype {dt}; graphc supports "
                    f"{', '.join(d.name for d in ALL)}")


def to_dtype(x) -> DType:
    """Accept a DType, a numpy dtype, or a Python type (float, int, bool)."""
    if isinstance(x, DType):
        return x
    if x is float:
        return default_float
    if x is int:
        return int64
    if x is bool:
        return bool_
    legacy = getattr(x, "_graphc_dtype", None)   # graphc.FloatTensor and friends
    if legacy is not None:
        return legacy
    return from_numpy(x)


def scalar_dtype(value) -> DType:
    """The dtype PyTorch gives a bare Python scalar.  A numpy bool is not a Python
    bool to PyTorch: it promotes as a float (``int_tensor + np.bool_(True)`` is
    float32, ``torch.full((2,), np.bool_(True))`` too)."""
    if isinstance(value, bool):
        return bool_
    if isinstance(value, np.bool_):
        return default_float
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return default_float
    raise TypeError(f"expected a number, got {type(value).__name__}")


def promote_types(a: DType, b: DType) -> DType:
    """PyTorch's ``promote_types``: the higher category wins; within one, the narrowest
    dtype holding both (uint8 and int8 need int16; float16 and bfloat16 float32)."""
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    if {a, b} == {float16, bfloat16}:
        return float32
    if uint8 in (a, b):
        other = b if a is uint8 else a
        return int16 if other is int8 else other
    return a if _ORDER[a] > _ORDER[b] else b


def _widest(dtypes) -> DType | None:
    best = None
    for d in dtypes:
        best = d if best is None else promote_types(best, d)
    return best


def result_type(tensors=(), zero_dim=(), scalars=()) -> DType:
    """PyTorch's promotion: ``tensors`` are dimensioned, ``zero_dim`` are 0-dim tensors'
    dtypes, ``scalars`` are Python scalars' dtypes (float scalars are default_float)."""
    result = _widest(tensors)
    for group in (zero_dim, scalars):
        candidate = _widest(group)
        if candidate is None:
            continue
        if result is None:
            result = candidate
        elif candidate.category > result.category:
            # A higher-category scalar picks the default of its category when it is a
            # Python scalar; a 0-dim tensor keeps its own dtype.
            if group is scalars and candidate.category == 2:
                candidate = default_float
            result = candidate
    return result


class finfo:
    """``graphc.finfo(dtype)``: the limits of a floating dtype, as PyTorch's."""

    def __init__(self, type=None):
        dtype = to_dtype(type) if type is not None else default_float
        if not dtype.is_floating_point:
            raise TypeError(f"finfo() requires a floating point input type. Use iinfo to "
                            f"handle '{dtype!r}'")
        info = ml_dtypes.finfo(dtype.np)
        self.bits = dtype.bits
        self.eps = float(info.eps)
        self.max = float(info.max)
        self.min = float(info.min)
        self.tiny = self.smallest_normal = float(info.smallest_normal)
        self.resolution = 10.0 ** -int(info.precision)
        self.dtype = dtype.name

    def __repr__(self):
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, "
                f"eps={self.eps:g}, smallest_normal={self.tiny:g}, tiny={self.tiny:g}, "
                f"dtype={self.dtype})")


class iinfo:
    """``graphc.iinfo(dtype)``: the limits of an integer dtype, as PyTorch's."""

    def __init__(self, type):
        dtype = to_dtype(type)
        if dtype.is_floating_point:
            raise TypeError(f"iinfo() requires an integer input type. Use finfo to handle "
                            f"'{dtype!r}'")
        if dtype is bool_:
            raise TypeError(f"{dtype!r} is not supported by graphc.iinfo")
        info = np.iinfo(dtype.np)
        self.bits = dtype.bits
        self.min = int(info.min)
        self.max = int(info.max)
        self.dtype = dtype.name

    def __repr__(self):
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"


class TensorType(NamedTuple):
    """The static type of a value: shape and dtype.  Prints as ``f32[800,2]``."""
    shape: tuple
    dtype: DType

    def __str__(self) -> str:
        return f"{self.dtype.short}[{','.join(map(str, self.shape))}]"
