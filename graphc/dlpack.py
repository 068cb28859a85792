"""DLPack, the protocol array libraries use to share memory without copying.

graphc's tensors are numpy arrays, and numpy's own DLPack code (in C) exports and imports
most of them.  It refuses bfloat16 (graphc stores it as ``ml_dtypes.bfloat16``, a dtype
numpy does not know), so this module implements the protocol with ctypes too, and
``Tensor.__dlpack__`` / ``array_from`` use it where numpy's cannot serve:

* ``export(array, ...)`` makes the capsule a consumer (``torch.from_dlpack``,
  ``np.from_dlpack``, ``jax.dlpack``...) takes: a ``DLManagedTensorVersioned`` in a
  ``"dltensor_versioned"`` capsule when the consumer asked for DLPack 1.x, else a legacy
  ``DLManagedTensor`` in a ``"dltensor"`` capsule.  The array is kept alive in
  ``_exported`` until the consumer calls the deleter (or the capsule dies unconsumed).
* ``consume(capsule)`` reads a producer's capsule into a numpy array over the producer's
  memory; the array's base owns the capsule's contents and calls the producer's deleter
  when numpy frees the array.

The structs follow ``dlpack.h`` (DLPack 1.1); strides count elements, not bytes.  Only
host memory is handled (kDLCPU, and kDLCUDAHost on the consumer side): graphc's tensors
live on the host, and a value a CUDA program keeps on the device is brought home
before it is exported (see ``Tensor.__dlpack__``).  This module is a leaf: numpy,
ctypes and ``graphc.dtypes``.
"""
from __future__ import annotations

import ctypes
import enum

import numpy as np

from graphc import dtypes

VERSION = (1, 1)                      # the dlpack.h these structs follow
DeviceType = enum.IntEnum("DLDeviceType", {
    "kDLCPU": 1, "kDLCUDA": 2, "kDLCUDAHost": 3, "kDLOpenCL": 4, "kDLVulkan": 7,
    "kDLMetal": 8, "kDLVPI": 9, "kDLROCM": 10, "kDLROCMHost": 11, "kDLExtDev": 12,
    "kDLCUDAManaged": 13, "kDLOneAPI": 14, "kDLWebGPU": 15, "kDLHexagon": 16,
    "kDLMAIA": 17})
CPU, CUDA_HOST = DeviceType.kDLCPU, DeviceType.kDLCUDAHost
READ_ONLY, IS_COPIED = 1, 2           # DLPACK_FLAG_BITMASK_*

# DLDataType (type code, bits) of each graphc dtype: kDLInt 0, kDLUInt 1, kDLFloat 2,
# kDLBfloat 4, kDLBool 6.
_CODES = {dtypes.bool_: (6, 8), dtypes.uint8: (1, 8), dtypes.int8: (0, 8),
          dtypes.int16: (0, 16), dtypes.int32: (0, 32), dtypes.int64: (0, 64),
          dtypes.float16: (2, 16), dtypes.bfloat16: (4, 16), dtypes.float32: (2, 32),
          dtypes.float64: (2, 64)}
_BY_CODE = {code: d for d, code in _CODES.items()}
_NUMPY_DTYPES = {d.np for d in _CODES}
_CODE_NAMES = {0: "int", 1: "uint", 2: "float", 3: "opaque handle", 4: "bfloat",
               5: "complex", 6: "bool", 7: "float8_e3m4"}


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8),
                ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32),
                ("dtype", _DataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


_Deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _Managed(ctypes.Structure):                 # DLManagedTensor (legacy)
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", _Deleter)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class _ManagedVersioned(ctypes.Structure):        # DLManagedTensorVersioned
    _fields_ = [("version", _Version), ("manager_ctx", ctypes.c_void_p),
                ("deleter", _Deleter), ("flags", ctypes.c_uint64),
                ("dl_tensor", _DLTensor)]


_api = ctypes.pythonapi
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_api.PyCapsule_GetName.restype = ctypes.c_char_p
_api.PyCapsule_GetName.argtypes = [ctypes.py_object]
_api.PyCapsule_SetName.restype = ctypes.c_int
_api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]

# Capsule names; the "used_" spellings are how a consumer marks a capsule it took over.
# They are module constants because a capsule keeps a pointer to its name.
LEGACY, VERSIONED = b"dltensor", b"dltensor_versioned"
_USED = {LEGACY: b"used_dltensor", VERSIONED: b"used_dltensor_versioned"}

# struct address -> (struct, shape, strides, array): what an exported capsule points
# into, alive until the consumer's deleter call.
_exported: dict = {}


@_Deleter
def _delete_exported(address):
    _exported.pop(address, None)


def _capsule_destructor(name: bytes):
    """Frees an exported tensor nobody consumed (the capsule still has its first name:
    a consumer renames it and calls the deleter itself)."""
    @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    def destroy(capsule):
        if _api.PyCapsule_IsValid(capsule, name):
            _delete_exported(_api.PyCapsule_GetPointer(capsule, name))
    return destroy


_DESTRUCTORS = {name: _capsule_destructor(name) for name in (LEGACY, VERSIONED)}


def export(array: np.ndarray, dtype, *, versioned: bool, copied: bool = False):
    """A DLPack capsule over ``array``'s memory (graphc dtype ``dtype``).  Strides that
    are negative or not a whole number of elements have no DLPack spelling PyTorch
    accepts (its consumer aborts the process on a negative stride), so the caller
    passes a contiguous copy instead and says so with ``copied``."""
    code, bits = _CODES[dtype]
    ndim = array.ndim
    shape = (ctypes.c_int64 * max(ndim, 1))(*array.shape)
    strides = (ctypes.c_int64 * max(ndim, 1))(*(s // array.itemsize for s in array.strides))
    tensor = _DLTensor(array.ctypes.data, _Device(CPU, 0), ndim, _DataType(code, bits, 1),
                       shape, strides, 0)
    if versioned:
        flags = (0 if array.flags.writeable else READ_ONLY) | (IS_COPIED if copied else 0)
        managed = _ManagedVersioned(_Version(*VERSION), None, _delete_exported, flags,
                                    tensor)
        name = VERSIONED
    else:
        managed = _Managed(tensor, None, _delete_exported)
        name = LEGACY
    address = ctypes.addressof(managed)
    _exported[address] = (managed, shape, strides, array)
    return _api.PyCapsule_New(address, name, ctypes.cast(_DESTRUCTORS[name],
                                                         ctypes.c_void_p))


def exportable(array: np.ndarray) -> bool:
    """Whether ``array``'s layout can be exported as it is (see ``export``)."""
    return all(s >= 0 and s % array.itemsize == 0 for s in array.strides)


class _Owner:
    """The base of an array consumed from a capsule: it describes the producer's memory
    to numpy (``__array_interface__``) and calls the producer's deleter when numpy
    frees the last array over that memory."""

    def __init__(self, address: int, deleter, interface: dict):
        self._address = address
        self._deleter = deleter
        self.__array_interface__ = interface

    def __del__(self):
        if self._deleter:
            self._deleter(self._address)


def consume(capsule, what: str) -> np.ndarray:
    """A numpy array over the memory of a DLPack capsule (legacy or versioned), which
    this call takes over (renames) as the protocol requires."""
    if type(capsule).__name__ != "PyCapsule":
        raise TypeError(f"{what}: expected a DLPack capsule or an object with __dlpack__, "
                        f"got {type(capsule).__name__}")
    name = _api.PyCapsule_GetName(capsule)
    if name not in _USED:
        raise ValueError(f"{what}: a capsule named {name!r} is not a DLPack tensor"
                         + (" (it was consumed already: a capsule can be used once)"
                            if name in _USED.values() else ""))
    address = _api.PyCapsule_GetPointer(id(capsule), name)
    if name == VERSIONED:
        managed = _ManagedVersioned.from_address(address)
        if managed.version.major != 1:
            raise BufferError(f"{what}: DLPack version {managed.version.major}."
                              f"{managed.version.minor} is not supported (graphc reads 1.x)")
        read_only = bool(managed.flags & READ_ONLY)
    else:
        managed = _Managed.from_address(address)
        read_only = False
    t = managed.dl_tensor
    device = t.device.device_type
    if device not in (CPU, CUDA_HOST):
        raise BufferError(f"{what}: graphc tensors live in host memory, and this tensor is "
                          f"on {_device_name(device)}:"
                          f"{t.device.device_id}; move it to the CPU first (x.cpu())")
    code = (t.dtype.code, t.dtype.bits)
    if t.dtype.lanes != 1 or code not in _BY_CODE:
        raise TypeError(f"{what}: unsupported DLPack dtype "
                        f"{_CODE_NAMES.get(code[0], f'code {code[0]}')}{code[1]}"
                        f"{'x%d' % t.dtype.lanes if t.dtype.lanes != 1 else ''}; graphc "
                        f"supports {', '.join(d.name for d in dtypes.ALL)}")
    dtype = _BY_CODE[code].np
    shape = tuple(t.shape[i] for i in range(t.ndim))
    if t.strides:
        strides = tuple(t.strides[i] * dtype.itemsize for i in range(t.ndim))
    else:                                      # NULL strides: compact row-major
        strides = _row_major(shape, dtype.itemsize)
    data = (t.data or 0) + t.byte_offset
    deleter = ctypes.cast(managed.deleter, ctypes.c_void_p).value
    _api.PyCapsule_SetName(capsule, _USED[name])
    owner = _Owner(address, _Deleter(deleter) if deleter else None,
                   {"version": 3, "shape": shape, "strides": strides,
                    "typestr": f"|u{dtype.itemsize}", "data": (data, read_only)})
    return np.asarray(owner).view(dtype)


def _device_name(device_type: int) -> str:
    try:
        return DeviceType(device_type).name
    except ValueError:
        return f"device type {device_type}"


def array_from(obj, what: str) -> np.ndarray:
    """A numpy array over the memory of ``obj``: any object with ``__dlpack__`` (a
    PyTorch, JAX or graphc tensor), or a DLPack capsule.  numpy's own consumer (in C,
    four times faster than ctypes) reads writable host tensors of the dtypes it knows;
    the rest come through ``consume``: bfloat16, read-only tensors, and legacy capsules
    (numpy marks those read-only, not knowing; PyTorch and graphc take them as
    writable); ``consume`` also names what it refuses."""
    if not hasattr(obj, "__dlpack__"):
        return consume(obj, what)
    device = obj.__dlpack_device__()[0] if hasattr(obj, "__dlpack_device__") else CPU
    if device == CPU:
        try:
            array = np.from_dlpack(obj)
        except (BufferError, RuntimeError, TypeError):
            pass                                  # consume says why, or reads it
        else:
            if array.dtype in _NUMPY_DTYPES and array.flags.writeable:
                return array
    try:                  # a producer from before DLPack 1.0 takes no max_version
        capsule = obj.__dlpack__(max_version=VERSION)
    except TypeError:
        capsule = obj.__dlpack__()
    return consume(capsule, what)


def _row_major(shape, itemsize) -> tuple:
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))
