"""Sorting, selection, searching, sampling and scatter-style ops against PyTorch: values,
indices and gradients, eagerly and compiled; data-dependent ops eagerly, and as graph
breaks inside ``graphc.compile``."""
import numpy as np
import pytest

import graphc
from harness import check_function, to_numpy, torch

rng = np.random.default_rng(0)
nan = float("nan")

# Ties, NaNs, signed zeros and infinities in one row; a second row without them.
TRICKY = np.array([[3., nan, 1., 3., -0., 0., nan, 1., 2., -np.inf],
                   [0.5, -1., 2., 7., 4., -3., 8., 1.5, 9., 6.]], np.float32)
INTS = np.array([[3, 1, 3, -2, 0, 1, 7], [5, 5, 5, 1, 1, 0, -1]], np.int64)


def distinct(*shape):
    """Floats without ties (so every index is determined), as float64 for gradients."""
    return rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) / 7 - 3


# ---- sorting --------------------------------------------------------------------------------
@pytest.mark.parametrize("descending", [False, True])
def test_sort_ties_nan_zeros_stable(descending):
    check_function(lambda lib, x: (*lib.sort(x, descending=descending),
                                   x.sort(dim=0, descending=descending, stable=True).indices,
                                   lib.argsort(x, dim=-1, descending=descending)),
                   TRICKY, grad=False)


def test_sort_gradients_and_dims():
    check_function(lambda lib, x: (lib.sort(x, 1).values, x.sort(dim=-1).values * 2,
                                   lib.sort(x, 0, descending=True).values, lib.msort(x)),
                   distinct(3, 5, 2))


def test_sort_int_bool_empty_and_scalar():
    check_function(lambda lib, a, b, e, s: (*lib.sort(a, descending=True), *lib.sort(b),
                                            *lib.sort(e, -1), *lib.sort(s),
                                            lib.argsort(a, dim=0, stable=True)),
                   INTS, np.array([True, False, True, False]), np.zeros((2, 0), np.float32),
                   np.array(5.0, np.float32), grad=False)
    check_function(lambda lib, a: lib.sort(a, descending=True), INTS.astype(np.int32),
                   grad=False, modes=("interpreter",))


def test_sort_returns_named_tuple():
    out = graphc.sort(graphc.tensor([2., 1.]))
    assert type(out).__name__ == "sort" and out._fields == ("values", "indices")
    values, indices = out
    assert values.tolist() == [1., 2.] and indices.tolist() == [1, 0]


def test_sort_long_row_compiled():
    """A 200-element row: 8 network rounds of stages, ties and NaNs included."""
    x = rng.integers(0, 20, (2, 200)).astype(np.float32)
    x[0, ::17] = nan
    check_function(lambda lib, x: lib.sort(x, descending=True, stable=True), x, grad=False,
                   modes=("interpreter",))


def test_topk():
    check_function(lambda lib, x: (*lib.topk(x, 3), *x.topk(2, dim=0, largest=False),
                                   *lib.topk(x, 5, 1, True, True)),
                   distinct(4, 5))
    # Ties: the values are PyTorch's; the tied indices' order PyTorch leaves unspecified.
    check_function(lambda lib, x: lib.topk(x, 4).values, TRICKY, grad=False)
    check_function(lambda lib, x: (lib.topk(x, 0).values, lib.topk(x, 2, 0)[1]),
                   np.zeros((2, 3), np.float32), grad=False, modes=())


def test_kthvalue_median_nanmedian_mode():
    check_function(lambda lib, x: (*lib.kthvalue(x, 2), *x.kthvalue(3, 0, True),
                                   *lib.median(x, 1), lib.median(x), *x.median(0, keepdim=True),
                                   *lib.nanmedian(x, -1), x.nanmedian()),
                   distinct(3, 5))
    check_function(lambda lib, x: (*lib.kthvalue(x, 4), *lib.kthvalue(x, 9), *lib.median(x, 1),
                                   lib.median(x), *lib.nanmedian(x, 1), lib.nanmedian(x),
                                   *lib.nanmedian(lib.full((2, 3), float("nan")), 1)),
                   TRICKY, grad=False, modes=("interpreter",))
    check_function(lambda lib, x: (*lib.median(x, 1), *lib.mode(x, 1), *lib.mode(x[:, :4], 0),
                                   *lib.kthvalue(x, 1, 1)), INTS, grad=False,
                   modes=("interpreter",))
    # A full median's gradient is split among the elements equal to it.
    check_function(lambda lib, x: (lib.median(x), x.nanmedian(), x[0].median(),
                                   lib.median(x[:, 1])), np.array(
        [[2., np.inf, 1., 2.], [2., np.inf, 3., 3.], [nan, 1., 1., nan]]), modes=("cpu",))
    check_function(lambda lib, x: (*lib.mode(x), *x.mode(0, keepdim=True)),
                   rng.integers(0, 3, (4, 6)).astype(np.float64), modes=("cpu",))


@pytest.mark.parametrize("call, error", [
    (lambda lib: lib.topk(lib.ones(3), 4), RuntimeError),
    (lambda lib: lib.kthvalue(lib.ones(3), 0), RuntimeError),
    (lambda lib: lib.kthvalue(lib.ones(3), 4), RuntimeError),
    (lambda lib: lib.sort(lib.ones(3), dim=1), IndexError),
    (lambda lib: lib.median(lib.ones(0, 3), 0), IndexError),
    (lambda lib: lib.mode(lib.zeros(0)), IndexError),
    (lambda lib: lib.nanmedian(lib.zeros(2, 0), 1), IndexError),
])
def test_sorting_errors(call, error):
    with pytest.raises(error):
        call(torch)
    with pytest.raises(error):
        call(graphc)


# ---- searching ------------------------------------------------------------------------------
def test_searchsorted_and_bucketize():
    seq = np.array([-1., 0., 0., 2., 2., 2., 5., nan], np.float32)
    values = np.array([[-2., 0., 1., 2., 5., 7.], [nan, 2., -1., 0.5, 5., -np.inf]], np.float32)
    check_function(lambda lib, s, v: (lib.searchsorted(s, v), lib.searchsorted(s, v, right=True),
                                      lib.searchsorted(s, v, side="right", out_int32=True),
                                      lib.bucketize(v, s), lib.bucketize(v, s, right=True)),
                   seq, values, grad=False)
    rows = np.sort(rng.integers(0, 9, (3, 5)), 1)
    check_function(lambda lib, s, v: (lib.searchsorted(s, v), lib.searchsorted(s, v, right=True)),
                   rows, rng.integers(-1, 10, (3, 4)), grad=False)
    perm = np.array([2, 0, 3, 1])
    check_function(lambda lib, s, v, p: lib.searchsorted(s, v, sorter=p),
                   np.array([3., 1., 4., 2.]), np.array([2.5, 0., 9.]), perm, grad=False,
                   modes=("interpreter",))
    check_function(lambda lib, s: (lib.searchsorted(s, 2.5), lib.searchsorted(s, 0)),
                   np.array([1., 2., 3.]), grad=False, modes=())


# ---- sampling -------------------------------------------------------------------------------
def test_multinomial_reproducible_and_distributed():
    probs = graphc.tensor([[0.1, 0.0, 0.6, 0.3], [1.0, 1.0, 0.0, 2.0]])
    graphc.manual_seed(3)
    a = graphc.multinomial(probs, 4000, replacement=True)
    graphc.manual_seed(3)
    b = probs.multinomial(4000, True)
    assert a.dtype == graphc.int64 and a.shape == (2, 4000)
    assert (a.numpy() == b.numpy()).all()
    freq = np.stack([np.bincount(r, minlength=4) for r in a.numpy()]) / 4000
    np.testing.assert_allclose(freq, [[0.1, 0, 0.6, 0.3], [0.25, 0.25, 0, 0.5]], atol=0.03)
    draws = graphc.multinomial(graphc.tensor([1., 0., 5., 2.]), 3)
    assert sorted(draws.tolist()) == [0, 2, 3]                 # no repeats, no zero category
    firsts = np.bincount([graphc.multinomial(graphc.tensor([1., 3.]), 1).item()
                          for _ in range(400)], minlength=2) / 400
    np.testing.assert_allclose(firsts, [0.25, 0.75], atol=0.08)
    assert sorted(graphc.multinomial(graphc.tensor([1., 0., 1.]), 3).tolist()) == [0, 1, 2]


def test_multinomial_compiled_draws_anew():
    f = graphc.compile(lambda p: graphc.multinomial(p, 6, replacement=True), fullgraph=True)
    p = graphc.tensor([0.2, 0.0, 0.8])
    first, second = f(p).numpy(), f(p).numpy()
    assert set(first) | set(second) <= {0, 2} and first.shape == (6,)
    g = graphc.compile(lambda p: graphc.multinomial(p, 3), fullgraph=True)
    assert sorted(g(graphc.tensor([1., 2., 3., 0.])).tolist()) == [0, 1, 2]


@pytest.mark.parametrize("probs, n, replacement", [
    ([1., -1.], 1, True), ([0., 0.], 1, False), ([1., 1.], 3, False), ([1., nan], 1, True),
    ([[[1.]]], 1, True)])
def test_multinomial_errors(probs, n, replacement):
    for lib in (torch, graphc):
        with pytest.raises(RuntimeError):
            lib.multinomial(lib.tensor(probs), n, replacement)
    with pytest.raises(RuntimeError):
        graphc.multinomial(graphc.tensor([1, 2]), 1)


# ---- scatters -------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
def test_scatter_forms():
    x, src = distinct(3, 4), distinct(2, 4)
    index = np.array([[2, 0, 1, 2], [0, 1, 2, 0]])
    check_function(lambda lib, x, i, s: (lib.scatter(x, 0, i, s), x.scatter(1, i[:, :3] % 4, 2.5),
                                         lib.scatter(x, 0, i, value=-1.0)),
                   x, index, src)
    check_function(lambda lib, x, i, s: (lib.scatter(x, 0, i, s, reduce="add"),
                                         x.scatter(1, i.int(), 2.0, reduce="multiply")),
                   x, index, src, grad=False, modes=("interpreter",))
    dup = np.array([[0, 0, 1]])
    check_function(lambda lib, x, i, s: x.scatter(1, i, s, reduce="multiply"),
                   distinct(2, 4), dup, distinct(1, 3), grad=False)
    check_function(lambda lib, x, i: (lib.scatter(x, 0, i, lib.ones_like(x) > 0),
                                      x.scatter(0, i, 7)),
                   np.array([1, 0, 3, 2], np.int64) > 1, np.array([3, 1]), grad=False)


def test_repeated_indices_last_write_wins():
    """PyTorch's CPU loops let the last of several writes to one element win."""
    check_function(lambda lib, x, i, s, j, r, c: (
        lib.scatter(x, 1, i, s), x.scatter(1, i, -1.0), (x > 0).scatter(1, i, s > 0),
        x.index_copy(1, j, s), lib.index_put(x, (r, c), s[0, :4]),
        lib.index_copy(x.t().int(), 0, j, s.t().int())),
        np.zeros((2, 5)), np.array([[0, 3, 0, 0, 3], [4, 4, 1, 2, 4]]),
        np.array([[1., 2., -0., 4., 5.], [-6., 7., 8., 9., -10.]]),
        np.array([1, 1, 0, 4, 1]), np.array([0, 1, 0, 0]), np.array([2, 2, 2, 3]),
        grad=False)


def test_scatter_inplace():
    def f(lib, x, i, s):
        y = x.clone()
        y.scatter_(0, i, s)
        w = x.clone()
        w.scatter_reduce_(0, i, s, "amax", include_self=False)
        return y, w
    check_function(f, distinct(3, 3), np.array([[1, 2, 0]]), distinct(1, 3))


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(reduce, include_self):
    index = np.array([[0, 0, 3], [1, 3, 3]])
    check_function(lambda lib, x, i, s: lib.scatter_reduce(x, 1, i, s, reduce,
                                                           include_self=include_self),
                   distinct(2, 5), index, distinct(2, 3) + 0.01, modes=("interpreter",))
    check_function(lambda lib, x, i, s: x.scatter_reduce(0, i, s, reduce,
                                                         include_self=include_self),
                   np.array([4, -2, 6, 8]), np.array([0, 0, 1, 0, 2]),
                   np.array([5, 7, -3, 2, 9]), grad=False, modes=())


def test_scatter_reduce_compiled_cpu():
    check_function(lambda lib, x, i, s: (lib.scatter_reduce(x, 0, i, s, "amax"),
                                         lib.scatter_reduce(x, 0, i, s, "mean", include_self=False),
                                         x.scatter_reduce(0, i, s, "prod")),
                   distinct(4), np.array([0, 0, 2]), distinct(3), modes=("cpu",))


def test_scatter_reduce_with_tensor_src_warns_as_pytorch():
    """(PyTorch's warning is emitted once per process, so only graphc's is checked.)"""
    with pytest.warns(UserWarning, match="reduce argument of torch.scatter"):
        graphc.zeros(3).scatter(0, graphc.tensor([1]), graphc.ones(1), reduce="add")


def test_scatter_errors():
    for lib in (torch, graphc):
        x = lib.zeros(3, 3)
        with pytest.raises(RuntimeError):
            x.scatter(0, lib.tensor([[0.]]), 1.0)
        with pytest.raises(RuntimeError):
            x.scatter(0, lib.tensor([[0]]), lib.ones(1, 1, dtype=lib.float64))
        with pytest.raises(RuntimeError):
            x.scatter_reduce(0, lib.tensor([[0]]), lib.ones(1, 1), "median")
        with pytest.raises(RuntimeError):
            x.scatter(0, lib.tensor([[5]]), 1.0)


def test_index_copy_fill_put():
    x = distinct(4, 3)
    check_function(lambda lib, x, i, s: (lib.index_copy(x, 0, i, s), x.index_fill(1, i[:1], -2.0),
                                         lib.index_fill(x, 0, i, lib.tensor(1.5, dtype=x.dtype)),
                                         lib.index_put(x, (i, i[:1]), s[:, 0]),
                                         lib.index_put(x, (i,), s, accumulate=True)),
                   x, np.array([2, 0]), distinct(2, 3))
    check_function(lambda lib, x, r, c, v: lib.index_put(x, (r, c), v, accumulate=True),
                   distinct(3, 3), np.array([0, 2, 0, -1]), np.array([1, 1, 1, 0]),
                   distinct(4), modes=("interpreter",))

    def inplace(lib, x, i, s):
        y = x.clone()
        y.index_copy_(1, i, s)
        y.index_fill_(0, i[1:], 3.0)
        y.index_put_((i[1:], i), s[0], accumulate=True)
        y.index_add_(1, i, s.t())
        return y
    check_function(inplace, distinct(2, 3), np.array([2, 0]), distinct(2, 2))


def test_take_and_take_along_dim():
    x = distinct(3, 4)
    check_function(lambda lib, x, i: (lib.take(x, i), x.take(i[0]),
                                      lib.take_along_dim(x, lib.argsort(x, 1), 1),
                                      lib.take_along_dim(x, (i % 3)[:, :1], 0),
                                      lib.take_along_dim(x, i % 12)),
                   x, np.array([[0, -1, 5], [11, 3, 3]]))
    for lib in (torch, graphc):
        with pytest.raises(IndexError):
            lib.take(lib.zeros(6), lib.tensor([7]))


def test_masked_scatter():
    mask = np.array([[True, False, True], [False, False, True]])
    check_function(lambda lib, x, m, s: (lib.masked_scatter(x, m, s), x.masked_scatter(m[1], s)),
                   distinct(2, 3), mask, distinct(5))

    def inplace(lib, x, m, s):
        y = x.clone()
        return y.masked_scatter_(m, s)
    check_function(inplace, distinct(2, 3), mask, distinct(3))
    for lib in (torch, graphc):
        with pytest.raises(RuntimeError):
            lib.zeros(3).masked_scatter(lib.tensor([True, True, True]), lib.ones(2))


def test_histc():
    x = rng.standard_normal(50).astype(np.float32)
    check_function(lambda lib, x: (lib.histc(x, 7), x.histc(5, -1, 1), lib.histc(x, 4, 0.5, 0.5),
                                   lib.histc(x[:1], 3)),
                   x, grad=False)
    for lib, error in ((torch, NotImplementedError), (graphc, NotImplementedError)):
        with pytest.raises(error):
            lib.histc(lib.tensor([1, 2, 3]), 3)


# ---- data-dependent output shapes -----------------------------------------------------------
def test_nonzero_argwhere_where_masked_select():
    x = np.array([[0., 1.5, 0.], [nan, 0., -2.]], np.float32)
    check_function(lambda lib, x: (lib.nonzero(x), *lib.nonzero(x, as_tuple=True),
                                   x.nonzero(), lib.argwhere(x), *lib.where(x),
                                   *lib.where(x > 0), lib.masked_select(x, x > 0),
                                   x.masked_select(lib.tensor([True, False, True])),
                                   lib.nonzero(lib.tensor(3.)),
                                   *lib.nonzero(lib.tensor(0), as_tuple=True),
                                   lib.nonzero(lib.zeros(0, 2))),
                   x, modes=())
    check_function(lambda lib, x: lib.masked_select(x * 2, x > 0), distinct(2, 3), modes=())


def test_boolean_mask_indexing_eager():
    x = distinct(3, 4)
    check_function(lambda lib, x: (x[x > 0], x[:, lib.tensor([True, False, True, True])],
                                   x[lib.tensor([True, False, True])]), x, modes=())
    y = graphc.tensor(x)
    y[y > 0] = 0.0
    y[graphc.tensor([True, False, True])] = graphc.ones(4, dtype=graphc.float64)
    z = torch.tensor(x)
    z[z > 0] = 0.0
    z[torch.tensor([True, False, True])] = torch.ones(4, dtype=torch.float64)
    np.testing.assert_array_equal(to_numpy(y), to_numpy(z))
    for t, lib in ((y, graphc), (z, torch)):
        mask = t < 1
        t[mask] = lib.arange(int(mask.sum()), dtype=lib.float64) * -1
    np.testing.assert_array_equal(to_numpy(y), to_numpy(z))


def test_unique_and_unique_consecutive():
    x = np.array([3., nan, 1., 1., nan, 3., 3., 2.], np.float32)
    check_function(lambda lib, x: (lib.unique(x), *lib.unique(x, return_inverse=True,
                                                              return_counts=True),
                                   *x.unique(sorted=True, return_counts=True),
                                   *lib.unique_consecutive(x, return_inverse=True,
                                                           return_counts=True)),
                   x, modes=(), grad=False)
    rows = np.array([[1, 2], [0, 5], [1, 2], [1, 2], [0, 5]])
    check_function(lambda lib, r: (*lib.unique(r, dim=0, return_inverse=True,
                                               return_counts=True),
                                   *lib.unique(r, dim=1, return_counts=True),
                                   *lib.unique_consecutive(r, return_counts=True,
                                                           return_inverse=True, dim=0),
                                   lib.unique(r.reshape(-1)), lib.unique(r > 1),
                                   lib.unique(lib.zeros(0))),
                   rows, modes=())


def test_bincount():
    i = np.array([1, 3, 1, 0, 7])
    check_function(lambda lib, i, w, wi: (lib.bincount(i), i.bincount(minlength=10),
                                          lib.bincount(i, w), lib.bincount(i, wi, 3),
                                          lib.bincount(i[:0])),
                   i, rng.standard_normal(5).astype(np.float32), np.arange(5), modes=(),
                   grad=False)
    for lib in (torch, graphc):
        for bad in (lib.tensor([1, -3]), lib.tensor([[1]]), lib.tensor([1.])):
            with pytest.raises(RuntimeError):
                lib.bincount(bad)


def test_repeat_interleave():
    x = distinct(2, 3)
    check_function(lambda lib, x: (lib.repeat_interleave(x, 2), x.repeat_interleave(3, dim=1),
                                   lib.repeat_interleave(x, 2, dim=-2)), x)
    check_function(lambda lib, x, r: (lib.repeat_interleave(x, r, dim=1),
                                      x.repeat_interleave(r[:2], 0),
                                      lib.repeat_interleave(r), lib.repeat_interleave(x, r[1:2])),
                   x, np.array([2, 0, 1]), modes=())
    check_function(lambda lib, x, r: (lib.repeat_interleave(x, r, dim=0, output_size=4),
                                      lib.repeat_interleave(r, output_size=4)),
                   x, np.array([3, 1]))
    for lib in (torch, graphc):
        with pytest.raises(RuntimeError):
            lib.repeat_interleave(lib.ones(2, 2), lib.tensor([1, 2]), dim=0, output_size=4)
        with pytest.raises(RuntimeError):
            lib.repeat_interleave(lib.ones(2, 2), lib.tensor([1, -2]), dim=0)
        with pytest.raises(RuntimeError):
            lib.repeat_interleave(lib.ones(2, 2), lib.tensor([1, 2, 3]), dim=0)


@pytest.mark.parametrize("name, call", [
    ("torch.nonzero", lambda x: graphc.nonzero(x)),
    ("torch.argwhere", lambda x: graphc.argwhere(x)),
    ("torch.where(condition)", lambda x: graphc.where(x > 0)),
    ("torch.masked_select", lambda x: graphc.masked_select(x, x > 0)),
    ("torch.unique", lambda x: x.unique()),
    ("torch.unique_consecutive", lambda x: graphc.unique_consecutive(x)),
    ("torch.bincount", lambda x: graphc.bincount(x.long())),
    ("torch.repeat_interleave", lambda x: graphc.repeat_interleave(x, x.long())),
    ("boolean mask", lambda x: x[x > 0]),
])
def test_data_dependent_ops_are_graph_breaks(name, call):
    x = graphc.tensor([1., 0., 2.])
    with pytest.raises(graphc.GraphBreak, match=name.replace("(", r"\(").replace(")", r"\)")) \
            as info:
        graphc.compile(call, fullgraph=True)(x)
    assert "test_select.py" in str(info.value)
    with pytest.warns(UserWarning):
        out = graphc.compile(call)(x)             # falls back to running eagerly
    eager = call(x)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(eager))


EDGE_CASES = {
    "median of empty int": lambda L: L.median(L.tensor([], dtype=L.int64)),
    "median of empty float": lambda L: L.median(L.tensor([])),
    "nanmedian of empty": lambda L: L.nanmedian(L.zeros(0)),
    "median 0-dim": lambda L: L.median(L.tensor(3.), 0),
    "kthvalue 0-dim": lambda L: L.kthvalue(L.tensor(3.), 1),
    "topk 0-dim": lambda L: L.topk(L.tensor(3.), 1),
    "mode 0-dim": lambda L: L.mode(L.tensor(2.)),
    "sort int64 extremes": lambda L: L.sort(L.tensor([-2 ** 63, 5, -2 ** 63, 2 ** 63 - 1]),
                                            descending=True),
    "sort bool descending": lambda L: L.sort(L.tensor([True, False, True]), descending=True),
    "unique 0-dim": lambda L: L.unique(L.tensor(3.)),
    "unique_consecutive 0-dim": lambda L: L.unique_consecutive(L.tensor(3.)),
    "argwhere 0-dim": lambda L: L.argwhere(L.tensor(3.)),
    "masked_select broadcast": lambda L: L.masked_select(L.arange(3.),
                                                         L.tensor([[True], [False]])),
    "repeat_interleave 0-dim": lambda L: L.repeat_interleave(L.tensor(3.), 2),
    "repeat_interleave 0-dim repeats": lambda L: L.repeat_interleave(L.tensor(3.), L.tensor(2)),
    "repeat_interleave one repeat": lambda L: L.repeat_interleave(L.arange(3), L.tensor([2])),
    "take 0-dim index": lambda L: L.take(L.arange(4.), L.tensor(2)),
    "searchsorted empty": lambda L: L.searchsorted(L.zeros(0), L.tensor([1.])),
    "searchsorted int in float": lambda L: L.searchsorted(L.tensor([1, 3, 5]),
                                                          L.tensor([2.5, 3.])),
    "bucketize number": lambda L: L.bucketize(3, L.tensor([1, 3, 5])),
    "scatter 0-dim": lambda L: L.tensor(1.).scatter(0, L.tensor(0), L.tensor(5.)),
    "scatter_reduce 0-dim": lambda L: L.scatter_reduce(L.tensor(1.), 0, L.tensor(0),
                                                       L.tensor(5.), "amax"),
    "index_fill 0-dim": lambda L: L.tensor(1.).index_fill(0, L.tensor([0]), 3.),
    "histc of empty": lambda L: L.histc(L.zeros(0), 3),
    "histc given range skips nan": lambda L: L.histc(L.tensor([1., float("nan"), 2.]), 3, 0, 3),
    "masked_scatter broadcast mask": lambda L: L.zeros(2, 2).masked_scatter(
        L.tensor([True, False]), L.arange(4.)),
    "index_put bool mask": lambda L: L.zeros(3).index_put((L.tensor([True, False, True]),),
                                                          L.tensor(1.)),
    "index_put negative": lambda L: L.zeros(3).index_put((L.tensor([-1]),), L.tensor([1.])),
    "take_along_dim broadcast": lambda L: L.take_along_dim(L.arange(6.).reshape(2, 3),
                                                           L.tensor([[0], [2]]), 1),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_cases_eager(name):
    check_function(lambda lib: EDGE_CASES[name](lib), modes=(), grad=False)


def test_edge_cases_compiled():
    check_function(lambda lib, x, s, i: (lib.scatter(x, 0, lib.tensor(0), s),
                                         lib.scatter_reduce(x, 0, lib.tensor(0), s, "amin"),
                                         lib.searchsorted(x.reshape(1)[:0], s.reshape(1)),
                                         lib.sort(x), lib.median(x.reshape(1)[:0]),
                                         lib.sort(i), lib.sort(i, descending=True)),
                   np.array(1.0), np.array(-2.0),
                   np.array([2 ** 63 - 1, -2 ** 63, 5, 2 ** 63 - 1, -2 ** 63]),
                   grad=False, modes=("interpreter",))


@pytest.mark.parametrize("call", [
    lambda L: L.histc(L.tensor([1., float("nan")]), 3),
    lambda L: L.histc(L.tensor([1., 2.]), 3, 0, float("inf")),
    lambda L: L.histc(L.tensor([1., 2.]), 0),
    lambda L: L.searchsorted(L.tensor(1.), L.tensor([1.])),
    lambda L: L.searchsorted(L.ones(2, 3), L.ones(3, 1)),
    lambda L: L.searchsorted(L.ones(3), L.ones(2), side="middle"),
    lambda L: L.bucketize(L.ones(2), L.ones(2, 2)),
    lambda L: L.masked_select(L.ones(2), L.ones(2)),
    lambda L: L.index_fill(L.ones(2), 0, L.tensor([0]), L.ones(1)),
    lambda L: L.index_copy(L.ones(2), 0, L.tensor([0]), L.ones(1, dtype=L.float64)),
])
def test_more_errors(call):
    for lib in (torch, graphc):
        with pytest.raises(RuntimeError):
            call(lib)
