"""``graphc.load`` on damaged and hostile files: whatever the damage, the only exception
is ``DamagedFileError`` (a RuntimeError, as torch.load raises for a damaged zip, and an
UnpicklingError, as it raises for a damaged pickle) naming the file and the problem;
zip bombs and deep nesting are refused before they cost memory or the stack."""
import io
import json
import pickle
import time
import zipfile

import numpy as np
import pytest

import graphc
from graphc.serialization import DamagedFileError


def checkpoint() -> bytes:
    """A small but typical file: a state dict and an optimizer's nested state."""
    model = graphc.nn.Linear(3, 2)
    state = {"model": model.state_dict(), "step": 7,
             "optim": {"state": {0: {"exp_avg": graphc.zeros(2, 3)}},
                       "param_groups": [{"lr": 0.1, "params": [0, 1]}]}}
    buffer = io.BytesIO()
    graphc.save(state, buffer, format="graphc")
    return buffer.getvalue()


GOOD = checkpoint()


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, graphc.Tensor):
        return a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy())
    return a == b


def loads_or_refuses(data: bytes):
    """The file loads to the original object, or is refused with DamagedFileError."""
    try:
        loaded = graphc.load(io.BytesIO(data))
    except DamagedFileError as e:
        assert str(e).startswith("graphc.load: <file> ")
        return None
    assert same(loaded, graphc.load(io.BytesIO(GOOD)))
    return loaded


def test_the_error_is_caught_as_torch_users_catch_a_damaged_file():
    assert issubclass(DamagedFileError, RuntimeError)
    assert issubclass(DamagedFileError, pickle.UnpicklingError)


def test_every_truncation_is_refused():
    for length in range(len(GOOD)):
        with pytest.raises(DamagedFileError):
            graphc.load(io.BytesIO(GOOD[:length]))


def test_a_flipped_byte_at_any_offset_loads_intact_or_is_refused():
    refused = 0
    for offset in range(len(GOOD)):
        for mask in (0x01, 0x80, 0xFF):
            data = bytearray(GOOD)
            data[offset] ^= mask
            refused += loads_or_refuses(bytes(data)) is None
    assert refused > len(GOOD)              # most bytes matter: the CRCs see data flips


@pytest.mark.parametrize("data,match", [
    (b"", "not a zip archive"),
    (b"\x80\x02}q\x00.", "not a zip archive"),             # a pickle
    (b"PK\x03\x04" + b"\0" * 100, "not a zip archive"),
    (b"PK\x05\x06" + b"\xff" * 18, "not a zip archive|corrupt"),
    (GOOD.replace(b"PK\x01\x02", b"PX\x01\x02"), "not a zip archive|corrupt"),
])
def test_wrong_magic_and_garbage(data, match):
    with pytest.raises(DamagedFileError, match=match):
        graphc.load(io.BytesIO(data))


def test_the_message_names_the_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(GOOD[:100])
    with pytest.raises(DamagedFileError, match=f"graphc.load: {path} "):
        graphc.load(path)
    with pytest.raises(FileNotFoundError):
        graphc.load(tmp_path / "missing.pt")


@pytest.mark.slow
def test_torch_load_raises_runtime_error_for_a_truncated_file_as_graphc_does():
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buffer)
    with pytest.raises(RuntimeError):
        torch.load(io.BytesIO(buffer.getvalue()[:-10]))
    with pytest.raises(RuntimeError):
        graphc.load(io.BytesIO(GOOD[:-10]))


def archive(members: dict, compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def manifest(obj) -> str:
    return json.dumps({"format": "graphc", "version": 1, "object": obj})


def test_a_100_mb_zip_bomb_is_refused_before_inflating():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("manifest.json", manifest({"ndarray": 0}))
        with z.open("tensors/0.npy", "w", force_zip64=True) as member:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "<f4", "fortran_order": False, "shape": (25 << 20,)})
            member.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(100):
                member.write(chunk)
    data = buffer.getvalue()
    assert len(data) < 1 << 20
    start = time.perf_counter()
    with pytest.raises(DamagedFileError, match="zip bomb: member 'tensors/0.npy' declares "
                                               "104857728 bytes"):
        graphc.load(io.BytesIO(data))
    assert time.perf_counter() - start < 0.5


def test_a_member_declaring_an_absurd_size_is_refused():
    data = bytearray(archive({"manifest.json": manifest({"ndarray": 0}),
                              "tensors/0.npy": b"x" * 64}))
    # the central directory's uncompressed size of the second member: 2**32 - 1
    entry = data.rindex(b"PK\x01\x02")
    data[entry + 24:entry + 28] = b"\xff\xff\xff\x7f"
    with pytest.raises(DamagedFileError, match="declares 2147483647 bytes"):
        graphc.load(io.BytesIO(bytes(data)))


def test_many_members_adding_up_to_a_bomb_are_refused(monkeypatch):
    monkeypatch.setattr(graphc.checkpoint.archive, "_FLOOR", 1 << 16)
    members = {"manifest.json": manifest(None)}
    members.update({f"junk/{i}": bytes(1 << 14) for i in range(64)})
    data = archive(members, zipfile.ZIP_DEFLATED)
    with pytest.raises(DamagedFileError, match="in all so far"):
        graphc.load(io.BytesIO(data))


def test_a_compressed_checkpoint_still_loads():
    with zipfile.ZipFile(io.BytesIO(GOOD)) as z:
        members = {name: z.read(name) for name in z.namelist()}
    assert same(graphc.load(io.BytesIO(archive(members, zipfile.ZIP_DEFLATED))),
                graphc.load(io.BytesIO(GOOD)))


def test_an_npy_header_claiming_a_huge_shape_is_refused_without_allocating():
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (1 << 40, 1 << 20)})
    data = archive({"manifest.json": manifest({"ndarray": 0}),
                    "tensors/0.npy": header.getvalue() + bytes(8)})
    with pytest.raises(DamagedFileError, match="tensor 0 cannot be read .*header says"):
        graphc.load(io.BytesIO(data))


@pytest.mark.parametrize("depth", [150, 100_000])
def test_deep_nesting_is_refused_without_a_crash(depth):
    text = '{"format": "graphc", "version": 1, "object": ' + '{"list": [' * depth \
        + "null" + "]}" * depth + "}"
    with pytest.raises(DamagedFileError, match="nested"):
        graphc.load(io.BytesIO(archive({"manifest.json": text})))


def test_nesting_as_deep_as_a_real_state_dict_loads():
    obj = None
    for _ in range(50):
        obj = [obj]
    buffer = io.BytesIO()
    graphc.save(obj, buffer, format="graphc")
    assert graphc.load(io.BytesIO(buffer.getvalue())) == obj


@pytest.mark.parametrize("obj", [
    {"int": [1]}, {"float": {"x": 1}}, {"dict": [[1]]}, {"dict": 5}, {"tensor": [0]},
    {"tensor": 0, "dtype": 3}, {"dtype": ["x"]}, {"int": "9" * 5000}, [1, 2], 3.5,
])
def test_malformed_manifest_nodes_are_corrupt(obj):
    with pytest.raises(DamagedFileError, match="corrupt"):
        graphc.load(io.BytesIO(archive({"manifest.json": manifest(obj)})))
