"""DLPack, the protocol array libraries use to share memory without copying.

graphc's tensors are numpy arrays, so numpy's own DLPack code (in C) does most of the
work, and this module adds what it cannot do, with ctypes over the structs of
``dlpack.h`` (DLPack 1.1; strides count elements, not bytes):

* ``export``: numpy refuses to export bfloat16 (graphc stores it as
  ``ml_dtypes.bfloat16``, a dtype numpy does not know), so a bfloat16 array is exported
  as its uint16 view and the capsule's dtype code is changed to kDLBfloat.  numpy's
  deleter and capsule destructor keep the array alive until the consumer is done; they
  are C functions, which matters: a destructor written in Python (a ctypes callback)
  can run while an exception is pending, and would swallow it.
* ``consume`` checks a capsule (device, dtype, version) and gives the usual ones to
  numpy's consumer.  That one refuses bfloat16 too, and marks what a legacy capsule
  gives read-only (PyTorch does not), so graphc reads those capsules itself into an array
  whose base calls the producer's deleter when numpy frees it.

Only host memory is handled (kDLCPU, and kDLCUDAHost on the consumer side): graphc's
tensors live on the host, and a value a CUDA program keeps on the device is brought
home before it is exported (see ``Tensor.__dlpack__``).  This module is a leaf: numpy,
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
_NUMPY_DTYPES = {d.np for d in _CODES if d is not dtypes.bfloat16}
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
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_api.PyCapsule_GetName.restype = ctypes.c_char_p
_api.PyCapsule_GetName.argtypes = [ctypes.py_object]
_api.PyCapsule_SetName.restype = ctypes.c_int
_api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]

# Capsule names; the "used_" spellings are how a consumer marks a capsule it took over.
LEGACY, VERSIONED = b"dltensor", b"dltensor_versioned"
_USED = {LEGACY: b"used_dltensor", VERSIONED: b"used_dltensor_versioned"}


def export(array: np.ndarray, dtype, *, versioned: bool, copied: bool = False):
    """The DLPack capsule of ``array`` (graphc dtype ``dtype``): numpy's own export, whose
    deleter and capsule destructor (in C) keep the array alive for the consumer; for
    bfloat16, which numpy's export refuses, the export of its uint16 view with the
    dtype code changed to kDLBfloat.  ``copied`` (the caller passes a copy) sets the
    versioned capsule's IS_COPIED flag.  The caller passes a layout DLPack consumers
    accept (``exportable``)."""
    bfloat = dtype is dtypes.bfloat16
    capsule = (array.view(np.uint16) if bfloat else array).__dlpack__(
        max_version=VERSION if versioned else None)
    if bfloat or copied:
        name = VERSIONED if versioned else LEGACY
        address = _api.PyCapsule_GetPointer(id(capsule), name)
        managed = (_ManagedVersioned if versioned else _Managed).from_address(address)
        if bfloat:
            managed.dl_tensor.dtype.code = _CODES[dtypes.bfloat16][0]
        if copied and versioned:
            managed.flags |= IS_COPIED
    return capsule


def exportable(array: np.ndarray) -> bool:
    """Whether ``array``'s layout can be exported as it is: PyTorch has no negative
    strides (its consumer aborts the process on one), and DLPack counts strides in
    whole elements."""
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
    this call takes over (renames) as the protocol requires: checked here, then read by
    numpy's consumer where it can (a writable versioned capsule of a dtype numpy
    knows), else by graphc's."""
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
    if name == VERSIONED and not read_only and dtype in _NUMPY_DTYPES:
        return np.from_dlpack(_Given(capsule))   # numpy's consumer, in C: faster
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
    PyTorch, JAX or graphc tensor), or a DLPack capsule."""
    if not hasattr(obj, "__dlpack__"):
        return consume(obj, what)
    try:                  # a producer from before DLPack 1.0 takes no max_version
        capsule = obj.__dlpack__(max_version=VERSION)
    except TypeError:
        capsule = obj.__dlpack__()
    return consume(capsule, what)


class _Given:
    """Hands numpy's consumer a capsule graphc has already asked for and checked."""

    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, **kwargs):
        return self.capsule

    def __dlpack_device__(self):
        return CPU, 0


def _row_major(shape, itemsize) -> tuple:
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))
