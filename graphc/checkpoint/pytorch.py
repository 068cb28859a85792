"""PyTorch's checkpoint files: read without running code, and written for ``torch.load``.

Reading.  A ``.pt`` file holds a pickle, and unpickling runs whatever functions the
pickle names.  graphc reads it with a restricted unpickler, the promise
``torch.load(weights_only=True)`` makes: every global the pickle names is looked up in
``_ALLOWED``, a table of graphc's *own* functions standing in for PyTorch's
reconstruction functions (``torch._utils._rebuild_tensor_v2`` builds a graphc tensor
from a storage), classes (``collections.OrderedDict``) and dtypes (``torch.float32``);
any other global is refused before anything is imported or called.  The opcodes that
call, build or extend objects are checked too (``_SAFE_OPS``): only allow-listed
functions are called, only dicts, lists and sets are filled, and only an OrderedDict's
attributes (a ``state_dict``'s ``_metadata``) are built.  Nothing imports torch.

Both of PyTorch's containers are read: the zip archive of ``torch.save`` since 1.6
(``<prefix>/data.pkl`` and one ``<prefix>/data/<key>`` member per storage, with a
``byteorder`` record) and the legacy stream (``_use_new_zipfile_serialization=False``:
magic number, protocol, system info, the object, the storage keys, then each storage as
an int64 element count and its little-endian bytes).  Tensors that shared a storage in
PyTorch (tied weights, views at offsets) share memory in graphc: each is a strided numpy
view of its storage.

Writing.  ``save`` writes PyTorch's zip format with a pickle of protocol 2 that names
only ``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``, storage classes,
dtypes, ``torch.Size``, ``OrderedDict`` and ``Counter``, by name, so
``torch.load(f, weights_only=True)`` reads it; tensors sharing memory share a storage.
"""
from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import struct
import sys
import zipfile
from collections import Counter, OrderedDict

import numpy as np

from graphc import dtypes
from graphc.checkpoint.archive import (DamagedFileError, UnsafeCheckpointError,
                                       UnsupportedCheckpointError, read_member)
from graphc.cuda import device
from graphc.nn.module import Parameter
from graphc.tensor import Size, Tensor

# torch/serialization.py: the first pickle of a legacy file, and its protocol number.
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001
LEGACY_PREFIX = pickle.dumps(LEGACY_MAGIC, protocol=2)[:-1]   # PROTO 2, LONG1 <magic>

_STORAGE_NAMES = {"BoolStorage": dtypes.bool_, "ByteStorage": dtypes.uint8,
                  "CharStorage": dtypes.int8, "ShortStorage": dtypes.int16,
                  "IntStorage": dtypes.int32, "LongStorage": dtypes.int64,
                  "HalfStorage": dtypes.float16, "BFloat16Storage": dtypes.bfloat16,
                  "FloatStorage": dtypes.float32, "DoubleStorage": dtypes.float64}
_STORAGE_OF = {dtype: name for name, dtype in _STORAGE_NAMES.items()}


# ---- reading ------------------------------------------------------------------------------

class _StorageType:
    """What ``torch.FloatStorage`` (and the other storage classes) unpickle to: the
    element dtype of the storages a persistent id names."""

    def __init__(self, dtype: dtypes.DType):
        self.dtype = dtype


class _Storage:
    """A PyTorch storage read back: a flat, writeable array every tensor on it views."""

    def __init__(self, array: np.ndarray, dtype: dtypes.DType):
        self.array = array
        self.dtype = dtype


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """graphc's ``torch._utils._rebuild_tensor_v2``: a strided view of ``storage``,
    after checking that every element it addresses lies inside the storage."""
    if not isinstance(storage, _Storage):
        raise TypeError(f"_rebuild_tensor_v2 expects a storage, got "
                        f"{type(storage).__name__}")
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or not all(type(v) is int and v >= 0
                                           for v in (storage_offset, *size, *stride)):
        raise ValueError(f"a tensor with size {list(size)}, stride {list(stride)} and "
                         f"offset {storage_offset} is malformed")
    numel = len(storage.array)
    extent = 0 if 0 in size else storage_offset + 1 + sum(
        (n - 1) * s for n, s in zip(size, stride))
    if extent > numel:
        raise ValueError(f"a tensor with size {list(size)}, stride {list(stride)} and "
                         f"offset {storage_offset} needs {extent} elements of its "
                         f"{storage.dtype.name} storage, which holds {numel}")
    base = storage.array[min(storage_offset, numel):]
    itemsize = storage.array.itemsize
    array = np.lib.stride_tricks.as_strided(base, size, [s * itemsize for s in stride])
    t = Tensor._wrap(array, storage.dtype)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    """``torch._utils._rebuild_parameter`` (and ``..._with_state``): a Parameter on the
    rebuilt tensor's storage."""
    if not isinstance(data, Tensor):
        raise TypeError(f"_rebuild_parameter expects a tensor, got {type(data).__name__}")
    return Parameter(data, requires_grad=bool(requires_grad))


def _rebuild_from_type_v2(func, new_type, args, state):
    """``torch._tensor._rebuild_from_type_v2``: a tensor (or Parameter) rebuilt by an
    allow-listed function, with the Python attributes PyTorch saved for it (``t.note =
    "x"``); graphc keeps its own state in attributes starting with ``_``, so those
    names are refused."""
    if not _is_allowed_callable(func) or not (new_type is Tensor or new_type is Parameter):
        raise UnsafeCheckpointError(f"_rebuild_from_type_v2 of {new_type!r:.80} by "
                                    f"{func!r:.80} is not allowed")
    attributes = state or {}
    if type(attributes) is not dict or not all(type(k) is str and not k.startswith("_")
                                               for k in attributes):
        raise UnsafeCheckpointError(f"_rebuild_from_type_v2 with state {state!r:.80} is "
                                    f"not allowed: only public attribute names")
    t = func(*args)
    if new_type is Parameter and not isinstance(t, Parameter):
        t = Parameter(t)
    t.__dict__.update(attributes)
    return t


def _encode(text, encoding="latin1"):
    """``_codecs.encode``: how protocol 2 pickles ``bytes``."""
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise TypeError("_codecs.encode is allowed only for a str in latin1")
    return text.encode("latin1")


def _bytearray(data=b"", encoding="latin1"):
    """``builtins.bytearray`` as protocol 2 pickles one (from a latin1 str), never a
    size: ``bytearray(10**12)`` would allocate."""
    return bytearray(data if type(data) is bytes else _encode(data, encoding))


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "Counter"): Counter,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Size"): Size,
    ("torch", "device"): device,
    ("torch", "Tensor"): Tensor,
    ("torch.nn.parameter", "Parameter"): Parameter,
    ("_codecs", "encode"): _encode,
    ("builtins", "set"): set,
    ("builtins", "bytearray"): _bytearray,
    ("builtins", "complex"): complex,
    ("torch.storage", "UntypedStorage"): _StorageType(dtypes.uint8),
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_NAMES.items()},
    **{("torch", dtype.name): dtype for dtype in dtypes.ALL},
}
# What REDUCE may call: the functions and classes above, never a class used as a marker.
_CALLABLE = [f for f in _ALLOWED.values()
             if callable(f) and f is not Tensor and f is not Parameter]
# Globals PyTorch's weights_only loader accepts that graphc has no counterpart for.
_UNSUPPORTED = {
    "torch._utils": "sparse, quantized, nested or meta tensors, nor tensors of other "
                    "dtypes (float8, uint16-64: _rebuild_tensor_v3)",
    "torch": "complex, quantized, float8 and unsigned 16-64 bit dtypes and storages",
    "torch.serialization": "sparse layouts",
}


def _is_allowed_callable(func) -> bool:
    return any(func is f for f in _CALLABLE)


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with an allow-list for globals (``find_class``) and a
    checked dispatch table: the opcodes that call, build or fill objects are replaced by
    versions that refuse anything but allow-listed functions and plain containers, and
    the ones no state dict needs (``INST``, ``OBJ``, ``NEWOBJ``, the extension registry,
    out-of-band buffers) are refused outright."""

    def __init__(self, file, name, storage):
        super().__init__(file)
        self.name = name
        self.storage = storage      # persistent id -> _Storage

    def _global(self):
        module, name = self.readline(), self.readline()
        if not (module.endswith(b"\n") and name.endswith(b"\n")):
            raise EOFError("the pickle is truncated inside a GLOBAL")
        self.append(self.find_class(module[:-1].decode("utf-8"), name[:-1].decode("utf-8")))

    def find_class(self, module, name):
        if self.proto < 3:          # protocol 2 spells Python 3's names as Python 2's
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        what = _UNSUPPORTED.get(module) if module in ("torch._utils", "torch",
                                                      "torch.serialization") else None
        if what is not None:
            raise UnsupportedCheckpointError(
                f"graphc.load: {self.name} holds {module}.{name}; graphc reads dense "
                f"tensors of its own dtypes ({', '.join(d.name for d in dtypes.ALL)}), "
                f"not {what}")
        raise UnsafeCheckpointError(
            f"graphc.load: {self.name}: refused GLOBAL {module}.{name}: a checkpoint may "
            f"only name tensor and storage reconstruction, dtypes, torch.Size, "
            f"OrderedDict, Counter and plain containers (the allow-list of "
            f"torch.load(weights_only=True)); nothing in the file was run")

    def persistent_load(self, pid):
        if type(pid) is not tuple or not pid or type(pid[0]) not in (str, bytes) \
                or pid[0] not in ("storage", b"storage"):
            raise UnsafeCheckpointError(f"graphc.load: {self.name}: refused persistent id "
                                        f"{pid!r:.80}: only storages are allowed")
        return self.storage(pid)

    def _refuse(self, what):
        raise UnsafeCheckpointError(f"graphc.load: {self.name}: refused {what}; nothing "
                                    f"in the file was run")

    def _reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if not _is_allowed_callable(func) or type(args) is not tuple:
            self._refuse(f"a call of {func!r:.80}")
        self.stack[-1] = func(*args)

    def _build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is not OrderedDict or type(state) is not dict \
                or not all(type(k) is str for k in state):
            self._refuse(f"BUILD of a {type(inst).__name__} (only an OrderedDict's "
                         f"attributes may be set)")
        inst.__dict__.update(state)

    def _target(self, kinds):
        """The container an APPEND/SETITEM/ADDITEMS fills: only plain ones."""
        target = self.stack[-1]
        if type(target) not in kinds:
            self._refuse(f"filling a {type(target).__name__}")
        return target

    def _append(self):
        value = self.stack.pop()
        self._target((list,)).append(value)

    def _appends(self):
        items = self.pop_mark()
        self._target((list,)).extend(items)

    def _setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        self._target((dict, OrderedDict, Counter))[key] = value

    def _setitems(self):
        items = self.pop_mark()
        target = self._target((dict, OrderedDict, Counter))
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _additems(self):
        items = self.pop_mark()
        self._target((set,)).update(items)

    def _opcode_refused(name):
        def refuse(self):
            self._refuse(f"the pickle opcode {name}")
        return refuse

    dispatch = dict(pickle._Unpickler.dispatch)
    for _name in ("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID",
                  "NEXT_BUFFER", "READONLY_BUFFER"):
        dispatch[getattr(pickle, _name)[0]] = _opcode_refused(_name)
    dispatch.update({pickle.GLOBAL[0]: _global, pickle.REDUCE[0]: _reduce,
                     pickle.BUILD[0]: _build, pickle.APPEND[0]: _append,
                     pickle.APPENDS[0]: _appends, pickle.SETITEM[0]: _setitem,
                     pickle.SETITEMS[0]: _setitems, pickle.ADDITEMS[0]: _additems})
    del _name, _opcode_refused


def _storage_request(pid):
    """``(dtype, key, numel)`` from a storage's persistent id ``("storage",
    storage_type, key, location, numel[, view])``, checked."""
    if len(pid) not in (5, 6) or not isinstance(pid[1], _StorageType) \
            or type(pid[4]) is not int or pid[4] < 0:
        raise ValueError(f"malformed storage id {pid!r:.120}")
    key = pid[2].decode("ascii") if isinstance(pid[2], bytes) else str(pid[2])
    return pid[1].dtype, key, pid[4]


def _from_bytes(data, dtype: dtypes.DType, little: bool) -> np.ndarray:
    """A writeable array of ``dtype`` from raw storage bytes in the given byte order."""
    array = np.frombuffer(bytearray(data), np.uint8)
    if dtype.itemsize > 1 and little != (sys.byteorder == "little"):
        swapped = array.view(f"{'<' if little else '>'}u{dtype.itemsize}")
        array = swapped.astype(f"=u{dtype.itemsize}").view(np.uint8)
    return array.view(dtype.np)


def load_zip(archive: zipfile.ZipFile, name: str):
    """The object in a PyTorch zip checkpoint whose members ``check_sizes`` bounded."""
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")
               and n.count("/") == 1]
    if not pickles:
        raise DamagedFileError(f"graphc.load: {name} is neither a graphc file (no "
                               f"manifest.json) nor a PyTorch checkpoint (no "
                               f"<prefix>/data.pkl)")
    prefix = pickles[0][:-len("data.pkl")]
    order = b"little"
    if f"{prefix}byteorder" in archive.namelist():
        order = read_member(archive, f"{prefix}byteorder")
        if order not in (b"little", b"big"):
            raise ValueError(f"unknown byte order {order[:20]!r}")
    loaded = {}

    def storage(pid):
        dtype, key, numel = _storage_request(pid)
        if key not in loaded:
            member = f"{prefix}data/{key}"
            if member not in archive.namelist():
                raise DamagedFileError(f"graphc.load: {name} is corrupt: storage {key} "
                                       f"({member}) is missing")
            info = archive.getinfo(member)
            if info.file_size != numel * dtype.itemsize:
                raise DamagedFileError(
                    f"graphc.load: {name} is corrupt: storage {key} holds "
                    f"{info.file_size} bytes, but the pickle says {numel} {dtype.name} "
                    f"elements ({numel * dtype.itemsize} bytes)")
            data = read_member(archive, member)
            loaded[key] = _Storage(_from_bytes(data, dtype, order == b"little"), dtype)
        return _typed(loaded[key], dtype, key)

    pickled = io.BytesIO(read_member(archive, pickles[0]))
    return _RestrictedUnpickler(pickled, name, storage).load()


def _typed(storage: _Storage, dtype, key) -> _Storage:
    if storage.dtype is not dtype:
        raise ValueError(f"storage {key} is used as {storage.dtype.name} and "
                         f"{dtype.name}")
    return storage


def load_legacy(f, name: str, size: int):
    """The object in a PyTorch file of the legacy format (``f`` at its start)."""
    def header():
        return _RestrictedUnpickler(f, name, _no_storage).load()

    if header() != LEGACY_MAGIC:
        raise ValueError("invalid magic number")
    protocol = header()
    if protocol != _LEGACY_PROTOCOL:
        raise ValueError(f"invalid protocol version {protocol!r:.40}")
    info = header()
    if not isinstance(info, dict) or info.get("little_endian", True) is not True:
        raise UnsupportedCheckpointError(f"graphc.load: {name} was written on a "
                                         f"big-endian machine in the legacy format")
    storages, views = {}, {}

    def storage(pid):
        dtype, key, numel = _storage_request(pid)
        if key not in storages:
            declared = numel * dtype.itemsize + sum(s.array.nbytes for s in storages.values())
            if declared > size:
                raise DamagedFileError(
                    f"graphc.load: {name} is corrupt: storage {key} declares {numel} "
                    f"{dtype.name} elements, and the storages so far {declared} bytes, "
                    f"more than the file's {size} bytes hold")
            storages[key] = _Storage(np.zeros(numel, dtype.np), dtype)
        root = _typed(storages[key], dtype, key)
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return root
        view_key, offset, length = view
        if view_key not in views:
            if not (0 <= offset and 0 <= length and offset + length <= numel):
                raise ValueError(f"storage view {view_key} [{offset}, +{length}) lies "
                                 f"outside storage {key} of {numel} elements")
            views[view_key] = _Storage(root.array[offset:offset + length], dtype)
        return views[view_key]

    result = _RestrictedUnpickler(f, name, storage).load()
    keys = header()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
        raise ValueError("the storage key list does not match the storages the object "
                         "uses")
    for key in keys:
        array = storages[str(key)].array
        count, = struct.unpack("<q", _read_exactly(f, 8, f"storage {key}"))
        if count != len(array):
            raise ValueError(f"storage {key} holds {count} elements; the pickle says "
                             f"{len(array)}")
        data = _read_exactly(f, array.nbytes, f"storage {key}")
        array[...] = _from_bytes(data, storages[str(key)].dtype, True)
    return result


def _no_storage(pid):
    raise ValueError("a storage in a legacy header")


def _read_exactly(f, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError(f"{what} is truncated: {len(data)} of {n} bytes")
    return data


# ---- writing ------------------------------------------------------------------------------

class _Global:
    """A global written by name (``torch._utils._rebuild_tensor_v2``) without importing
    its module: PyTorch need not be installed to write a file PyTorch reads."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):
        # pickle writes a reduction only if its function is callable; this one stands
        # for a function of PyTorch's, run by torch.load, never here.
        raise TypeError(f"{self.module}.{self.name} is PyTorch's, not graphc's")


_REBUILD_TENSOR = _Global("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = _Global("torch._utils", "_rebuild_parameter")
_SIZE = _Global("torch", "Size")
_STORAGE_CLASSES = {dtype: _Global("torch", name) for dtype, name in _STORAGE_OF.items()}
_DTYPE_GLOBALS = {dtype: _Global("torch", dtype.name) for dtype in dtypes.ALL}


class _StorageRef:
    """One storage to write: ``data/<key>`` holding ``array``'s bytes (a flat uint8
    view of the storage's root array)."""

    def __init__(self, key: str, array: np.ndarray, dtype: dtypes.DType):
        self.key, self.array, self.dtype = key, array, dtype


class _PlainTensor:
    """The tensor inside a Parameter, pickled as a plain tensor."""

    def __init__(self, tensor: Tensor):
        self.tensor = tensor


class _TorchPickler(pickle._Pickler):
    """The pure-Python pickler (protocol 2, as ``torch.save``) writing graphc tensors
    as PyTorch's ``_rebuild_tensor_v2`` calls on persistent storage ids, dtypes as
    ``torch.<dtype>``, and refusing anything ``torch.load(weights_only=True)`` would."""

    _PLAIN = (type(None), bool, int, float, str, dict, list, tuple, OrderedDict, Counter)

    def __init__(self, file):
        super().__init__(file, protocol=2)
        self.storages = {}          # (id of the root array, dtype) -> _StorageRef

    def persistent_id(self, obj):
        if type(obj) is not _StorageRef:
            return None
        return ("storage", _STORAGE_CLASSES[obj.dtype], obj.key, "cpu",
                len(obj.array) // obj.dtype.itemsize)

    def reducer_override(self, obj):
        if isinstance(obj, Tensor):
            if type(obj) is Parameter:
                return _REBUILD_PARAMETER, (_PlainTensor(obj), obj.requires_grad,
                                            OrderedDict())
            if type(obj) is not Tensor:
                raise TypeError(f"graphc.save cannot store a {type(obj).__name__}")
            return self._tensor(obj, obj.requires_grad)
        if type(obj) is _PlainTensor:       # as torch pickles a Parameter's data
            return self._tensor(obj.tensor, False)
        if type(obj) is Size:
            return _SIZE, (tuple(obj),)
        if type(obj) in self._PLAIN or type(obj) in (_Global, dtypes.DType) \
                or obj is OrderedDict or obj is Counter:
            return NotImplemented           # pickled as usual; the classes by name
        numpy_hint = " (PyTorch's weights_only loader refuses numpy objects too; " \
            "format='graphc' stores them)" if isinstance(obj, (np.ndarray, np.generic)) \
            else ""
        raise TypeError(f"graphc.save cannot store an object of type "
                        f"{type(obj).__module__}.{type(obj).__qualname__} in a PyTorch "
                        f"file; it saves tensors, numbers, strings, None, dtypes and "
                        f"dicts, lists and tuples of them (save a module's state_dict(), "
                        f"not the module){numpy_hint}")

    def _tensor(self, t: Tensor, requires_grad: bool):
        storage, offset, stride = self._storage(t._concrete("graphc.save"), t.dtype)
        return _REBUILD_TENSOR, (storage, offset, tuple(t.shape), stride, requires_grad,
                                 OrderedDict())

    def _storage(self, array: np.ndarray, dtype: dtypes.DType):
        """The storage a tensor views, its offset and strides in elements: the array's
        root buffer when the view is expressible in PyTorch's terms (non-negative strides
        in whole elements), so tensors sharing memory share a storage; else a copy."""
        root = array
        while isinstance(root.base, np.ndarray):
            root = root.base
        itemsize = dtype.itemsize
        start = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        if not (root.flags.c_contiguous and root.nbytes % itemsize == 0
                and start % itemsize == 0
                and all(s >= 0 and s % itemsize == 0 for s in array.strides)):
            root = array = np.ascontiguousarray(array)
            start = 0
        entry = (id(root), dtype)
        if entry not in self.storages:     # the entry's view keeps the root (and its id)
            flat = root.reshape(-1).view(np.uint8)
            self.storages[entry] = _StorageRef(str(len(self.storages)), flat, dtype)
        return (self.storages[entry], start // itemsize,
                tuple(s // itemsize for s in array.strides))

    def _save_global_ref(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    def _save_dtype(self, obj):
        self.save(_DTYPE_GLOBALS[obj])

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[_Global] = _save_global_ref
    dispatch[dtypes.DType] = _save_dtype


_ALIGNMENT = 64                     # torch aligns each record's data to 64 bytes


def save(obj, f) -> None:
    """Write ``obj`` as ``torch.save`` does (zip format, pickle protocol 2)."""
    pickled = io.BytesIO()
    pickler = _TorchPickler(pickled)
    pickler.dump(obj)
    records = [("data.pkl", pickled.getvalue()), (".format_version", b"1"),
               (".storage_alignment", str(_ALIGNMENT).encode()),
               ("byteorder", sys.byteorder.encode())]
    records += [(f"data/{ref.key}", ref.array) for ref in pickler.storages.values()]
    records += [("version", b"3\n"),
                (".data/serialization_id", str(int.from_bytes(os.urandom(16), "big"))
                 .zfill(40).encode())]
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        for member, data in records:
            info = zipfile.ZipInfo(f"archive/{member}", date_time=(1980, 1, 1, 0, 0, 0))
            header = 30 + len(info.filename.encode()) + 4
            pad = -(archive.fp.tell() + header) % _ALIGNMENT
            info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            archive.writestr(info, memoryview(data))
