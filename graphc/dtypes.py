"""Dtypes and PyTorch's type-promotion rules.

A dtype is a small immutable record that knows its numpy dtype, its short IR spelling
(``f32``) and its category.  Promotion follows PyTorch: operands are split into
dimensioned tensors, zero-dim tensors and Python scalars; a lower priority group only
changes the result when it is of a higher *category* (bool < integer < floating).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

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

    def __repr__(self) -> str:
        return f"graphc.{self.name}"


bool_ = DType("bool", "b8", np.dtype(np.bool_), 0, 1)
int32 = DType("int32", "i32", np.dtype(np.int32), 1, 4)
int64 = DType("int64", "i64", np.dtype(np.int64), 1, 8)
float32 = DType("float32", "f32", np.dtype(np.float32), 2, 4)
float64 = DType("float64", "f64", np.dtype(np.float64), 2, 8)

ALL = (bool_, int32, int64, float32, float64)
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


def from_numpy(dt) -> DType:
    """The graphc dtype for a numpy dtype; float16 and unsigned types are rejected."""
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
    """The dtype PyTorch gives a bare Python scalar."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return default_float
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _widest(dtypes) -> DType | None:
    best = None
    for d in dtypes:
        if best is None or (d.category, _ORDER[d]) > (best.category, _ORDER[best]):
            best = d
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


class TensorType(NamedTuple):
    """The static type of a value: shape and dtype.  Prints as ``f32[800,2]``."""
    shape: tuple
    dtype: DType

    def __str__(self) -> str:
        return f"{self.dtype.short}[{','.join(map(str, self.shape))}]"
