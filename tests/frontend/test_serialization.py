"""graphc.save / graphc.load in graphc's own format (format="graphc"): round trips of state
dicts, and clear errors for what cannot be stored or read.  PyTorch's format and
safetensors: tests/interop/test_checkpoints.py."""
import io
import json
import math
import zipfile
from collections import Counter, OrderedDict

import numpy as np
import pytest

import graphc
from graphc import nn, optim
from graphc.serialization import load, save


def _roundtrip(obj):
    buffer = io.BytesIO()
    save(obj, buffer, format="graphc")
    buffer.seek(0)
    return load(buffer)


@pytest.mark.parametrize("t", [
    graphc.tensor([[1.5, -2.0], [0.25, 3.0]]),
    graphc.tensor([1.0, 2.0], dtype=graphc.float64),
    graphc.tensor([1, -2, 3], dtype=graphc.int32),
    graphc.tensor([[2 ** 40, -1]]),
    graphc.tensor([True, False, True]),
    graphc.tensor(3.5),
    graphc.zeros(0, 3),
    graphc.arange(12.0).reshape(3, 4).t(),          # a non-contiguous view
], ids=["f32", "f64", "i32", "i64", "bool", "0-dim", "empty", "transposed"])
def test_tensor_round_trip_keeps_dtype_shape_values(t):
    got = _roundtrip(t)
    assert isinstance(got, graphc.Tensor) and got is not t
    assert got.dtype == t.dtype and got.shape == t.shape
    np.testing.assert_array_equal(got.numpy(), t.numpy())


def test_loaded_tensors_are_new_storage():
    t = graphc.ones(3)
    got = _roundtrip({"t": t})["t"]
    t.add_(1)
    assert got.tolist() == [1.0, 1.0, 1.0]
    got.mul_(5)
    assert t.tolist() == [2.0, 2.0, 2.0]


def test_nested_containers_and_scalars():
    obj = {"a": [1, 2.5, None, True, "text", (3, "x")], 7: {"inf": math.inf, "big": 2 ** 62},
           "nested": [[graphc.ones(2)], (graphc.zeros(1, dtype=graphc.int64),)],
           "np": np.arange(6, dtype=np.int32).reshape(2, 3), "npscalar": np.float32(0.5),
           "dtype": graphc.float64, (1, 2): "tuple key"}
    got = _roundtrip(obj)
    assert list(got) == ["a", 7, "nested", "np", "npscalar", "dtype", (1, 2)]
    assert got["a"] == [1, 2.5, None, True, "text", (3, "x")]
    assert type(got["a"][5]) is tuple and type(got["a"][0]) is int
    assert got[7] == {"inf": math.inf, "big": 2 ** 62}
    assert type(got["nested"][1]) is tuple and got["nested"][1][0].dtype == graphc.int64
    assert got["np"].dtype == np.int32 and got["np"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert got["npscalar"] == 0.5 and got["dtype"] is graphc.float64
    assert got[(1, 2)] == "tuple key"
    assert math.isnan(_roundtrip(float("nan")))
    assert _roundtrip(0.1) == 0.1 and _roundtrip(-0.0) == 0.0


def test_ordered_dict_is_preserved_as_such():
    od = OrderedDict([("z", graphc.ones(1)), ("a", graphc.zeros(1))])
    got = _roundtrip({"sd": od, "plain": {"k": 1}})
    assert type(got["sd"]) is OrderedDict and list(got["sd"]) == ["z", "a"]
    assert type(got["plain"]) is dict
    counts = _roundtrip(Counter([5, 5, 2]))
    assert type(counts) is Counter and counts == Counter({5: 2, 2: 1})


def test_shared_tensor_is_stored_once_and_loads_as_one_object():
    t = graphc.ones(4)
    buffer = io.BytesIO()
    save({"a": t, "b": [t]}, buffer, format="graphc")
    assert sum(n.startswith("tensors/") for n in zipfile.ZipFile(buffer).namelist()) == 1
    buffer.seek(0)
    got = load(buffer)
    assert got["a"] is got["b"][0]


def test_requires_grad_and_parameters_survive():
    w = nn.Parameter(graphc.ones(2))
    leaf = graphc.zeros(1, requires_grad=True)
    got = _roundtrip([w, leaf, graphc.ones(1)])
    assert isinstance(got[0], nn.Parameter) and got[0].requires_grad
    assert type(got[1]) is graphc.Tensor and got[1].requires_grad and got[1].is_leaf
    assert not got[2].requires_grad


def test_paths_and_file_objects(tmp_path):
    obj = {"w": graphc.arange(3.0)}
    for target in (str(tmp_path / "a.pt"), tmp_path / "b.pt"):
        save(obj, target, format="graphc")
        assert load(target)["w"].tolist() == [0.0, 1.0, 2.0]
    with open(tmp_path / "c.pt", "wb") as f:
        save(obj, f, format="graphc")
    with open(tmp_path / "c.pt", "rb") as f:
        assert load(f, map_location="cpu", weights_only=True)["w"].tolist() == [0.0, 1.0, 2.0]


def test_file_holds_json_and_npy_only():
    buffer = io.BytesIO()
    save({"w": graphc.ones(2, 2), "n": 3}, buffer, format="graphc")
    archive = zipfile.ZipFile(buffer)
    assert sorted(archive.namelist()) == ["manifest.json", "tensors/0.npy"]
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == "graphc" and manifest["version"] == 1
    array = np.load(io.BytesIO(archive.read("tensors/0.npy")), allow_pickle=False)
    assert array.dtype == np.float32 and array.shape == (2, 2)


def test_module_state_dict_round_trip():
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    sd = _roundtrip(model.state_dict())
    assert type(sd) is OrderedDict and list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    graphc.manual_seed(1)
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    weight = other[0].weight
    other.load_state_dict(sd)
    assert other[0].weight is weight
    x = graphc.randn(5, 3)
    np.testing.assert_array_equal(other(x).detach().numpy(), model(x).detach().numpy())


def test_optimizer_state_dict_round_trip_keeps_layout():
    p = graphc.ones(3, requires_grad=True)
    opt = optim.Adam([p], lr=0.01, amsgrad=True)
    p.grad = graphc.tensor([1.0, -2.0, 0.5])
    opt.step()
    sd = opt.state_dict()
    got = _roundtrip(sd)
    assert list(got["state"]) == [0] and type(list(got["state"])[0]) is int
    assert got["param_groups"] == sd["param_groups"]
    assert got["param_groups"][0]["betas"] == (0.9, 0.999)
    for key, value in sd["state"][0].items():
        assert got["state"][0][key].dtype == value.dtype
        np.testing.assert_array_equal(got["state"][0][key].numpy(), value.numpy())


@pytest.mark.parametrize("obj,name", [
    (nn.Linear(2, 2), "of type graphc.nn.*Linear; .*save a module's state_dict"),
    ({"s": {1, 2}}, r"builtins\.set"),
    ([lambda: 0], r"builtins\.function"),
    (np.array([object()]), "arrays of Python objects"),
])
def test_unsupported_objects_name_their_type(obj, name):
    with pytest.raises(TypeError, match=name):
        save(obj, io.BytesIO(), format="graphc")


def _zip(members: dict) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    buffer.seek(0)
    return buffer


def _manifest(obj, **overrides) -> str:
    return json.dumps({"format": "graphc", "version": 1, "object": obj, **overrides})


@pytest.mark.parametrize("data,match", [
    (io.BytesIO(b"definitely not a zip"), "not a graphc file \\(not a zip archive\\)"),
    (_zip({"archive/data.pkl": b"\x80\x02"}), "corrupt"),
    (_zip({"other.txt": b"x"}), "no manifest.json"),
    (_zip({"manifest.json": b"{not json"}), "unreadable manifest"),
    (_zip({"manifest.json": json.dumps({"format": "other"})}), "is not a graphc file"),
    (_zip({"manifest.json": _manifest(None, version=99)}), "format version 99"),
    (_zip({"manifest.json": _manifest({"tensor": 0, "dtype": "float32"})}),
     "tensor 0 is missing"),
    (_zip({"manifest.json": _manifest({"tensor": 0, "dtype": "float32"}),
           "tensors/0.npy": b"garbage"}), "tensor 0 cannot be read"),
    (_zip({"manifest.json": _manifest({"bogus": 1})}), "corrupt"),
    (_zip({"manifest.json": _manifest({"tensor": 0, "dtype": "nope"})}), "corrupt"),
])
def test_corrupt_or_foreign_files_raise_clearly(data, match):
    with pytest.raises(RuntimeError, match=match):
        load(data)


def test_dtype_disagreeing_with_manifest_is_corrupt():
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(2, np.int64))
    data = _zip({"manifest.json": _manifest({"tensor": 0, "dtype": "float32"}),
                 "tensors/0.npy": buffer.getvalue()})
    with pytest.raises(RuntimeError, match="stored as int64, but the manifest says float32"):
        load(data)


def test_pickled_npy_is_refused():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    data = _zip({"manifest.json": _manifest({"ndarray": 0}), "tensors/0.npy": buffer.getvalue()})
    with pytest.raises(RuntimeError, match="cannot be read"):
        load(data)
