"""Gradients: a walk over the primitive registry (fields, infer == impl, accurate
``saves``), finite-difference checks in float64 of every differentiable primitive and
composite (through views and broadcasting), and PyTorch's conventions at ties, kinks and
boundaries (values hard-coded from PyTorch 2)."""
import math

import numpy as np
import pytest

import graphc
import graphc.composite as C
from graphc import dtypes
from graphc.dispatch import bind
from graphc.ops import ACCUMULATIONS, KINDS, REGISTRY, SCALAR_OPS

from gradcheck import gradcheck

RNG = np.random.default_rng(7)


def rand(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape)


def ints(values):
    return np.asarray(values, np.int64)


# ---- the registry walk ---------------------------------------------------------------------
# Sample calls of every primitive: (input arrays, attributes).  Float inputs are float64
# here; dtype variants are made from them below.
X23, Y3 = rand(2, 3), rand(3)
PRIMITIVE_SAMPLES = {
    "neg": [([X23], {})], "exp": [([X23], {})], "log": [([rand(2, 3, low=0.5)], {})],
    "sqrt": [([rand(2, 3, low=0.5)], {})], "rsqrt": [([rand(2, 3, low=0.5)], {})],
    "expm1": [([X23], {})], "log1p": [([rand(2, 3, low=-0.5)], {})],
    "sin": [([X23], {})], "cos": [([X23], {})], "tanh": [([X23], {})],
    "sigmoid": [([X23], {})], "erf": [([X23], {})], "floor": [([X23], {})],
    "abs": [([X23], {})], "sign": [([X23], {})],
    "logical_not": [([X23 > 0], {})],
    "add": [([X23, Y3], {})], "sub": [([X23, Y3], {})], "mul": [([X23, Y3], {})],
    "div": [([X23, rand(3, low=0.5)], {})],
    "pow": [([rand(2, 3, low=0.5), rand(1, 3, low=0.0, high=2.5)], {})],
    "atan2": [([X23, rand(3)], {}), ([rand(2, 1), -rand(3, low=0.5)], {})],
    "maximum": [([X23, Y3], {})], "minimum": [([X23, Y3], {})],
    "eq": [([X23, Y3], {})], "ne": [([X23, Y3], {})], "lt": [([X23, Y3], {})],
    "le": [([X23, Y3], {})], "gt": [([X23, Y3], {})], "ge": [([X23, Y3], {})],
    "logical_and": [([X23 > 0, Y3 > 0], {})], "logical_or": [([X23 > 0, Y3 > 0], {})],
    "where": [([X23 > 0, X23, rand(1, 3)], {})],
    "cast": [([X23], {"dtype": dtypes.float64}), ([X23], {"dtype": dtypes.float32}),
             ([X23], {"dtype": dtypes.int32}),
             ([X23], {"dtype": dtypes.bool_})],
    "sum": [([rand(2, 3, 4)], {"axes": (0, 2), "keepdim": False}),
            ([rand(2, 3, 4)], {"axes": (1,), "keepdim": True}),
            ([rand(2, 3)], {"axes": (), "keepdim": False})],
    "prod": [([rand(2, 3, 4)], {"axes": (1,), "keepdim": False}),
             ([rand(2, 3)], {"axes": (0, 1), "keepdim": True})],
    "amax": [([rand(2, 3, 4)], {"axes": (0, 2), "keepdim": False})],
    "amin": [([rand(2, 3, 4)], {"axes": (1,), "keepdim": True})],
    "argmax": [([rand(2, 3, 4)], {"axis": 1, "keepdim": False})],
    "argmin": [([rand(2, 3, 4)], {"axis": 2, "keepdim": True})],
    "reshape": [([rand(2, 3, 4)], {"shape": (6, 4)})],
    "permute": [([rand(2, 3, 4)], {"perm": (2, 0, 1)})],
    "expand": [([rand(3, 1)], {"shape": (2, 3, 4)})],
    "slice": [([rand(4, 5)], {"starts": (1, 0), "stops": (4, 5), "steps": (2, 3)}),
              ([rand(4, 5)], {"starts": (3, 4), "stops": (-1, 0), "steps": (-2, -1)})],
    "pad": [([rand(2, 3)], {"widths": ((1, 0, 1), (0, 2, 0)), "value": 0})],
    "concat": [([rand(2, 3), rand(2, 1), rand(2, 2)], {"axis": 1})],
    "take": [([rand(3, 4), ints([[3, 0], [3, 1]])], {"axis": 1})],
    "index_add": [([rand(4, 3), ints([2, 0, 2]), rand(3, 3)], {"axis": 0})],
    "gather": [([rand(3, 4), ints([[0, 3, 3], [1, 0, 2], [2, 2, 0]])], {"axis": 1})],
    "scatter_add": [([rand(3, 4), ints([[0, 1, 2], [2, 1, 1]]), rand(2, 4)], {"axis": 0})],
    "matmul": [([rand(2, 3, 4), rand(1, 4, 5)], {})],
    "conv2d": [([rand(2, 3, 7, 6), rand(4, 3, 3, 2)], {"stride": (2, 1), "dilation": (1, 2)}),
               ([rand(1, 2, 5, 5), rand(3, 2, 2, 2)], {"stride": (2, 2), "dilation": (2, 1)})],
    "uniform": [([np.array(42)], {"shape": (3, 4), "dtype": dtypes.float32})],
}


def _wrap(a):
    return graphc.from_numpy(np.ascontiguousarray(a))


def _cases(name):
    return [(name, i) for i in range(len(PRIMITIVE_SAMPLES[name]))]


ALL_CASES = [c for name in sorted(PRIMITIVE_SAMPLES) for c in _cases(name)]


def test_every_primitive_has_samples_and_complete_fields():
    assert set(PRIMITIVE_SAMPLES) == set(REGISTRY)
    for name, prim in REGISTRY.items():
        assert prim.name == name
        assert prim.kind in KINDS, name
        assert callable(prim.infer) and callable(prim.impl), name
        arrays, _ = PRIMITIVE_SAMPLES[name][0]
        if prim.vjp is not None:
            assert isinstance(prim.vjp, tuple), name
            assert len(prim.vjp) == (1 if prim.variadic else len(arrays)), name
            assert all(rule is None or callable(rule) for rule in prim.vjp), name
        assert all(s == "out" or 0 <= s < len(arrays) for s in prim.saves), name
        assert set(prim.attrs) == set(PRIMITIVE_SAMPLES[name][0][1]), name


class _ScalarOpsUsed:
    """An ops handler that records which scalar ops a primitive's scalar rule calls."""

    def __init__(self):
        self.used = []

    def const(self, value):
        return "const"

    def __getattr__(self, name):
        def op(*operands):
            self.used.append((name, len(operands)))
            return name
        return op


def test_every_primitive_carries_what_its_lowering_needs():
    for name, prim in REGISTRY.items():
        arrays, _ = PRIMITIVE_SAMPLES[name][0]
        if prim.kind == "elementwise":
            ops = _ScalarOpsUsed()
            prim.scalar(ops, *[f"x{i}" for i in range(len(arrays))])
            assert ops.used, name
            for op, arity in ops.used:
                assert SCALAR_OPS.get(op) == arity, (name, op)
        else:
            assert prim.scalar is None, name
        if prim.kind == "reduction":
            assert prim.accumulation in ACCUMULATIONS.values(), name
            for dt in dtypes.ALL:
                assert prim.accumulation.identity(dt) is not None, name
        if prim.kind == "movement":      # read through an index map, or a kernel of its own
            assert (prim.index_map is not None) != prim.scatter, name
        assert not prim.view or prim.index_map is not None, name


# Inputs whose dtype is fixed by the op (indices, conditions, seeds): never converted.
FIXED_DTYPE_INPUTS = {("take", 1), ("gather", 1), ("index_add", 1), ("scatter_add", 1),
                      ("where", 0), ("uniform", 0)}


def _dtype_variants(name, arrays, attrs):
    """The sample at every dtype that infer accepts (floats of each width, ints, bools)."""
    out = []
    for dt in dtypes.ALL:
        converted = [a if (name, i) in FIXED_DTYPE_INPUTS else a.astype(dt.np)
                     for i, a in enumerate(arrays)]
        types = [dtypes.TensorType(a.shape, dtypes.from_numpy(a.dtype)) for a in converted]
        try:
            out_type = REGISTRY[name].infer(*types, **attrs)
        except RuntimeError:
            continue
        out.append((converted, out_type))
    return out


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_impl_agrees_with_infer(name, case):
    arrays, attrs = PRIMITIVE_SAMPLES[name][case]
    variants = _dtype_variants(name, arrays, attrs)
    if REGISTRY[name].kind == "elementwise":       # numpy turns 0-dim results into scalars
        variants += _dtype_variants(name, [a.reshape(-1)[0].reshape(()) for a in arrays], attrs)
    assert variants, f"{name}: infer rejected every dtype"
    for converted, out_type in variants:
        with np.errstate(all="ignore"):
            data = np.asarray(REGISTRY[name].impl(*converted, **attrs))   # keeps the dtype
        assert data.shape == tuple(out_type.shape), (name, data.shape, out_type)
        assert data.dtype == out_type.dtype.np, (name, data.dtype, out_type)


def _differentiable_inputs(name, arrays):
    prim = REGISTRY[name]
    if prim.vjp is None:
        return []
    return [i for i, a in enumerate(arrays) if a.dtype.kind == "f"
            and (prim.vjp[0] if prim.variadic else prim.vjp[i]) is not None]


def _output_dtype(name, case):
    arrays, attrs = PRIMITIVE_SAMPLES[name][case]
    return REGISTRY[name].impl(*arrays, **attrs).dtype


DIFF_CASES = [c for c in ALL_CASES if _output_dtype(*c).kind == "f"
              and _differentiable_inputs(c[0], PRIMITIVE_SAMPLES[c[0]][c[1]][0])]
FLOAT64_CASES = [c for c in DIFF_CASES if _output_dtype(*c) == np.float64]


def _garbage(a):
    if a.dtype.kind == "f":
        return RNG.uniform(-9, 9, a.shape).astype(a.dtype)
    if a.dtype.kind == "b":
        return RNG.random(a.shape) < 0.5
    return RNG.integers(0, 2, a.shape).astype(a.dtype)


def _run_vjps(name, arrays, attrs, g, out, keep):
    """Every VJP rule's result, with the inputs not in ``keep`` replaced by garbage."""
    prim = REGISTRY[name]
    inputs = [_wrap(a if i in keep else _garbage(a)) for i, a in enumerate(arrays)]
    out_t = _wrap(out if "out" in keep else _garbage(out))
    results = []
    with graphc.no_grad():
        for i in _differentiable_inputs(name, arrays):
            rule = prim.vjp[0] if prim.variadic else prim.vjp[i]
            extra = {"index": i} if prim.variadic else {}
            gi = rule(_wrap(g), out_t, *inputs, **extra, **attrs)
            assert tuple(gi.shape) == arrays[i].shape and gi.dtype == graphc.float64, name
            results.append(gi.numpy())
    return results


@pytest.mark.parametrize("name,case", DIFF_CASES)
def test_saves_lists_every_value_the_vjp_reads(name, case):
    """Autograd version-checks only the saved values, so a VJP must not read the values
    of anything else: replacing them by garbage must not change any gradient."""
    arrays, attrs = PRIMITIVE_SAMPLES[name][case]
    out = REGISTRY[name].impl(*arrays, **attrs)
    g = RNG.uniform(-1, 1, out.shape)
    everything = set(range(len(arrays))) | {"out"}
    want = _run_vjps(name, arrays, attrs, g, out, everything)
    got = _run_vjps(name, arrays, attrs, g, out, set(REGISTRY[name].saves))
    for w, o in zip(want, got):
        np.testing.assert_array_equal(o, w, err_msg=name)


@pytest.mark.parametrize("name,case", FLOAT64_CASES)
def test_primitive_vjp_matches_finite_differences(name, case):
    arrays, attrs = PRIMITIVE_SAMPLES[name][case]
    wrt = _differentiable_inputs(name, arrays)
    fixed = {i: _wrap(a) for i, a in enumerate(arrays) if i not in wrt}

    def fn(*leaves):
        it = iter(leaves)
        args = [fixed[i] if i in fixed else next(it) for i in range(len(arrays))]
        return bind(REGISTRY[name], *args, **attrs)
    gradcheck(fn, *[arrays[i] for i in wrt])


# ---- finite differences through the public API ------------------------------------------
def _pos(*shape):
    return rand(*shape, low=0.5, high=2.0)


def _distinct(*shape):
    """Well-separated values, so max/min/sort-like ops have no near-ties."""
    return RNG.permutation(np.arange(math.prod(shape), dtype=np.float64)).reshape(shape) \
        * 0.37 - 1.0


def _away_from(points, *shape):
    """Random values at least 0.1 away from each kink in ``points``."""
    a = rand(*shape)
    for p in points:
        a = np.where(np.abs(a - p) < 0.1, a + 0.25, a)
    return a


LABELS = graphc.tensor([2, 0, 3])
LABELS_2D = graphc.tensor([[1, 0], [2, -100]])
GRAD_CASES = {
    # elementwise, incl. broadcasting and non-contiguous views
    "add_broadcast": (lambda x, y: x + y, [rand(2, 3), rand(3)]),
    "sub_rsub": (lambda x, y: (x - y) - (1 - x), [rand(2, 1), rand(1, 3)]),
    "mul_transposed": (lambda x, y: x.t() * y, [rand(3, 2), rand(2, 3)]),
    "div_stepped": (lambda x, y: x[::2] / y, [rand(4, 3), _pos(3)]),
    "rdiv": (lambda x: 2.0 / x, [_pos(2, 3)]),
    "pow_tensor": (lambda x, y: x ** y, [_pos(2, 3), rand(3)]),
    "pow_scalar": (lambda x: x ** 3 + x ** 2 + x ** 0.5 + 2 ** x, [_pos(2, 3)]),
    "sqrt_rsqrt": (lambda x: x.sqrt() + graphc.rsqrt(x), [_pos(5)]),
    "exp_log": (lambda x: x.exp() + x.log() + graphc.log2(x) + graphc.log1p(x), [_pos(5)]),
    "trig": (lambda x: x.sin() * x.cos() + graphc.tan(x * 0.3), [rand(5)]),
    "tanh_sigmoid": (lambda x: x.tanh() + x.sigmoid() * 2, [rand(2, 3)]),
    "erf_expm1": (lambda x: graphc.erf(x) + graphc.expm1(x), [rand(2, 3)]),
    "atan2": (lambda y, x: graphc.atan2(y, x.t()) + y.atan2(2.0 * y), [rand(2, 3), rand(3, 2)]),
    "log1p_expm1_tiny": (lambda x: graphc.log1p(x * 1e-3) + (x * 1e-3).expm1(), [rand(5)]),
    "logaddexp": (lambda a, b: graphc.logaddexp(a, b) + a.logaddexp(a * 30),
                  [rand(2, 3), rand(3)]),
    "abs_neg": (lambda x: -x.abs(), [_away_from([0], 2, 3)]),
    "maximum_minimum": (lambda x, y: graphc.maximum(x, y) - graphc.minimum(x, y) * 2,
                        [_distinct(2, 3), _distinct(3) + 0.1]),
    "where": (lambda x, y: graphc.where(x > 0, x * 2, y), [rand(2, 3), rand(3)]),
    "clamp": (lambda x: x.clamp(-0.5, 0.5) + x.clamp(min=0.2), [_away_from([-.5, .2, .5], 9)]),
    "clamp_tensor_bounds": (lambda x, lo: graphc.clamp(x, lo, lo + 1),
                            [_away_from([0], 3, 4), _away_from([0], 4) * 0.1]),
    "masked_fill": (lambda x: x.masked_fill(x > 0, 3.0), [rand(2, 3)]),
    "floor_round": (lambda x: x * x.floor() + x.round() + x.trunc() + x.ceil(),
                    [_away_from([-1, 0, 1, -0.5, 0.5, 1.5, -1.5], 6)]),
    "remainder": (lambda x: x % 1.5, [_away_from([0, 1.5, -1.5], 5)]),
    "expand_view": (lambda x: x.expand(3, 2, 4) * RAMP, [rand(2, 1)]),
    # reductions with dim / keepdim / negative and tuple dims
    "sum_dims": (lambda x: x.sum((0, -1)) + x.sum(1, keepdim=True).sum(), [rand(2, 3, 4)]),
    "mean_var_std": (lambda x: x.mean(-1) + x.var(0).sum() + x.std((0, 1), keepdim=True),
                     [rand(3, 4)]),
    "prod": (lambda x: x.prod(1), [rand(3, 4)]),
    "prod_one_zero": (lambda x: (x * ZERO_MASK).prod(1), [rand(2, 3)]),
    "prod_all": (lambda x: x.t().prod(), [rand(2, 3)]),
    "amax_amin": (lambda x: x.amax(1) + x.amin((0, 1), keepdim=True), [_distinct(3, 4)]),
    "max_min_dim": (lambda x: x.max(1).values + x.min(0, keepdim=True).values.t(),
                    [_distinct(3, 3)]),
    "max_all": (lambda x: x.max() + x.min(), [_distinct(3, 4)]),
    "logsumexp": (lambda x: x.logsumexp(1), [rand(3, 4)]),
    "cumsum": (lambda x: x.cumsum(0) + x.t().cumsum(1).t(), [rand(3, 3)]),
    "norm": (lambda x: x.norm() + x.norm(1, 0).sum() + x.norm(3, 1).sum(),
             [_away_from([0], 3, 4)]),
    # contractions
    "matmul_1d_2d": (lambda a, b: a @ b, [rand(3), rand(3, 4)]),
    "matmul_2d_1d": (lambda a, b: a @ b, [rand(2, 3), rand(3)]),
    "matmul_batched": (lambda a, b: a @ b, [rand(2, 1, 2, 3), rand(3, 3, 2)]),
    "matmul_transposed": (lambda a, b: a.t() @ b[:, ::2], [rand(3, 2), rand(3, 4)]),
    "bmm_dot_outer": (lambda a, b: graphc.bmm(a, b).sum() + graphc.dot(a[0, 0], b[0, :, 0])
                      + graphc.outer(a[0, 0], a[1, 0]).sum(), [rand(2, 2, 3), rand(2, 3, 2)]),
    "linear": (lambda x, w, b: C.linear(x, w, b), [rand(2, 3, 4), rand(5, 4), rand(5)]),
    "conv2d": (lambda x, w, b: C.conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2)),
               [rand(2, 2, 5, 6), rand(3, 2, 3, 2), rand(3)]),
    "conv2d_same": (lambda x, w: C.conv2d(x.permute(0, 3, 1, 2), w, padding="same"),
                    [rand(1, 4, 5, 2), rand(2, 2, 3, 3)]),
    # movement and indexing
    "views": (lambda x: x.reshape(4, 3).t().flatten()[1:7].view(2, 3).unsqueeze(0)
              .transpose(0, 2).squeeze(-1), [rand(2, 6)]),
    "permute_movedim_flip": (lambda x: x.permute(2, 0, 1).movedim(0, -1).flip((0, 2)),
                             [rand(2, 3, 4)]),
    "repeat_narrow_select": (lambda x: x.repeat(2, 3).narrow(1, 1, 4).select(0, -1),
                             [rand(2, 3)]),
    "getitem_basic": (lambda x: x[1:, None, ..., ::2][:, 0, -1], [rand(3, 4, 5)]),
    "getitem_advanced": (lambda x: x[[0, 2, 2], :, [1, 0, 1]] + x[:, [True, False, True]]
                         .sum((1, 2)), [rand(3, 3, 2)]),
    "getitem_mask": (lambda x: x[x > 0], [rand(3, 4)]),
    "getitem_repeated_index": (lambda x: x[graphc.tensor([[0, 1], [1, 1]])], [rand(2, 3)]),
    "gather_scatter": (lambda x, s: x.gather(1, IDX).sum(1, keepdim=True)
                       + ZEROS_34.scatter_add(1, IDX, s), [rand(3, 4), rand(3, 2)]),
    "index_add_select": (lambda x, s: x.index_add(0, ROWS, s).index_select(1, ROWS),
                         [rand(3, 3), rand(3, 3)]),
    "cat_stack_split": (lambda a, b: graphc.cat([a, b.t()], 0)[1:].split(2)[1].sum()
                        + graphc.stack([a, a * b.t()[:2]], 1).sum(-1),
                        [rand(2, 3), rand(3, 2)]),
    "chunk_unbind": (lambda x: x.chunk(2, 1)[1] * x.unbind(1)[0].unsqueeze(1), [rand(3, 4)]),
    "hstack_vstack": (lambda a, b: graphc.vstack([a, b]) + graphc.hstack([a, b[0]]).sum(),
                      [rand(3), rand(1, 3)]),
    "tril_triu_diag": (lambda x: x.tril(-1) + x.triu(1) * 2 + graphc.diag(graphc.diag(x)),
                       [rand(3, 3)]),
    "pad": (lambda x: C.pad(x, (1, 2, 0, 1), value=3.0), [rand(2, 3)]),
    # activations and normalisation
    "softmax": (lambda x: C.softmax(x, 1) * RAMP[0, :, :3], [rand(2, 3)]),
    "log_softmax": (lambda x: C.log_softmax(x.t(), -1), [rand(4, 3)]),
    "relu_leaky_elu": (lambda x: C.relu(x) + C.leaky_relu(x, 0.1) + C.elu(x),
                       [_away_from([0], 8)]),
    "gelu": (lambda x: C.gelu(x) + C.gelu(x, approximate="tanh"), [rand(8)]),
    "silu_softplus": (lambda x: C.silu(x) + C.softplus(x) + C.softplus(x * 20, beta=2),
                      [_away_from([0, 0.5], 8)]),
    "hardtanh": (lambda x: C.hardtanh(x, -0.5, 0.5), [_away_from([-0.5, 0.5], 8)]),
    "hardswish": (lambda x: C.hardswish(x * 3), [_away_from([-1, 1], 8)]),
    "layer_norm": (lambda x, w, b: C.layer_norm(x, (3,), w, b), [rand(2, 3), rand(3), rand(3)]),
    "layer_norm_2d": (lambda x: C.layer_norm(x.transpose(0, 2), (2, 4)), [rand(4, 2, 3)]),
    "batch_norm_train": (lambda x, w, b: C.batch_norm(x, None, None, w, b, training=True),
                         [rand(4, 3, 2), rand(3), rand(3)]),
    "batch_norm_eval": (lambda x: C.batch_norm(x, RUNNING_MEAN, RUNNING_VAR), [rand(2, 3)]),
    "normalize_cosine": (lambda x, y: C.normalize(x, dim=1) + C.cosine_similarity(x, y)
                         .unsqueeze(1), [rand(3, 4), rand(3, 4)]),
    "max_pool": (lambda x: C.max_pool2d(x, 2, 2), [_distinct(1, 2, 4, 4)]),
    "max_pool_padded": (lambda x: C.max_pool2d(x, 3, 2, 1), [_distinct(1, 1, 5, 5)]),
    "avg_pool": (lambda x: C.avg_pool2d(x, 3, 2, 1), [rand(2, 1, 5, 4)]),
    "embedding": (lambda w: C.embedding(graphc.tensor([[0, 2], [2, 2]]), w), [rand(3, 4)]),
    # losses
    "mse_l1_smooth": (lambda x, y: C.mse_loss(x, y) + C.l1_loss(x, y, reduction="sum")
                      + C.smooth_l1_loss(x, y, beta=0.5), [rand(2, 3), _away_from([0], 2, 3)]),
    "cross_entropy": (lambda x: C.cross_entropy(x, LABELS), [rand(3, 4)]),
    "cross_entropy_options": (lambda x, w: C.cross_entropy(x, LABELS, weight=w,
                                                           label_smoothing=0.1),
                              [rand(3, 4), _pos(4)]),
    "cross_entropy_spatial": (lambda x: C.cross_entropy(x, LABELS_2D, reduction="sum"),
                              [rand(2, 3, 2)]),
    "cross_entropy_probs": (lambda x, p: C.cross_entropy(x, p.softmax(1)),
                            [rand(3, 4), rand(3, 4)]),
    "nll": (lambda x: C.nll_loss(x, LABELS, ignore_index=0, reduction="none"), [rand(3, 4)]),
    "bce": (lambda p, y: C.binary_cross_entropy(p.sigmoid(), y), [rand(2, 3), _pos(2, 3) / 2]),
    "bce_logits": (lambda x, y, pw: C.binary_cross_entropy_with_logits(x, y, pos_weight=pw),
                   [rand(2, 3) * 5, _pos(2, 3) / 2, _pos(3)]),
}
RAMP = graphc.tensor(np.arange(24.0).reshape(3, 2, 4) / 10)
ZERO_MASK = graphc.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=graphc.float64)
IDX = graphc.tensor([[0, 3], [1, 1], [2, 0]])
ZEROS_34 = graphc.zeros(3, 4, dtype=graphc.float64)
ROWS = graphc.tensor([2, 0, 2])
RUNNING_MEAN = graphc.tensor([0.1, -0.2, 0.3], dtype=graphc.float64)
RUNNING_VAR = graphc.tensor([1.5, 0.5, 2.0], dtype=graphc.float64)


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradients_match_finite_differences(name):
    fn, arrays = GRAD_CASES[name]
    gradcheck(fn, *arrays)


def test_second_order_gradient_of_tanh():
    x = graphc.tensor([0.3, -1.2], dtype=graphc.float64, requires_grad=True)
    (g,) = graphc.autograd.grad(x.tanh().sum(), x, create_graph=True)
    (h,) = graphc.autograd.grad(g.sum(), x)
    t = np.tanh([0.3, -1.2])
    np.testing.assert_allclose(h.numpy(), -2 * t * (1 - t * t), rtol=1e-12)


# ---- PyTorch's conventions at ties, kinks and boundaries (values from PyTorch 2) ---------
def _grad(fn, values):
    x = graphc.tensor(values, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.numpy().tolist()


TIES = [[1.0, 3.0, 3.0], [2.0, 2.0, 1.0]]
KINKS = [-1.0, 0.0, 1.0, 2.0, 3.0]
CONVENTIONS = [
    ("max() splits ties", lambda x: x.max(), TIES, [[0, 0.5, 0.5], [0, 0, 0]]),
    ("min() splits ties", lambda x: x.min(), TIES, [[0.5, 0, 0], [0, 0, 0.5]]),
    ("max(dim) picks the first", lambda x: x.max(1).values, TIES, [[0, 1, 0], [1, 0, 0]]),
    ("min(dim) picks the first", lambda x: x.min(1).values, [[3.0, 1.0, 1.0]], [[0, 1, 0]]),
    ("amax splits ties", lambda x: x.amax(1), TIES, [[0, 0.5, 0.5], [0.5, 0.5, 0]]),
    ("maximum splits ties", lambda x: graphc.maximum(x, graphc.tensor(
        [[3.0, 3.0, 3.0], [2.0, 1.0, 1.0]])), TIES, [[0, 0.5, 0.5], [0.5, 1, 0.5]]),
    ("clamp passes at the bounds", lambda x: x.clamp(0.0, 2.0), KINKS, [0, 1, 1, 1, 0]),
    ("clamp(min) passes at the bound", lambda x: x.clamp(min=1.0), KINKS, [0, 0, 1, 1, 1]),
    ("hardtanh blocks at the bounds", lambda x: C.hardtanh(x, 0.0, 2.0), KINKS,
     [0, 0, 1, 0, 0]),
    ("relu is 0 at 0", C.relu, KINKS, [0, 0, 1, 1, 1]),
    ("hardswish at its kinks", lambda x: C.hardswish(x * 3), [-1.0, 0.0, 1.0, 2.0],
     [-1.5, 1.5, 4.5, 3.0]),
    ("logaddexp splits ties", lambda x: graphc.logaddexp(x, graphc.tensor([1.0, 0.0])),
     [1.0, 2.0], [0.5, 0.8807970779778823]),
    ("leaky_relu is slope at 0", lambda x: C.leaky_relu(x), KINKS,
     [0.01, 0.01, 1, 1, 1]),
    ("abs is 0 at 0", lambda x: x.abs(), KINKS, [-1, 0, 1, 1, 1]),
    ("sqrt of clamp is 0 below", lambda x: x.clamp(min=0).sqrt(), KINKS,
     [0, math.inf, 0.5, 0.3535533905932738, 0.28867513459481287]),
    ("x ** 0 is 0 at 0", lambda x: x ** 0.0, [0.0, 2.0], [0, 0]),
    ("x ** 2.5 at 0", lambda x: x ** 2.5, [0.0, 2.0], [0, 7.0710678118654755]),
    ("0 ** x by the exponent", lambda x: graphc.tensor([0.0, 0.0]) ** x, [0.0, 2.0], [0, 0]),
    ("prod with one zero", lambda x: x.prod(), [2.0, 0.0, 3.0], [0, 6, 0]),
    ("prod with two zeros", lambda x: x.prod(), [2.0, 0.0, 0.0], [0, 0, 0]),
    ("max_pool2d ties go to the first", lambda x: C.max_pool2d(x, 2),
     [[[[1.0, 1.0], [1.0, 1.0]]]], [[[[1, 0], [0, 0]]]]),
]


@pytest.mark.parametrize("fn,values,want", [c[1:] for c in CONVENTIONS],
                         ids=[c[0] for c in CONVENTIONS])
def test_gradient_conventions_match_pytorch(fn, values, want):
    np.testing.assert_allclose(_grad(fn, values), want, rtol=1e-6)
