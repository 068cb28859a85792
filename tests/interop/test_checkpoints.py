"""Checkpoints beside PyTorch, with real PyTorch as the oracle: PyTorch's .pt files (zip and
legacy) load into graphc modules and give PyTorch's outputs; files graphc writes load in
``torch.load(weights_only=True)``; safetensors both ways; hostile files are refused before
anything runs; damaged files give clear errors."""
import io
import os
import pickle
import struct
import zipfile
from collections import Counter, OrderedDict

import numpy as np
import pytest
from hypothesis import given, strategies as st

import graphc
from graphc.serialization import (DamagedFileError, UnsafeCheckpointError,
                                  UnsupportedCheckpointError)

torch = pytest.importorskip("torch")

CONTAINERS = ["zip", "legacy"]


def torch_bytes(obj, container="zip") -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=container == "zip")
    return buffer.getvalue()


def graphc_bytes(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    graphc.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def as_numpy(t) -> np.ndarray:
    """Values of a graphc or PyTorch tensor, bfloat16 as its bits."""
    if isinstance(t, torch.Tensor):
        t = t.detach()
        return t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
    array = t.detach().numpy()
    return array.view(np.int16) if t.dtype == graphc.bfloat16 else array


def net(lib):
    """The same small network in PyTorch or graphc: conv, batch norm, embedding, layer
    norm, and a linear layer whose weight is the embedding's (tied)."""
    nn = lib.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.emb = nn.Embedding(10, 4)
            self.ln = nn.LayerNorm(4)
            self.fc = nn.Linear(4, 10)
            self.fc.weight = self.emb.weight

        def forward(self, x, idx):
            return self.fc(self.bn(self.conv(x)).mean((2, 3)) + self.ln(self.emb(idx)))
    return Net()


def trained_torch_net():
    torch.manual_seed(0)
    model = net(torch)
    x, idx = torch.randn(2, 3, 6, 6), torch.tensor([1, 7])
    model(x, idx).sum().backward()         # batch norm's running stats move once
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    return model.eval(), x, idx


@pytest.mark.parametrize("container", CONTAINERS)
def test_a_pytorch_state_dict_loads_strictly_and_gives_pytorch_outputs(container):
    model, x, idx = trained_torch_net()
    sd = graphc.load(io.BytesIO(torch_bytes(model.state_dict(), container)))
    assert type(sd) is OrderedDict and list(sd) == list(model.state_dict())
    assert sd["bn.num_batches_tracked"].dtype == graphc.int64
    assert sd["bn.num_batches_tracked"].item() == 1
    assert np.shares_memory(sd["fc.weight"].numpy(), sd["emb.weight"].numpy())
    ours = net(graphc)
    ours.load_state_dict(sd, strict=True)
    ours.eval()
    got = ours(graphc.tensor(x.numpy()), graphc.tensor(idx.numpy()))
    np.testing.assert_allclose(got.detach().numpy(), model(x, idx).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


DTYPES = ["bfloat16", "float16", "float32", "float64", "int8", "uint8", "int16", "int32",
          "int64", "bool"]


def dtype_zoo(lib):
    """Every graphc dtype, as whole tensors, transposed views and views at an offset."""
    base = lib.arange(24, dtype=lib.float64).reshape(4, 6) * 1.75 - 20
    out = {}
    for name in DTYPES:
        t = base.to(getattr(lib, name))
        out[name] = t
        out[name + ".t"] = t.t()
        out[name + ".slice"] = t[1:, 2:5]
    out["scalar"] = lib.tensor(2.5)
    out["empty"] = lib.zeros(0, 3)
    return out


@pytest.mark.parametrize("container", CONTAINERS)
def test_every_dtype_stride_and_offset_from_pytorch(container):
    zoo = dtype_zoo(torch)
    got = graphc.load(io.BytesIO(torch_bytes(zoo, container)))
    for key, expected in zoo.items():
        assert str(got[key].dtype) == str(expected.dtype).replace("torch.", "graphc."), key
        assert got[key].shape == tuple(expected.shape)
        assert got[key].stride() == expected.stride(), key
        np.testing.assert_array_equal(as_numpy(got[key]), as_numpy(expected), err_msg=key)
    # the views share memory with their whole tensor, as in PyTorch
    assert np.shares_memory(got["int8.slice"].numpy(), got["int8"].numpy())
    assert np.shares_memory(got["float32.t"].numpy(), got["float32"].numpy())


def test_a_big_endian_zip_file_loads_the_same_values():
    zoo = {"f": torch.arange(5.0) - 2.5, "i": torch.arange(4) * 1000,
           "h": torch.arange(3.0, dtype=torch.bfloat16)}
    data = torch_bytes(zoo)
    members = members_of(data)
    dtype_of = {"0": ">f4", "1": ">i8", "2": ">i2"}
    for n in list(members):
        key = n.rsplit("/", 1)[-1]
        if n.endswith("byteorder"):
            members[n] = b"big"
        elif "/data/" in n:
            little = dtype_of[key].replace(">", "<")
            members[n] = np.frombuffer(members[n], little).astype(dtype_of[key]).tobytes()
    got = graphc.load(io.BytesIO(zipped(members)))
    for key, t in zoo.items():
        np.testing.assert_array_equal(as_numpy(got[key]), as_numpy(t))


def members_of(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def zipped(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def pickle_in_zip(pickled: bytes, template: bytes = None) -> bytes:
    """The PyTorch zip checkpoint ``template`` (a small one by default) with ``pickled``
    as its data.pkl, and valid CRCs, so the reader sees the pickle however damaged."""
    members = members_of(template or torch_bytes({"w": torch.ones(2)}))
    members["archive/data.pkl"] = pickled
    return zipped(members)


@pytest.mark.slow          # the first torch.optim use in a process costs ~1 s
def test_an_optimizer_resumes_from_a_pytorch_checkpoint():
    torch.manual_seed(0)
    x = torch.randn(4, 3)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1, amsgrad=True)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 3], gamma=0.5)

    def step(model, opt, sched, x):
        opt.zero_grad()
        model(x).square().sum().backward()
        opt.step()
        sched.step()
    for _ in range(2):
        step(model, opt, sched, x)
    state = graphc.load(io.BytesIO(torch_bytes({
        "model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()})))
    assert type(state["sched"]["milestones"]) is Counter
    ours = graphc.nn.Linear(3, 2)
    ours.load_state_dict(state["model"], strict=True)
    ours_opt = graphc.optim.Adam(ours.parameters(), lr=123.0)
    ours_opt.load_state_dict(state["opt"])
    ours_sched = graphc.optim.lr_scheduler.MultiStepLR(ours_opt, milestones=[9])
    ours_sched.load_state_dict(state["sched"])
    for _ in range(2):
        step(model, opt, sched, x)
        step(ours, ours_opt, ours_sched, graphc.tensor(x.numpy()))
    for theirs, mine in zip(model.parameters(), ours.parameters()):
        np.testing.assert_allclose(mine.detach().numpy(), theirs.detach().numpy(), rtol=1e-5)
    # and back: a fresh PyTorch optimizer resumes from graphc's checkpoint
    back = torch.load(io.BytesIO(graphc_bytes({"opt": ours_opt.state_dict(),
                                               "sched": ours_sched.state_dict()})),
                      weights_only=True)
    opt = torch.optim.Adam(model.parameters(), lr=123.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[9])
    opt.load_state_dict(back["opt"])
    sched.load_state_dict(back["sched"])
    step(model, opt, sched, x)
    step(ours, ours_opt, ours_sched, graphc.tensor(x.numpy()))
    for theirs, mine in zip(model.parameters(), ours.parameters()):
        np.testing.assert_allclose(mine.detach().numpy(), theirs.detach().numpy(), rtol=1e-5)


def trained_graphc_state():
    graphc.manual_seed(0)
    model = graphc.nn.Linear(3, 2)
    opt = graphc.optim.AdamW(model.parameters(), lr=0.1)
    sched = graphc.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 1, 3])
    model(graphc.randn(4, 3)).square().sum().backward()
    opt.step()
    sched.step()
    return model, {"model": model.state_dict(), "opt": opt.state_dict(),
                   "sched": sched.state_dict(), "epoch": 3, "dtype": graphc.bfloat16,
                   "shape": graphc.zeros(2, 5).shape, "weight": model.weight}


def test_a_graphc_checkpoint_loads_in_pytorch_with_weights_only():
    model, state = trained_graphc_state()
    got = torch.load(io.BytesIO(graphc_bytes(state)), weights_only=True)
    assert got["epoch"] == 3 and got["dtype"] is torch.bfloat16
    assert got["shape"] == torch.Size([2, 5]) and type(got["shape"]) is torch.Size
    assert type(got["sched"]["milestones"]) is Counter
    assert type(got["weight"]) is torch.nn.Parameter and got["weight"].requires_grad
    assert got["opt"]["param_groups"] == state["opt"]["param_groups"]
    for key, value in state["opt"]["state"][0].items():
        np.testing.assert_array_equal(as_numpy(got["opt"]["state"][0][key]), as_numpy(value))
    theirs = torch.nn.Linear(3, 2)
    theirs.load_state_dict(got["model"], strict=True)
    x = np.random.default_rng(0).standard_normal((5, 3), np.float32)
    np.testing.assert_allclose(theirs(torch.tensor(x)).detach().numpy(),
                               model(graphc.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_pytorch_sees_graphc_dtypes_strides_and_shared_storage():
    zoo = dtype_zoo(graphc)
    got = torch.load(io.BytesIO(graphc_bytes(zoo)), weights_only=True)
    for key, expected in zoo.items():
        assert str(got[key].dtype).replace("torch.", "graphc.") == str(expected.dtype), key
        assert got[key].stride() == expected.stride(), key
        np.testing.assert_array_equal(as_numpy(got[key]), as_numpy(expected), err_msg=key)
    assert got["int8.slice"].untyped_storage().data_ptr() == \
        got["int8"].untyped_storage().data_ptr()
    assert got["int8.slice"].storage_offset() == 8


def test_the_written_file_is_pytorchs_layout():
    data = graphc_bytes({"w": graphc.ones(3), "flipped": graphc.arange(4.0).flip(0)})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert names[:4] == ["archive/data.pkl", "archive/.format_version",
                             "archive/.storage_alignment", "archive/byteorder"]
        assert names[-2:] == ["archive/version", "archive/.data/serialization_id"]
        for info in archive.infolist():
            if "/data/" in info.filename:
                assert (info.header_offset + 30 + len(info.filename) + len(info.extra)) \
                    % 64 == 0
        pickled = archive.read("archive/data.pkl")
    assert pickled[:2] == b"\x80\x02"
    assert b"numpy" not in pickled and b"graphc" not in pickled
    got = torch.load(io.BytesIO(data), weights_only=True)
    assert got["flipped"].tolist() == [3.0, 2.0, 1.0, 0.0]


def test_round_trip_through_graphc_keeps_sharing_and_types():
    w = graphc.nn.Parameter(graphc.arange(6.0).reshape(2, 3))
    obj = {"w": w, "t": w.detach().t(), "again": w, "n": [1, 2.5, None, True, "s", (3,)],
           7: graphc.int16}
    got = graphc.load(io.BytesIO(graphc_bytes(obj)))
    assert type(got["w"]) is graphc.nn.Parameter and got["again"] is got["w"]
    assert np.shares_memory(got["t"].numpy(), got["w"].detach().numpy())
    assert got["n"] == [1, 2.5, None, True, "s", (3,)] and got[7] is graphc.int16


@pytest.mark.parametrize("obj,match", [
    ({"a": np.ones(2)}, "numpy.ndarray .*format='graphc'"),
    ({"a": np.float32(1)}, "numpy.float32 .*format='graphc'"),
    ({"s": {1, 2}}, r"builtins\.set"),
    (graphc.nn.Linear(2, 2), "Linear.*state_dict"),
])
def test_what_pytorch_would_not_load_is_refused_when_saving(obj, match):
    with pytest.raises(TypeError, match=match):
        graphc_bytes(obj)


def test_numpy_objects_go_to_graphcs_own_format():
    got = graphc.load(io.BytesIO(graphc_bytes({"a": np.arange(3), "s": np.float32(1.5)},
                                              format="graphc")))
    assert got["a"].tolist() == [0, 1, 2] and got["s"] == 1.5
    with pytest.raises(ValueError, match="unknown format 'onnx'"):
        graphc_bytes({}, format="onnx")


# ---- safetensors ------------------------------------------------------------------------------

def test_safetensors_written_by_safetensors_torch(tmp_path):
    st_torch = pytest.importorskip("safetensors.torch")
    zoo = {k: v.contiguous() for k, v in dtype_zoo(torch).items()}
    path = tmp_path / "m.safetensors"
    st_torch.save_file(zoo, str(path), metadata={"epoch": "3"})
    got = graphc.load(path)
    assert set(got) == set(zoo)
    for key, expected in zoo.items():
        assert str(got[key].dtype).replace("graphc.", "torch.") == str(expected.dtype)
        np.testing.assert_array_equal(as_numpy(got[key]), as_numpy(expected), err_msg=key)


def test_safetensors_written_by_graphc(tmp_path):
    safetensors = pytest.importorskip("safetensors")
    st_torch = pytest.importorskip("safetensors.torch")
    model = net(graphc)
    path = tmp_path / "m.safetensors"
    graphc.save(model.state_dict(), path, metadata={"note": "tied"})
    theirs = st_torch.load_file(str(path))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(as_numpy(theirs[key]), as_numpy(value))
    with safetensors.safe_open(str(path), "np") as f:
        assert f.metadata() == {"note": "tied"}
    other = net(graphc)
    other.load_state_dict(graphc.load(path), strict=True)
    assert other.fc.weight is other.emb.weight
    np.testing.assert_array_equal(other.fc.weight.detach().numpy(),
                                  model.fc.weight.detach().numpy())
    zoo = dtype_zoo(graphc)
    got = graphc.load(io.BytesIO(graphc_bytes(zoo, format="safetensors")))
    for key, value in zoo.items():
        assert got[key].dtype == value.dtype
        np.testing.assert_array_equal(as_numpy(got[key]), as_numpy(value))


def test_safetensors_refusals(monkeypatch):
    pytest.importorskip("safetensors")
    with pytest.raises(TypeError, match="dict of str to tensors.*'n': int"):
        graphc_bytes({"w": graphc.ones(1), "n": 3}, format="safetensors")
    with pytest.raises(TypeError, match="metadata is stored only in safetensors"):
        graphc_bytes({}, metadata={"a": "b"})
    header = b'{"c":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}'
    data = struct.pack("<Q", len(header)) + header + bytes(8)
    with pytest.raises(UnsupportedCheckpointError, match="'c' of safetensors dtype C64"):
        graphc.load(io.BytesIO(data))
    good = graphc_bytes({"w": graphc.ones(4)}, format="safetensors")
    with pytest.raises(DamagedFileError, match="corrupt"):
        graphc.load(io.BytesIO(good[:-3]))
    monkeypatch.setitem(__import__("sys").modules, "safetensors", None)
    with pytest.raises(ImportError, match=r"graphc\[safetensors\]"):
        graphc.load(io.BytesIO(good))


# ---- hostile files ----------------------------------------------------------------------------

class Touch:
    """Unpickling this runs os.system: the attack a restricted loader must stop."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


class Eval:
    def __reduce__(self):
        return eval, ("1 + 1",)


def hostile_files(payload):
    """The payload as the pickle of a PyTorch zip file and of a legacy file."""
    pickled = pickle.dumps(payload, protocol=2)
    legacy = b"".join(pickle.dumps(x, protocol=2) for x in (
        0x1950a86a20f9469cfc6c, 1001, {"protocol_version": 1001, "little_endian": True})) \
        + pickled + pickle.dumps([], protocol=2)
    return {"zip": pickle_in_zip(pickled), "legacy": legacy}


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("payload,name", [
    (lambda marker: Touch(marker), "posix.system"),
    (lambda marker: OrderedDict(w=[Touch(marker)]), "posix.system"),
    (lambda marker: Eval(), "builtins.eval"),
    (lambda marker: {"a": [1, {"b": Eval()}]}, "builtins.eval"),
], ids=["os.system", "os.system-nested", "eval", "eval-nested"])
def test_a_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path, container, payload,
                                                             name):
    marker = tmp_path / "pwned"
    data = hostile_files(payload(marker))[container]
    with pytest.raises(UnsafeCheckpointError, match=f"refused GLOBAL {name}"):
        graphc.load(io.BytesIO(data))
    assert not marker.exists()
    if container == "zip":              # PyTorch refuses it with the same exception type
        with pytest.raises(pickle.UnpicklingError):
            torch.load(io.BytesIO(data), weights_only=True)
        assert not marker.exists()


@pytest.mark.parametrize("pickled,what", [
    (b"\x80\x02ctorch\nfloat32\n}X\x04\x00\x00\x00nameX\x01\x00\x00\x00xsb.", "BUILD"),
    (b"\x80\x02]ctorch\nfloat32\n(K\x01tR.", "a call of"),
    (b"(ctorch\nfloat32\nK\x01o.", "OBJ"),
    (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n)\x81.", "NEWOBJ"),
    (b"\x80\x02ctorch\nfloat32\nK\x01a.", "filling a DType"),
    (b"\x80\x02X\x04\x00\x00\x00evilQ.", "persistent id"),
])
def test_opcodes_that_build_or_call_anything_else_are_refused(pickled, what):
    with pytest.raises(UnsafeCheckpointError, match=what):
        graphc.load(io.BytesIO(pickle_in_zip(pickled)))
    assert graphc.float32.name == "float32"


def test_what_graphc_lacks_is_named():
    data = torch_bytes({"z": torch.ones(2, dtype=torch.complex64)})
    with pytest.raises(UnsupportedCheckpointError, match="torch.ComplexFloatStorage"):
        graphc.load(io.BytesIO(data))


# ---- damaged files ----------------------------------------------------------------------------

REFUSALS = (DamagedFileError, UnsafeCheckpointError, UnsupportedCheckpointError)


@pytest.mark.parametrize("container", CONTAINERS)
def test_truncated_pytorch_files_are_refused(container):
    data = torch_bytes(trained_torch_net()[0].state_dict(), container)
    for length in list(range(0, len(data), max(1, len(data) // 97))) + [len(data) - 1]:
        with pytest.raises(DamagedFileError, match="graphc.load: <file> "):
            graphc.load(io.BytesIO(data[:length]))


def test_a_storage_shorter_than_its_tensor_needs_is_refused():
    class Overreach:
        def __reduce__(self):
            storage = torch.zeros(4).untyped_storage()
            return torch._utils._rebuild_tensor_v2, (
                torch.storage.TypedStorage(wrap_storage=storage, dtype=torch.float32,
                                           _internal=True),
                1, (2, 3), (3, 1), False, OrderedDict())
    with pytest.raises(DamagedFileError, match=r"size \[2, 3\], stride \[3, 1\] and offset "
                                               r"1 needs 7 elements .* holds 4"):
        graphc.load(io.BytesIO(torch_bytes(Overreach())))
    data = torch_bytes({"w": torch.ones(4)})
    members = members_of(data)
    members["archive/data/0"] = members["archive/data/0"][:8]
    with pytest.raises(DamagedFileError, match="storage 0 holds 8 bytes, but the pickle "
                                               "says 4 float32 elements"):
        graphc.load(io.BytesIO(zipped(members)))


def test_a_legacy_storage_declaring_more_than_the_file_holds_is_refused():
    data = bytearray(torch_bytes({"w": torch.ones(4)}, "legacy"))
    count = data.rindex(struct.pack("<q", 4))
    data[count:count + 8] = struct.pack("<q", 5)
    with pytest.raises(DamagedFileError, match="storage .* holds 5 elements"):
        graphc.load(io.BytesIO(bytes(data)))


def corrupt(good: bytes, data) -> bytes:
    """A few bytes of ``good`` overwritten, dropped or repeated, as hypothesis draws."""
    damaged = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        offset = data.draw(st.integers(0, len(damaged) - 1), label="offset")
        edit = data.draw(st.sampled_from(["set", "drop", "repeat"]), label="edit")
        if edit == "set":
            damaged[offset] = data.draw(st.integers(0, 255), label="byte")
        elif edit == "drop":
            del damaged[offset]
        else:
            damaged[offset:offset] = damaged[offset:offset + 8]
    return bytes(damaged)


@pytest.mark.parametrize("container", CONTAINERS + ["pickle"])
@given(data=st.data())
def test_random_corruptions_never_crash_or_hang(container, data):
    if container == "pickle":
        pickled = members_of(CORRUPTIBLE["zip"])["archive/data.pkl"]
        damaged = pickle_in_zip(corrupt(pickled, data), CORRUPTIBLE["zip"])
    else:
        damaged = corrupt(CORRUPTIBLE[container], data)
    try:
        graphc.load(io.BytesIO(damaged))
    except REFUSALS:
        pass


CORRUPTIBLE = {c: torch_bytes({"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(3),
                               "h": [1, "x", (2.5,)], "p": torch.nn.Parameter(torch.ones(2)),
                               "o": OrderedDict(s=torch.Size([2]))}, c)
               for c in CONTAINERS}


def test_legacy_storages_adding_up_to_more_than_the_file_are_refused_before_allocating():
    data = torch_bytes({"s": [torch.zeros(40) for _ in range(30)]}, "legacy")
    cut = data[:len(data) - 29 * (8 + 160)]      # all but one storage's count and bytes
    with pytest.raises(DamagedFileError, match="storages so far .* more than the file"):
        graphc.load(io.BytesIO(cut))


def test_python_attributes_of_a_pytorch_tensor_load_and_private_ones_are_refused():
    t = torch.arange(3.0)
    t.note = "calibrated"
    got = graphc.load(io.BytesIO(torch_bytes({"t": t})))["t"]
    assert got.note == "calibrated" and got.tolist() == [0.0, 1.0, 2.0]
    t._version_hack = 1
    with pytest.raises(UnsafeCheckpointError, match="only public attribute names"):
        graphc.load(io.BytesIO(torch_bytes({"t": t})))


def test_pytorchs_load_arguments_are_accepted(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.arange(3.0)}, path)
    got = graphc.load(path, map_location="cpu", weights_only=True, mmap=True)
    assert got["w"].tolist() == [0.0, 1.0, 2.0]
