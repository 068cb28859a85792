"""``graphc.save`` / ``graphc.load``: checkpoints in three formats, none of which can run
code when read (``docs/checkpoints.md``).

* ``"pytorch"`` (the default): PyTorch's zip format, which ``torch.load(f,
  weights_only=True)`` reads; ``graphc.load`` also reads PyTorch's own ``.pt``/``.pth``
  files, zip and legacy, with an allow-listed unpickler (``graphc.checkpoint.pytorch``).
* ``"safetensors"`` (the default for a path ending in ``.safetensors``): a flat dict of
  tensors, through the optional ``safetensors`` library.
* ``"graphc"``: graphc's own zip archive, below, which also stores numpy arrays.

``load`` tells the formats apart by their content, not the file name.

A graphc file is a zip archive holding ``manifest.json`` (the object tree, with every
container, number and string written as tagged JSON) and one ``tensors/<i>.npy`` per
distinct tensor, read back with ``np.load(allow_pickle=False)``.  Nothing is ever
unpickled; only data can be saved (tensors, numpy arrays, numbers, strings, None, dtypes
and dict/OrderedDict/Counter/list/tuple of those), not modules or arbitrary objects.

Manifest nodes: JSON null/bools/strings stand for themselves; everything else is a
one-key object: ``{"int": 3}``, ``{"float": "0.1"}`` (repr, so inf and nan survive),
``{"list": [...]}``, ``{"tuple": [...]}``, ``{"dict": [[k, v], ...]}`` (keys may be any
node, e.g. the int keys of an optimizer state), ``{"odict": ...}``, ``{"counter": ...}``
(a MultiStepLR's milestones), ``{"tensor": i}``
(with dtype and requires_grad), ``{"ndarray": i}``, ``{"dtype": "float32"}``.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from collections import Counter, OrderedDict

import numpy as np

from graphc import dtypes
from graphc.checkpoint import pytorch, safetensors_file
from graphc.checkpoint.archive import (DAMAGE, DamagedFileError, UnsafeCheckpointError,
                                       UnsupportedCheckpointError, check_sizes,
                                       read_member)
from graphc.nn.module import Parameter
from graphc.tensor import Tensor

__all__ = ["save", "load", "DamagedFileError", "UnsafeCheckpointError",
           "UnsupportedCheckpointError"]

_FORMAT = "graphc"
_VERSION = 1
_MANIFEST = "manifest.json"
_MAPPING_TAGS = {dict: "dict", OrderedDict: "odict", Counter: "counter"}
_MAPPING_TYPES = {tag: cls for cls, tag in _MAPPING_TAGS.items()}
_FORMATS = ("pytorch", "safetensors", "graphc")
_MAX_DEPTH = 100                   # a state dict nests a few levels; the manifest's limit


def save(obj, f, *, format=None, metadata=None) -> None:
    """Write ``obj`` (typically a ``state_dict()``) to a path or a binary file object.

    ``format`` is ``"pytorch"`` (the default: a file ``torch.load(f, weights_only=True)``
    reads), ``"safetensors"`` (the default for a path ending in ``.safetensors``; a dict
    of str to tensors, with optional str ``metadata``) or ``"graphc"`` (graphc's own
    format, which also stores numpy arrays)::

        graphc.save(model.state_dict(), "model.pt")
        graphc.save(model.state_dict(), "model.safetensors", metadata={"step": "10"})
    """
    if format is None:
        is_path = isinstance(f, (str, os.PathLike))
        format = "safetensors" if is_path and os.fspath(f).endswith(".safetensors") \
            else "pytorch"
    if format not in _FORMATS:
        raise ValueError(f"graphc.save: unknown format {format!r}; expected one of "
                         f"{', '.join(map(repr, _FORMATS))}")
    if metadata is not None and format != "safetensors":
        raise TypeError("graphc.save: metadata is stored only in safetensors files")
    if format == "safetensors":
        safetensors_file.save(obj, f, metadata)
    elif format == "pytorch":
        pytorch.save(obj, f)
    else:
        _save_graphc(obj, f)


def _save_graphc(obj, f) -> None:
    writer = _Writer()
    tree = writer.encode(obj)
    manifest = {"format": _FORMAT, "version": _VERSION, "object": tree}
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(_MANIFEST, json.dumps(manifest))
        for i, array in enumerate(writer.arrays):
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(f"tensors/{i}.npy", buffer.getvalue())


def load(f, map_location=None, weights_only=None, mmap=None):
    """Read a checkpoint from a path or a binary file object: a graphc file, a PyTorch
    ``.pt``/``.pth`` file (zip or legacy format) or a safetensors file.

    Nothing in the file is ever run: a PyTorch file naming anything beyond tensor
    reconstruction and plain containers raises :class:`UnsafeCheckpointError` (a
    ``pickle.UnpicklingError``, as ``torch.load(weights_only=True)`` raises) whatever
    ``weights_only`` says.  ``map_location`` and ``mmap`` are accepted for PyTorch
    compatibility: loaded tensors live in host memory.  A damaged file raises :class:`DamagedFileError`
    naming the file and the problem; a missing file raises ``FileNotFoundError``.
    """
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as opened:
            return _load(opened, os.fspath(f))
    return _load(f, getattr(f, "name", "<file>"))


def _load(f, name):
    try:
        size = f.seek(0, os.SEEK_END) - f.seek(0)
        head = f.read(len(pytorch.LEGACY_PREFIX))
        f.seek(0)
        if head == pytorch.LEGACY_PREFIX:
            return pytorch.load_legacy(f, name, size)
        if safetensors_file.looks_like_safetensors(head, size):
            return safetensors_file.load(f.read(), name)
        try:
            archive = zipfile.ZipFile(f)
        except zipfile.BadZipFile:
            raise DamagedFileError(f"graphc.load: {name} is not a graphc file (not a zip "
                                   f"archive), nor a PyTorch or safetensors "
                                   f"file") from None
        with archive:
            check_sizes(archive, name, size)
            if _MANIFEST not in archive.namelist():
                return pytorch.load_zip(archive, name)
            manifest = _read_manifest(archive, name)
            return _Reader(archive, name).decode(manifest["object"])
    except (DamagedFileError, UnsafeCheckpointError, UnsupportedCheckpointError):
        raise
    except DAMAGE as e:
        what = "it is nested too deeply" if isinstance(e, RecursionError) else \
            f"{type(e).__name__}: {e}"
        raise DamagedFileError(f"graphc.load: {name} is corrupt ({what})") from None


def _read_manifest(archive, name) -> dict:
    try:
        manifest = json.loads(read_member(archive, _MANIFEST))
    except (ValueError, UnicodeDecodeError) as e:
        raise DamagedFileError(f"graphc.load: {name} has an unreadable manifest "
                               f"({e})") from None
    except RecursionError:
        raise DamagedFileError(f"graphc.load: {name} has an unreadable manifest (nested "
                               f"too deeply)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise DamagedFileError(f"graphc.load: {name} is not a graphc file")
    if manifest.get("version") != _VERSION:
        raise DamagedFileError(f"graphc.load: {name} has format version "
                               f"{manifest.get('version')}; this graphc reads version "
                               f"{_VERSION}")
    return manifest


class _Writer:
    """Turns an object tree into manifest nodes, collecting arrays; a tensor reached
    twice is stored once and loads back as one object."""

    def __init__(self):
        self.arrays = []
        self._index_of = {}

    def encode(self, obj):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, (int, np.integer)):
            return {"int": int(obj)}
        if isinstance(obj, (float, np.floating)):
            return {"float": repr(float(obj))}
        if isinstance(obj, Tensor):
            return self._tensor(obj)
        if isinstance(obj, np.ndarray):
            return {"ndarray": self._array(obj, obj)}
        if isinstance(obj, dtypes.DType):
            return {"dtype": obj.name}
        if type(obj) in _MAPPING_TAGS:
            return {_MAPPING_TAGS[type(obj)]: [[self.encode(k), self.encode(v)]
                                               for k, v in obj.items()]}
        if type(obj) in (list, tuple):
            return {type(obj).__name__: [self.encode(v) for v in obj]}
        raise TypeError(f"graphc.save cannot store an object of type "
                        f"{type(obj).__module__}.{type(obj).__qualname__}; it saves tensors, "
                        f"numpy arrays, numbers, strings, None, dtypes and dicts, lists and "
                        f"tuples of them (save a module's state_dict(), not the module)")

    def _tensor(self, t: Tensor) -> dict:
        data = t._data
        if t.dtype is dtypes.bfloat16:       # .npy has no bfloat16: its bits, as uint16
            data = data.view(np.uint16)
        node = {"tensor": self._array(t, data), "dtype": t.dtype.name,
                "requires_grad": t.requires_grad}
        if type(t) is not Tensor:
            node["class"] = type(t).__name__
        return node

    def _array(self, owner, array: np.ndarray) -> int:
        if array.dtype.hasobject:
            raise TypeError("graphc.save cannot store numpy arrays of Python objects")
        key = id(owner)
        if key not in self._index_of:
            self._index_of[key] = len(self.arrays)
            self.arrays.append(array)
        return self._index_of[key]


class _Reader:
    """Rebuilds the object tree from manifest nodes; arrays are read once each."""

    _SCALARS = {"int": int, "float": float}

    def __init__(self, archive, name):
        self.archive = archive
        self.name = name
        self._arrays = {}
        self._tensors = {}

    def decode(self, node, depth=0):
        if node is None or isinstance(node, (bool, str)):
            return node
        if not isinstance(node, dict) or not node:
            raise ValueError(f"bad manifest node {node!r:.80}")
        if depth > _MAX_DEPTH:
            raise ValueError(f"the object is nested more than {_MAX_DEPTH} levels deep")
        tag = "tensor" if "tensor" in node else next(iter(node))
        value = node[tag]
        if tag in self._SCALARS:
            return self._SCALARS[tag](value)
        if tag in ("list", "tuple"):
            items = [self.decode(v, depth + 1) for v in value]
            return items if tag == "list" else tuple(items)
        if tag in _MAPPING_TYPES:
            items = dict((self.decode(k, depth + 1), self.decode(v, depth + 1))
                         for k, v in value)
            return items if tag == "dict" else _MAPPING_TYPES[tag](items)
        if tag == "tensor":
            return self._tensor(node)
        if tag == "ndarray":
            return self._array(value).copy()
        if tag == "dtype":
            return dtypes.from_name(value)
        raise ValueError(f"unknown manifest node {tag!r}")

    def _tensor(self, node) -> Tensor:
        index = node["tensor"]
        if index not in self._tensors:
            dtype = dtypes.from_name(node["dtype"])
            array = self._array(index)
            if dtype is dtypes.bfloat16 and array.dtype == np.uint16:
                array = array.view(dtype.np)
            if array.dtype != dtype.np:
                raise ValueError(f"tensor {index} is stored as {array.dtype}, but the "
                                 f"manifest says {dtype.name}")
            t = Tensor._wrap(array, dtype)
            if node.get("requires_grad"):
                t.requires_grad_(True)
            self._tensors[index] = _restore_class(t, node.get("class"))
        return self._tensors[index]

    def _array(self, index) -> np.ndarray:
        if index not in self._arrays:
            try:
                self._arrays[index] = _npy(read_member(self.archive, f"tensors/{index}.npy"))
            except KeyError:
                raise DamagedFileError(f"graphc.load: {self.name} is corrupt: tensor "
                                       f"{index} is missing") from None
            except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as e:
                raise DamagedFileError(f"graphc.load: {self.name} is corrupt: tensor "
                                       f"{index} cannot be read ({e})") from None
        return self._arrays[index]


def _npy(data: bytes) -> np.ndarray:
    """An array from ``.npy`` bytes whose header must describe exactly the data that
    follows (numpy would allocate whatever shape the header claims before reading)."""
    stream = io.BytesIO(data)
    fmt = np.lib.format
    header = fmt.read_array_header_1_0 if fmt.read_magic(stream) == (1, 0) else \
        fmt.read_array_header_2_0
    shape, fortran, dtype = header(stream)
    if dtype.hasobject:
        raise ValueError("it holds Python objects, which graphc never unpickles")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if len(data) - stream.tell() != expected:
        raise ValueError(f"its header says {dtype}{list(shape)} ({expected} bytes), but "
                         f"{len(data) - stream.tell()} bytes follow")
    array = np.frombuffer(data, dtype, offset=stream.tell()).reshape(
        shape, order="F" if fortran else "C")
    return array.copy()


def _restore_class(t: Tensor, class_name):
    """A saved ``nn.Parameter`` loads back as a Parameter (as torch.load gives)."""
    if class_name != "Parameter":
        return t
    return Parameter(t, requires_grad=t.requires_grad)
