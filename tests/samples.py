"""Sample calls shared by every test that walks the primitives or the composites.

``PRIMITIVE_SAMPLES``: sample calls of every primitive in the registry (input arrays,
attributes); ``GRAD_CASES``: composites through the public API (fn, input arrays), with
kinks and ties kept away.  The gradient tests (frontend/test_grad.py) check them against
finite differences; the differential backend tests (backends/test_backends.py) run them on
every code-generating backend against the interpreter.

``RNG`` is drawn from here in a fixed order (the primitive samples, then the composite
cases), so every sample has the same values wherever it is imported from.
"""
import math

import numpy as np

import graphc
import graphc.composite as C
import graphc.spatial as S
from graphc import dtypes

RNG = np.random.default_rng(7)


def rand(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape)


def ints(values):
    return np.asarray(values, np.int64)


# Sample calls of every primitive: (input arrays, attributes).  Float inputs are float64
# here; dtype variants are made from them in test_grad.py.
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
    "floor_divide": [([X23 * 3, np.array([0.7, -1.3, 2.1])], {}),
                     ([ints([[7, -7, 9], [-9, 0, 5]]), ints([2, -2, 4])], {})],
    "remainder": [([X23 * 3, np.array([0.7, -1.3, 2.1])], {}),
                  ([ints([[7, -7, 9], [-9, 0, 5]]), ints([2, -2, 4])], {})],
    "pow": [([rand(2, 3, low=0.5), rand(1, 3, low=0.0, high=2.5)], {})],
    "atan2": [([X23, rand(3)], {}), ([rand(2, 1), -rand(3, low=0.5)], {})],
    "binary_cross_entropy": [([np.array([[0.1, 0.5, 0.9], [0.3, 0.7, 0.95]]),
                               np.array([0.0, 0.4, 1.0])], {})],
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
# Collectives run only where processes communicate: tests/distributed runs them under
# mpiexec (workers/compiled.py), tests/codegen/test_collectives.py without MPI.
COLLECTIVE_SAMPLES = {"all_reduce": [([rand(3, 4)], {"op": "sum"})],
                      "broadcast": [([rand(3, 4)], {"src": 0})]}


# Composites through the public API: (fn, input arrays) for GRAD_CASES.
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
    "conv2d": (lambda x, w, b: S.conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2)),
               [rand(2, 2, 5, 6), rand(3, 2, 3, 2), rand(3)]),
    "conv2d_same": (lambda x, w: S.conv2d(x.permute(0, 3, 1, 2), w, padding="same"),
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
    "pad": (lambda x: S.pad(x, (1, 2, 0, 1), value=3.0), [rand(2, 3)]),
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
    "max_pool": (lambda x: S.max_pool2d(x, 2, 2), [_distinct(1, 2, 4, 4)]),
    "max_pool_padded": (lambda x: S.max_pool2d(x, 3, 2, 1), [_distinct(1, 1, 5, 5)]),
    "avg_pool": (lambda x: S.avg_pool2d(x, 3, 2, 1), [rand(2, 1, 5, 4)]),
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
    # cosine similarity over operands broadcast along the reduced dim
    "cosine_broadcast": (lambda x, y: C.cosine_similarity(x, y), [rand(3, 1), rand(1, 4)]),
}
RAMP = graphc.tensor(np.arange(24.0).reshape(3, 2, 4) / 10)
ZERO_MASK = graphc.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=graphc.float64)
IDX = graphc.tensor([[0, 3], [1, 1], [2, 0]])
ZEROS_34 = graphc.zeros(3, 4, dtype=graphc.float64)
ROWS = graphc.tensor([2, 0, 2])
RUNNING_MEAN = graphc.tensor([0.1, -0.2, 0.3], dtype=graphc.float64)
RUNNING_VAR = graphc.tensor([1.5, 0.5, 2.0], dtype=graphc.float64)
