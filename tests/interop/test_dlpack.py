"""DLPack both ways (``graphc/dlpack.py``, ``Tensor.__dlpack__``, ``graphc.from_dlpack``)
against real PyTorch and numpy: round trips share memory (a write through one is read
through the other) for every dtype both libraries have, views keep their strides, and
what PyTorch refuses graphc refuses with the same exception type."""
import gc
import weakref

import numpy as np
import pytest

import graphc
from graphc import dlpack, residency

torch = pytest.importorskip("torch")

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
          "float32", "float64"]


def _sample(name, shape=(2, 3)):
    return graphc.arange(int(np.prod(shape))).reshape(shape).to(getattr(graphc, name))


def _one(name):
    return True if name == "bool" else 7


@pytest.mark.parametrize("name", DTYPES)
def test_graphc_to_torch_to_graphc_shares_memory(name):
    g = _sample(name)
    t = torch.from_dlpack(g)                              # PyTorch's consumer
    back = graphc.from_dlpack(t)                          # graphc's consumer
    assert t.dtype == getattr(torch, name) and back.dtype == g.dtype
    assert t.data_ptr() == g._data.ctypes.data == back._data.ctypes.data
    t[1, 2] = _one(name)                                  # write through PyTorch
    assert g[1, 2].item() == back[1, 2].item() == t[1, 2].item()
    back[0, 0] = _one(name)                               # write through graphc
    assert t[0, 0].item() == g[0, 0].item()
    assert t.tolist() == g.tolist() == back.tolist()


@pytest.mark.parametrize("name", DTYPES)
def test_torch_to_graphc_to_torch_shares_memory(name):
    t = torch.arange(6).reshape(2, 3).to(getattr(torch, name))
    g = graphc.from_dlpack(t)
    again = torch.from_dlpack(g)
    assert g.dtype == getattr(graphc, name)
    assert t.data_ptr() == g._data.ctypes.data == again.data_ptr()
    g[0, 1] = _one(name)
    assert t[0, 1].item() == again[0, 1].item() == g[0, 1].item()


@pytest.mark.parametrize("name", [n for n in DTYPES if n != "bfloat16"])
def test_numpy_round_trip_shares_memory(name):
    g = _sample(name)
    a = np.from_dlpack(g)                                 # numpy's consumer
    assert a.dtype == g.dtype.np and a.ctypes.data == g._data.ctypes.data
    back = graphc.from_dlpack(a)
    a[1, 1] = _one(name)
    assert g[1, 1].item() == back[1, 1].item() == a[1, 1].item()


def test_bfloat16_numpy_arrays_are_taken_as_they_are():
    """numpy's own export refuses ml_dtypes' bfloat16; graphc.from_dlpack of an ndarray
    shares it directly, as ``from_numpy`` does."""
    import ml_dtypes
    a = np.ones(3, ml_dtypes.bfloat16)
    with pytest.raises(BufferError):
        a.__dlpack__()
    g = graphc.from_dlpack(a)
    a[0] = 5
    assert g.dtype is graphc.bfloat16 and g[0].item() == 5


@pytest.mark.parametrize("make", [
    lambda: graphc.arange(12.).reshape(3, 4).t()[1:],          # transposed slice
    lambda: graphc.arange(24.).reshape(2, 3, 4)[:, 1, ::2],      # step and offset
    lambda: graphc.arange(3.).expand(2, 3),                      # stride 0
    lambda: graphc.tensor(3.5),                                  # 0-d
    lambda: graphc.zeros(0, 3),                                  # empty
], ids=["transposed", "strided", "expanded", "0-d", "empty"])
def test_views_keep_their_layout(make):
    g = make()
    t = torch.from_dlpack(g)
    assert tuple(t.shape) == tuple(g.shape) and t.tolist() == g.tolist()
    if g.numel():
        assert t.stride() == g.stride() and t.data_ptr() == g._data.ctypes.data
    back = graphc.from_dlpack(t)
    assert back.shape == g.shape and back.tolist() == g.tolist()


def test_torch_views_come_in_with_their_strides_and_offset():
    base = torch.arange(24.).reshape(4, 6)
    t = base[1:, 2:5].t()
    g = graphc.from_dlpack(t)
    assert g.stride() == t.stride() and g.tolist() == t.tolist()
    g[0, 0] = -1
    assert base[1, 2].item() == -1


def test_negative_strides_are_exported_as_a_copy_flagged_copied():
    """PyTorch has no negative strides (its consumer aborts the process on one), so a
    flipped numpy view is exported as a contiguous copy, and the versioned capsule says
    so; copy=False refuses."""
    g = graphc.from_numpy(np.arange(5.)[::-1])
    t = torch.from_dlpack(g)
    assert t.tolist() == [4., 3., 2., 1., 0.] and t.data_ptr() != g._data.ctypes.data
    assert _flags(g.__dlpack__(max_version=(1, 0))) == dlpack.IS_COPIED
    assert _flags(graphc.ones(2).__dlpack__(max_version=(1, 0))) == 0
    with pytest.raises(BufferError, match="copy=False"):
        g.__dlpack__(max_version=(1, 0), copy=False)


def test_copy_true_copies_and_copy_false_shares():
    g = graphc.ones(3)
    copied = torch.from_dlpack(_Capsule(g.__dlpack__(max_version=(1, 0), copy=True)))
    copied[0] = 9
    assert g[0].item() == 1
    shared = torch.from_dlpack(_Capsule(g.__dlpack__(max_version=(1, 0), copy=False)))
    shared[0] = 9
    assert g[0].item() == 9


class _Capsule:
    """A producer handing out one given capsule (to feed a consumer a capsule made with
    chosen arguments)."""

    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, **kwargs):
        return self.capsule

    def __dlpack_device__(self):
        return (1, 0)


def test_capsule_kinds_and_device():
    g = graphc.ones(2)
    assert repr(g.__dlpack__()).startswith('<capsule object "dltensor"')
    assert repr(g.__dlpack__(max_version=(1, 0))).startswith(
        '<capsule object "dltensor_versioned"')
    assert repr(g.__dlpack__(max_version=(0, 8))).startswith('<capsule object "dltensor"')
    # PyTorch: (<DLDeviceType.kDLCPU: 1>, 0)
    assert g.__dlpack_device__() == torch.ones(1).__dlpack_device__() == (1, 0)
    assert g.__dlpack_device__()[0].name == "kDLCPU"


def test_legacy_capsules_both_ways():
    """``torch.utils.dlpack.to_dlpack`` / ``from_dlpack`` and graphc's spellings."""
    t = torch.arange(4.)
    g = graphc.utils.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(t))
    g[0] = 5
    assert t[0].item() == 5
    capsule = graphc.utils.dlpack.to_dlpack(g)
    assert repr(capsule).startswith('<capsule object "dltensor"')
    back = torch.utils.dlpack.from_dlpack(capsule)
    back[1] = 6
    assert g[1].item() == 6
    with pytest.raises(ValueError, match="consumed already"):
        graphc.from_dlpack(capsule)


def test_read_only_arrays():
    a = np.arange(3.)
    a.setflags(write=False)
    g = graphc.from_numpy(a)
    assert _flags(g.__dlpack__(max_version=(1, 0))) == dlpack.READ_ONLY
    out = graphc.from_dlpack(g)
    assert not out._data.flags.writeable                 # the READ_ONLY flag is read
    assert out._data.ctypes.data == a.ctypes.data
    # A legacy capsule cannot say read-only: a copy (numpy raises BufferError instead).
    assert graphc.from_dlpack(_Legacy(g))._data.flags.writeable
    with pytest.raises(BufferError):
        g.__dlpack__(copy=False)


def test_legacy_producers_are_read_as_writable():
    """numpy marks what a legacy capsule gives read-only; PyTorch and graphc do not."""
    t = torch.zeros(3)
    for producer in (_Legacy(t), torch.utils.dlpack.to_dlpack(t)):
        g = graphc.from_dlpack(producer)
        g[0] += 1
    assert t.tolist() == [2, 0, 0]


class _Legacy:
    """A producer from before DLPack 1.0: legacy capsules only."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __dlpack__(self, stream=None):
        return self.tensor.__dlpack__()

    def __dlpack_device__(self):
        return self.tensor.__dlpack_device__()


def test_refusals_match_pytorch():
    w, tw = graphc.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    with pytest.raises(BufferError, match="require gradient") as theirs:
        tw.__dlpack__()
    with pytest.raises(BufferError, match="require gradient") as ours:
        w.__dlpack__()
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(BufferError, match="require gradient"):
        torch.from_dlpack(w)
    for lib in (torch, graphc):                          # from_dlpack of its own kind
        with pytest.raises(BufferError, match="require gradient"):
            lib.from_dlpack(lib.ones(2, requires_grad=True))
    with pytest.raises(BufferError, match="require gradient"):
        graphc.from_dlpack(tw)
    with pytest.raises(ValueError, match="stream"):
        graphc.ones(2).__dlpack__(stream=1)              # PyTorch: an AssertionError
    with pytest.raises(BufferError, match="host memory"):
        graphc.ones(2).__dlpack__(dl_device=(2, 0))
    with pytest.raises(TypeError, match="DLPack capsule"):
        graphc.from_dlpack([1, 2])


def test_non_cpu_and_unsupported_dtypes_are_refused_by_name():
    def on_cuda(t):
        t.device.device_type = 2
    with pytest.raises(BufferError, match="kDLCUDA:0.*x.cpu"):
        graphc.from_dlpack(_Tweaked(np.zeros(2, np.float32), on_cuda, device=2))
    with pytest.raises(TypeError, match="unsupported DLPack dtype complex64"):
        graphc.from_dlpack(torch.ones(2, dtype=torch.complex64))
    with pytest.raises(TypeError, match="unsupported DLPack dtype uint16"):
        graphc.from_dlpack(torch.ones(2, dtype=torch.uint16))


def test_byte_offset_and_null_strides_are_read():
    """A producer may point ``data`` before the first element (``byte_offset``) and
    leave ``strides`` NULL for a compact row-major tensor."""
    import ml_dtypes
    base = np.arange(8).astype(ml_dtypes.bfloat16)
    view = base[2:].reshape(2, 3)

    def offset_and_compact(t):
        t.data -= 4
        t.byte_offset = 4
        t.strides = None
    g = graphc.from_dlpack(_Tweaked(view, offset_and_compact))
    assert g.dtype is graphc.bfloat16 and g.tolist() == [[2, 3, 4], [5, 6, 7]]
    g[0, 0] = 9
    assert base[2] == 9


class _Tweaked:
    """A producer whose capsule (graphc's export of ``array``) is changed by ``tweak``
    (the DLTensor) first: a device, a dtype, an offset graphc never exports itself."""

    def __init__(self, array, tweak, device=1):
        self.array, self.tweak, self.device = array, tweak, device

    def __dlpack__(self, **kwargs):
        capsule = dlpack.export(self.array, graphc.dtypes.from_numpy(self.array.dtype),
                                versioned=True)
        self.tweak(dlpack._ManagedVersioned.from_address(
            dlpack._api.PyCapsule_GetPointer(id(capsule), dlpack.VERSIONED)).dl_tensor)
        return capsule

    def __dlpack_device__(self):
        return (self.device, 0)


def test_exports_live_until_the_consumer_is_done():
    """numpy's export (bfloat16: of the uint16 view) keeps the array alive until the
    consumer's deleter runs, or until an unused capsule dies."""
    g = graphc.ones(1000, dtype=graphc.bfloat16)
    alive = weakref.ref(g._data)
    t = torch.from_dlpack(g)
    unused = g.__dlpack__(max_version=(1, 0))
    del g, unused
    gc.collect()
    assert alive() is not None and t.sum().item() == 1000
    del t
    gc.collect()
    assert alive() is None
    imported = graphc.from_dlpack(torch.ones(5, dtype=torch.bfloat16))
    gc.collect()
    assert imported.sum().item() == 5                     # PyTorch's memory, alive


def test_a_consumer_refusing_a_capsule_raises_its_own_error():
    """The capsule's destructor runs while the consumer's exception is pending: it must
    not swallow it (a destructor written in Python would: SystemError)."""
    with pytest.raises(RuntimeError, match="Unsupported dtype"):
        np.from_dlpack(graphc.ones(2, dtype=graphc.bfloat16))


def _flags(capsule) -> int:
    return dlpack._ManagedVersioned.from_address(
        dlpack._api.PyCapsule_GetPointer(id(capsule), dlpack.VERSIONED)).flags


@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")
@pytest.mark.parametrize("name", DTYPES)
def test_graphc_tensor_of_torch_tensors_copies_and_as_tensor_shares(name):
    t = torch.arange(4).to(getattr(torch, name))
    copied, shared = graphc.tensor(t), graphc.as_tensor(t)
    # PyTorch: torch.tensor(t) copies, torch.as_tensor(t) shares
    assert torch.tensor(t).data_ptr() != t.data_ptr() and torch.as_tensor(t) is t
    assert copied.dtype == shared.dtype == getattr(graphc, name)
    assert shared._data.ctypes.data == t.data_ptr() != copied._data.ctypes.data
    assert copied.tolist() == shared.tolist() == t.tolist()


def test_graphc_tensor_of_a_torch_tensor_that_requires_grad():
    t = torch.ones(3, dtype=torch.bfloat16, requires_grad=True)
    with pytest.warns(UserWarning):
        assert not torch.tensor(t).requires_grad         # PyTorch keeps the values only
    g = graphc.tensor(t)
    assert g.dtype is graphc.bfloat16 and not g.requires_grad and g.tolist() == [1, 1, 1]
    assert graphc.tensor(t, dtype=graphc.float64, requires_grad=True).requires_grad
    assert graphc.as_tensor(t, dtype=graphc.float32).dtype is graphc.float32
    assert graphc.Tensor(torch.ones(2, dtype=torch.float64)).dtype is graphc.float32


@pytest.mark.parametrize("name", DTYPES)
def test_torch_tensor_of_graphc_tensors(name):
    """torch.tensor reads a foreign object through ``__dlpack__`` (it ignores
    ``__array__`` of non-numpy objects) and copies, 0-d included."""
    for g in (_sample(name), _sample(name, ())):
        t = torch.tensor(g)
        assert t.dtype == getattr(torch, name) and t.tolist() == g.tolist()
        assert t.data_ptr() != g._data.ctypes.data


def test_torch_tensor_of_a_graphc_tensor_that_requires_grad_is_refused():
    """PyTorch copies a PyTorch tensor that requires grad; a graphc one reaches it only
    through ``__dlpack__``, which refuses such a tensor (as PyTorch's own does)."""
    with pytest.raises(BufferError, match="use tensor.detach"):
        torch.tensor(graphc.ones(2, requires_grad=True))
    assert torch.tensor(graphc.ones(2, requires_grad=True).detach()).tolist() == [1, 1]


@pytest.mark.filterwarnings("ignore:graphc.compile")
def test_export_while_tracing_is_a_graph_break():
    def f(x):
        return torch.from_dlpack(x * 2).sum().item()
    compiled = graphc.compile(f, backend="interpreter")
    assert compiled(graphc.ones(3)) == 6.0


def test_a_pending_device_value_is_brought_home_and_escapes():
    """A value a device program keeps (a pending DeviceCopy) is downloaded before the
    export, and never trusted on the device again: the consumer may write to it."""
    class Owner:
        def download(self, copy, array):
            np.copyto(array, [1, 2, 3, 4])
    a = np.zeros(4, np.float32)
    residency.place(a, residency.DeviceCopy(Owner(), "out", 0, pending=True))
    g = graphc.Tensor._wrap(a, graphc.float32)
    t = torch.from_dlpack(g)
    assert t.tolist() == [1, 2, 3, 4] and residency.find(a) is None
    assert not residency.can_stay_on_device(a)
    b = np.zeros(4, np.float32)
    residency.place(b, residency.DeviceCopy(Owner(), "out", 0, pending=True))
    copied = graphc.Tensor._wrap(b, graphc.float32).__dlpack__(max_version=(1, 0), copy=True)
    assert torch.from_dlpack(_Capsule(copied)).tolist() == [1, 2, 3, 4]


def _momentum_training(backend):
    """Three compiled SGD steps, a write through PyTorch into the momentum buffer (which
    a device program keeps on the device between steps), two more steps."""
    w = graphc.nn.Parameter(graphc.ones(4))
    opt = graphc.optim.SGD([w], lr=0.5, momentum=0.9)

    def step(x):
        opt.zero_grad()
        (w * x).sum().backward()
        opt.step()
    step = graphc.compile(step, backend=backend)
    x = graphc.arange(4.)
    for _ in range(3):
        step(x)
    buf = opt.state[w]["momentum_buffer"]
    pending = residency.find(buf._array) is not None and residency.find(buf._array).pending
    t = torch.from_dlpack(buf)
    seen = t.tolist()
    t[0] = 100.0
    for _ in range(2):
        step(x)
    return pending, seen, w.detach().tolist(), buf.tolist(), t.tolist()


def test_compiled_cuda_values_export_their_newest_value(fake_gpu):
    pending, *on_device = _momentum_training("cuda")
    assert pending                              # the buffer lived on the device
    _, *reference = _momentum_training("interpreter")
    assert on_device == reference
    assert on_device[2] == on_device[3]         # the write was seen, and shared after
