"""The eager ``Tensor``: a numpy array, a dtype, and autograd state.

Storage sharing comes from numpy: view primitives return numpy views, so a write
through a view is seen by its base.  Views share their base's version counter (a
one-element list), which autograd reads to catch in-place writes to saved values.

This module holds storage, metadata, conversions and autograd state.  Methods that
compute (``x.add``, ``x.sum``, indexing, ``x.to``, ``x.backward``, ...) are defined once
as functions in the front end's modules (``functional``, ``indexing``, ``autograd``...)
and attached to the class in one place, ``graphc.methods``.
"""
from __future__ import annotations

import itertools

import numpy as np

from graphc import context, dlpack, dtypes, residency
from graphc.cuda import check_device, device as Device
from graphc.dtypes import DType
from graphc.printing import tensor_repr

# Every tensor gets a serial number at birth; a trace lifts tensors born before it began
# (parameters, optimizer state) and treats the ones born during it as constants.
_serials = itertools.count()
_device_copies = residency.records


class Tensor:
    __slots__ = ("_array", "dtype", "_requires_grad", "grad", "grad_fn", "_version", "_base",
                 "_serial", "_output_nr", "__weakref__", "__dict__")

    def __init__(self, *args):
        # Legacy constructor: graphc.Tensor([[1, 0]]) is a float tensor of that data and
        # graphc.Tensor(2, 3) an uninitialised float tensor of that size.
        if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
            data = _to_numpy(args[0], dtypes.default_float)
        else:
            data = np.zeros(_size_args(args), dtypes.default_float.np)
        self._init(data, dtypes.default_float)

    def _init(self, data: np.ndarray, dtype: DType):
        self._array = data
        self.dtype = dtype
        self._requires_grad = False
        self.grad = None
        self.grad_fn = None
        self._version = [0]
        self._base = None
        self._serial = next(_serials)
        self._output_nr = 0           # which output of its grad_fn this tensor is

    @property
    def _data(self):
        """The host array (while tracing, an ``ir.Value``).  Where device programs keep
        copies of arrays (``graphc.residency``), the newest value is brought home first;
        metadata (shape, size) reads ``_array`` directly and moves nothing."""
        if _device_copies:
            residency.claim(self._array)
        return self._array

    @_data.setter
    def _data(self, value):
        self._array = value

    @staticmethod
    def _next_serial() -> int:
        return next(_serials)

    def _concrete(self, what: str) -> np.ndarray:
        """The array, or a GraphBreak when this is a tracer (values unknown)."""
        if type(self._data) is not np.ndarray:
            raise context.graph_break(what)
        return self._data

    @classmethod
    def _wrap(cls, data: np.ndarray, dtype: DType) -> "Tensor":
        t = object.__new__(Tensor)
        t._init(data, dtype)
        return t

    # ---- metadata ----------------------------------------------------------------------
    @property
    def shape(self):
        return Size(self._array.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._array.shape)
        return self._array.shape[normalize_dim(dim, self._array.ndim)]

    def dim(self) -> int:
        return self._array.ndim

    ndim = property(dim)

    def numel(self) -> int:
        return self._array.size

    nelement = numel

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def device(self):
        return Device("cpu")

    is_cuda = False

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def is_signed(self) -> bool:
        return self.dtype.is_signed

    def is_contiguous(self) -> bool:
        # A traced value has no layout yet: code generation decides it.
        return type(self._array) is not np.ndarray or self._array.flags.c_contiguous

    def stride(self, dim=None):
        strides = tuple(s // self.dtype.itemsize
                        for s in self._concrete("Tensor.stride()").strides)
        return strides if dim is None else strides[normalize_dim(dim, self._data.ndim)]

    # ---- autograd state ----------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad=True):
        if self.grad_fn is not None:
            if not requires_grad:
                raise RuntimeError("you can only change requires_grad flags of leaf "
                                   "variables. If you want to use a computed variable in a "
                                   "subgraph that doesn't require differentiation use "
                                   "var_no_grad = var.detach().")
            return self
        if requires_grad and not self.dtype.is_floating_point:
            raise RuntimeError("Only Tensors of floating point and complex dtype can "
                               "require gradients")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def _version_count(self) -> int:
        return self._version[0]

    @property
    def retains_grad(self) -> bool:
        return self.grad_fn is not None and self.grad_fn.retained is not None

    def detach(self) -> "Tensor":
        """Same storage and version counter, no history."""
        t = self._alias()
        t._version = self._version
        t._base = self._base
        return t

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self._requires_grad = False
        return self

    @property
    def data(self) -> "Tensor":
        """Same storage, no history, and its own version counter: writes through
        ``.data`` are invisible to autograd's in-place check (as in PyTorch)."""
        return self._alias()

    def _alias(self) -> "Tensor":
        """A new tensor on the same storage (``detach``, ``.data``).  While tracing, a
        pre-existing tensor is lifted first, so the alias reads its value at run time
        rather than a constant; the alias remembers its owner, so an in-place write
        through it updates the owner (``indexing.apply_inplace``)."""
        tr = context.active_trace()
        if tr is not None and type(self._data) is np.ndarray and \
                self._serial < tr.start_serial:
            tr.lift(self)
        data = self._data
        if tr is not None and self._requires_grad and type(data) is not np.ndarray:
            data = tr.detached(self)         # the alias must not carry the gradient
        t = Tensor._wrap(data, self.dtype)
        if tr is not None:
            t.__dict__["_alias_of"] = self
        return t

    @data.setter
    def data(self, value: "Tensor"):
        self._data = value._data
        self.dtype = value.dtype

    # ---- conversion ----------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        data = self._concrete("Tensor.numpy()")
        residency.escape(data)          # shared with the caller, who may write to it
        return data

    # numpy defers its binary operators to an operand of higher priority that has the
    # reflected method (``np.float64(2) * t`` calls ``t.__rmul__``, as with PyTorch's
    # tensors, which have the same priority); ufuncs (``np.sqrt(t)``) still run in numpy
    # on ``__array__`` and come back as tensors through ``__array_wrap__``, as in PyTorch.
    __array_priority__ = 1000

    def __array__(self, dtype=None, copy=None):
        """numpy 2's protocol: ``copy=True`` always copies (``np.array(t)``), ``None``
        shares when it can (``np.asarray(t)``), ``False`` shares or raises."""
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        data = self._concrete("conversion of a tensor to a numpy array")
        if dtype is not None and np.dtype(dtype) != data.dtype:
            if copy is False:
                raise ValueError(f"Unable to avoid copy while creating an array as "
                                 f"requested: the tensor is {self.dtype.name}, the array "
                                 f"{np.dtype(dtype)}")
            return data.astype(dtype)
        if copy:
            return data.copy()
        residency.escape(data)
        return data

    def __array_wrap__(self, array, context=None, return_scalar=False):
        """The result of a numpy ufunc applied to tensors, as a tensor (no history:
        numpy computed it), as PyTorch gives; a dtype graphc lacks (uint16) becomes the
        one ``dtypes.from_numpy`` maps it to."""
        dtype = dtypes.from_numpy(array.dtype)
        return Tensor._wrap(np.asarray(array).astype(dtype.np, copy=False), dtype)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """The DLPack capsule of this tensor's memory (``torch.from_dlpack(t)``,
        ``np.from_dlpack(t)``), a versioned one when the consumer reads DLPack 1.x.  A
        value a CUDA program keeps on the device is brought home first and exported from
        host memory (a program's device buffers are reused by its next call, so lending
        them out would let that call overwrite what the consumer holds)."""
        if self._requires_grad:
            raise BufferError("Can't export tensors that require gradient, use "
                              "tensor.detach()")
        if stream not in (None, -1):
            raise ValueError(f"__dlpack__: stream must be None for a tensor in host "
                             f"memory, got {stream!r}")
        if dl_device is not None and tuple(int(v) for v in dl_device) != (dlpack.CPU, 0):
            raise BufferError(f"__dlpack__: graphc exports host memory (kDLCPU, 0) only, "
                              f"not device {tuple(dl_device)}")
        data = self._concrete("DLPack export (Tensor.__dlpack__)")
        versioned = max_version is not None and max_version[0] >= 1
        copied = bool(copy) or not dlpack.exportable(data) or \
            not (versioned or data.flags.writeable)
        if copied and copy is False:
            raise BufferError(f"__dlpack__: this view (strides {data.strides} bytes"
                              f"{'' if data.flags.writeable else ', read-only'}) cannot be "
                              f"exported without a copy, and copy=False")
        if copied:
            data = data.copy()                # C order, writable
        else:
            residency.escape(data)           # the consumer may write to it
        return dlpack.export(data, self.dtype, versioned=versioned, copied=copied)

    def __dlpack_device__(self):
        return dlpack.DeviceType.kDLCPU, 0

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be "
                               f"converted to Scalar")
        return self._concrete("Tensor.item()").reshape(()).item()

    def tolist(self):
        return self._concrete("Tensor.tolist()").tolist()

    def __float__(self):
        return float(self._scalar())

    def __int__(self):
        return int(self._scalar())

    def _scalar(self):
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self.item()

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with "
                               f"{'no values' if self._data.size == 0 else 'more than one value'}"
                               f" is ambiguous")
        self._concrete("Python control flow on a tensor value (Tensor.__bool__, "
                       "e.g. `if x.sum() > 0:`)")
        return bool(self.item())

    def __index__(self):
        if self.dtype.category == 2 or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted "
                            "to an index")
        return int(self.item())

    def __len__(self):
        if self._array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._array.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self):
        return id(self)

    def __reduce_ex__(self, protocol):
        raise TypeError("graphc tensors are not pickled; use graphc.save")

    def __deepcopy__(self, memo):
        """``copy.deepcopy`` of a leaf (``copy.deepcopy(model.state_dict())``): new
        storage, same requires_grad, and a copied grad."""
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment.")
        if id(self) not in memo:
            new = type(self)._wrap(self._data.copy(), self.dtype)
            new._requires_grad = self._requires_grad
            if self.grad is not None:
                new.grad = self.grad.__deepcopy__(memo)
            memo[id(self)] = new
        return memo[id(self)]

    def type(self, dtype=None):
        if dtype is None:
            return _LEGACY_NAMES[self.dtype]
        if isinstance(dtype, str):
            dtype = _LEGACY_BY_NAME[dtype]
        return self.to(dtypes.to_dtype(dtype))

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def long(self):
        return self.to(dtypes.int64)

    def int(self):
        return self.to(dtypes.int32)

    def bool(self):
        return self.to(dtypes.bool_)

    def half(self):
        return self.to(dtypes.float16)

    def bfloat16(self):
        return self.to(dtypes.bfloat16)

    def byte(self):
        return self.to(dtypes.uint8)

    def char(self):
        return self.to(dtypes.int8)

    def short(self):
        return self.to(dtypes.int16)

    def cpu(self):
        return self

    def cuda(self, device=None):
        check_device("cuda")
        return self

    def new_zeros(self, *size, dtype=None):
        return Tensor._wrap(np.zeros(_size_args(size), (dtype or self.dtype).np),
                            dtype or self.dtype)

    def new_ones(self, *size, dtype=None):
        return Tensor._wrap(np.ones(_size_args(size), (dtype or self.dtype).np),
                            dtype or self.dtype)

    def new_full(self, size, fill_value, dtype=None):
        return Tensor._wrap(np.full(_size_args((size,)), fill_value, (dtype or self.dtype).np),
                            dtype or self.dtype)

    def new_empty(self, *size, dtype=None):
        return self.new_zeros(*size, dtype=dtype)

    def __repr__(self):
        return tensor_repr(self)

    def __format__(self, spec):
        if self._data.ndim == 0:
            return format(self.item(), spec)
        return format(repr(self), spec)


def to_arguments(args, kwargs):
    """The dtype asked for by ``.to(...)`` arguments (None if none), after checking any
    device among them (``"cpu"``, ``device("cuda:0")``, a CUDA index); shared by
    ``Tensor.to`` and ``Module.to``."""
    dtype = kwargs.get("dtype")
    for a in list(args) + [kwargs.get("device")]:
        if a is None:
            continue
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, (str, Device, int)) and not isinstance(a, bool):
            check_device(a if not isinstance(a, int) else f"cuda:{a}")
        else:
            dtype = dtypes.to_dtype(a)
    return None if dtype is None else dtypes.to_dtype(dtype)


def typename(obj) -> str:
    """PyTorch's ``torch.typename``: legacy names for tensors, qualified names otherwise."""
    if isinstance(obj, Tensor):
        return obj.type()
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else \
        f"{cls.__module__}.{cls.__qualname__}"


class Size(tuple):
    """``tensor.shape``: a tuple that prints as ``graphc.Size([2, 3])``."""

    def __repr__(self):
        return f"graphc.Size({list(self)})"

    def __getitem__(self, key):
        item = tuple.__getitem__(self, key)
        return Size(item) if isinstance(key, slice) else item

    def __add__(self, other):
        return Size(tuple(self) + tuple(other))

    def numel(self) -> int:
        return int(np.prod(self, dtype=np.int64))


def normalize_dim(dim, ndim: int) -> int:
    """PyTorch's dim wrapping, with its error text; a 0-dim tensor accepts 0 and -1."""
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(f"Dimension out of range (expected to be in range of "
                         f"[{-bound}, {bound - 1}], but got {dim})")
    return dim % bound


def _size_args(args) -> tuple:
    """(2, 3), ((2, 3),), ([2, 3],) and (Size,) all mean the shape (2, 3)."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    shape = tuple(int(a) for a in args)
    for d in shape:
        if d < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {d}: "
                               f"{list(shape)}")
    return shape


def _to_numpy(data, dtype: DType | None) -> np.ndarray:
    """Python data (nested lists of numbers or 0-dim tensors, arrays) -> a numpy array."""
    if isinstance(data, Tensor):
        arr = data._data
    elif is_foreign_tensor(data):
        arr = foreign_array(data, "graphc.tensor")
        dtype = dtype or dtypes.from_numpy(arr.dtype)
    elif isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
        arr = np.array([_to_numpy(x, None) for x in data])
    else:
        try:
            arr = np.asarray(data)
        except ValueError:
            raise ValueError(_ragged(data) or f"can't convert {type(data).__name__} of "
                             f"ragged content to a tensor") from None
        if arr.dtype == object:
            raise TypeError(f"can't convert {type(data).__name__} of mixed or ragged "
                            f"content to a tensor")
    if dtype is None:
        dtype = _default_dtype_of(arr, data)
    return np.array(arr, dtype=dtype.np)


def is_foreign_tensor(data) -> bool:
    """Another library's tensor (PyTorch, JAX, CuPy...): it speaks DLPack."""
    return hasattr(data, "__dlpack__") and not isinstance(data, (np.ndarray, Tensor))


def foreign_array(data, what: str) -> np.ndarray:
    """The memory of another library's tensor as a numpy array, shared through DLPack
    (graphc never imports PyTorch).  A tensor that requires grad is detached first:
    DLPack refuses to export it, and a graphc tensor cannot join another library's
    autograd graph anyway (``torch.tensor(t)`` also keeps the values only)."""
    if getattr(data, "requires_grad", False) and hasattr(data, "detach"):
        data = data.detach()
    return dlpack.array_from(data, what)


def _ragged(data) -> str | None:
    """PyTorch's message for nested sequences of unequal lengths, or None."""
    level, dim = [data], 0
    while level and all(isinstance(s, (list, tuple)) for s in level):
        for s in level:
            if len(s) != len(level[0]):
                return f"expected sequence of length {len(level[0])} at dim {dim} " \
                       f"(got {len(s)})"
        level, dim = [x for s in level for x in s], dim + 1
    return None


def _default_dtype_of(arr: np.ndarray, data) -> DType:
    """PyTorch's dtype inference: Python floats -> float32, numpy keeps its dtype."""
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        return dtypes.from_numpy(arr.dtype)
    if isinstance(data, Tensor):
        return data.dtype
    if arr.dtype.kind == "f":
        return dtypes.default_float
    if arr.dtype.kind in "iu":
        return dtypes.int64
    if arr.dtype.kind == "b":
        return dtypes.bool_
    return dtypes.from_numpy(arr.dtype)


class _LegacyTensorType(type):
    """``graphc.FloatTensor`` and friends: callable constructors that also work with
    ``isinstance`` and ``tensor.type(...)``."""

    def __call__(cls, *args):
        if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
            data = _to_numpy(args[0], cls._graphc_dtype)
        else:
            data = np.zeros(_size_args(args), cls._graphc_dtype.np)
        return Tensor._wrap(data, cls._graphc_dtype)

    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.dtype == cls._graphc_dtype


def _legacy(name, dtype):
    return _LegacyTensorType(name, (), {"_graphc_dtype": dtype})


FloatTensor = _legacy("FloatTensor", dtypes.float32)
DoubleTensor = _legacy("DoubleTensor", dtypes.float64)
LongTensor = _legacy("LongTensor", dtypes.int64)
IntTensor = _legacy("IntTensor", dtypes.int32)
BoolTensor = _legacy("BoolTensor", dtypes.bool_)
HalfTensor = _legacy("HalfTensor", dtypes.float16)
BFloat16Tensor = _legacy("BFloat16Tensor", dtypes.bfloat16)
ByteTensor = _legacy("ByteTensor", dtypes.uint8)
CharTensor = _legacy("CharTensor", dtypes.int8)
ShortTensor = _legacy("ShortTensor", dtypes.int16)
_LEGACY = (FloatTensor, DoubleTensor, LongTensor, IntTensor, BoolTensor, HalfTensor,
           BFloat16Tensor, ByteTensor, CharTensor, ShortTensor)
_LEGACY_NAMES = {t._graphc_dtype: f"graphc.{t.__name__}" for t in _LEGACY}
_LEGACY_BY_NAME = {name: t for t in _LEGACY
                   for name in (f"graphc.{t.__name__}", f"torch.{t.__name__}")}
