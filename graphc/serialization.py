"""``graphc.save`` / ``graphc.load``: state dicts in a file that cannot run code.

A graphc file is a zip archive holding ``manifest.json`` (the object tree, with every
container, number and string written as tagged JSON) and one ``tensors/<i>.npy`` per
distinct tensor, read back with ``np.load(allow_pickle=False)``.  Nothing is ever
unpickled, so loading an untrusted file cannot execute anything; the price is that only
data can be saved (tensors, numpy arrays, numbers, strings, None, dtypes and
dict/OrderedDict/Counter/list/tuple of those), not modules or arbitrary objects.

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
from collections import Counter, OrderedDict

import numpy as np

from graphc import dtypes
from graphc.nn.module import Parameter
from graphc.tensor import Tensor

_FORMAT = "graphc"
_VERSION = 1
_MANIFEST = "manifest.json"
_MAPPING_TAGS = {dict: "dict", OrderedDict: "odict", Counter: "counter"}
_MAPPING_TYPES = {tag: cls for cls, tag in _MAPPING_TAGS.items()}


def save(obj, f) -> None:
    """Write ``obj`` (typically a ``state_dict()``) to a path or a binary file object.

    >>> graphc.save(model.state_dict(), "model.pt")
    """
    writer = _Writer()
    tree = writer.encode(obj)
    manifest = {"format": _FORMAT, "version": _VERSION, "object": tree}
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(_MANIFEST, json.dumps(manifest))
        for i, array in enumerate(writer.arrays):
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(f"tensors/{i}.npy", buffer.getvalue())


def load(f, map_location=None, weights_only=None):
    """Read an object written by ``graphc.save`` from a path or a binary file object.

    ``map_location`` and ``weights_only`` are accepted for PyTorch compatibility: graphc
    tensors live on the host and graphc files only ever hold data.
    """
    name = f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "<file>")
    try:
        archive = zipfile.ZipFile(f)
    except zipfile.BadZipFile:
        raise RuntimeError(f"graphc.load: {name} is not a graphc file (not a zip "
                           f"archive)") from None
    with archive:
        manifest = _read_manifest(archive, name)
        reader = _Reader(archive, name)
        try:
            return reader.decode(manifest["object"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RuntimeError(f"graphc.load: {name} is corrupt ({type(e).__name__}: "
                               f"{e})") from None


def _read_manifest(archive, name) -> dict:
    names = archive.namelist()
    if _MANIFEST not in names:
        hint = " (it looks like a PyTorch checkpoint, which graphc does not read: it " \
               "holds pickled Python objects)" if any(n.endswith("data.pkl") for n in names) \
            else ""
        raise RuntimeError(f"graphc.load: {name} is not a graphc file: no "
                           f"{_MANIFEST}{hint}")
    try:
        manifest = json.loads(archive.read(_MANIFEST))
    except (ValueError, UnicodeDecodeError) as e:
        raise RuntimeError(f"graphc.load: {name} has an unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise RuntimeError(f"graphc.load: {name} is not a graphc file")
    if manifest.get("version") != _VERSION:
        raise RuntimeError(f"graphc.load: {name} has format version "
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
        node = {"tensor": self._array(t, t._data), "dtype": t.dtype.name,
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

    def decode(self, node):
        if node is None or isinstance(node, (bool, str)):
            return node
        if not isinstance(node, dict) or not node:
            raise ValueError(f"bad manifest node {node!r}")
        tag = "tensor" if "tensor" in node else next(iter(node))
        value = node[tag]
        if tag in self._SCALARS:
            return self._SCALARS[tag](value)
        if tag in ("list", "tuple"):
            items = [self.decode(v) for v in value]
            return items if tag == "list" else tuple(items)
        if tag in _MAPPING_TYPES:
            items = dict((self.decode(k), self.decode(v)) for k, v in value)
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
                with self.archive.open(f"tensors/{index}.npy") as member:
                    self._arrays[index] = np.load(io.BytesIO(member.read()),
                                                  allow_pickle=False)
            except KeyError:
                raise RuntimeError(f"graphc.load: {self.name} is corrupt: tensor {index} "
                                   f"is missing") from None
            except (ValueError, OSError, zipfile.BadZipFile) as e:
                raise RuntimeError(f"graphc.load: {self.name} is corrupt: tensor {index} "
                                   f"cannot be read ({e})") from None
        return self._arrays[index]


def _restore_class(t: Tensor, class_name):
    """A saved ``nn.Parameter`` loads back as a Parameter (as torch.load gives)."""
    if class_name != "Parameter":
        return t
    return Parameter(t, requires_grad=t.requires_grad)
