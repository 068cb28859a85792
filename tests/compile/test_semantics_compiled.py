"""The front-end semantics of tests/frontend/test_semantics.py under ``graphc.compile``,
on every backend, fused and unfused: values and gradients against PyTorch.

Also the compile-only bugs: ``clone`` cut autograd inside a compiled function; ``cat``
of all-empty pieces crashed code generation; a matmul operand read twice was copied
twice under one kernel name (nvcc refused the CUDA C); the interpreter returned an
input's own array for an output equal to it.
"""
import math
import shutil
import subprocess

import numpy as np
import pytest

import graphc
from graphc.targets.cuda import render
from graphc.codegen.lower import lower
from graphc.passes import run_pipeline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

inf, nan = math.inf, math.nan
F32 = np.float32


def f32(*values):
    return np.array(values, F32)


def _run(lib, fn, arrays, backend=None, fuse=True):
    """fn(lib, *tensors), compiled for graphc; (outputs, input gradients) as numpy."""
    xs = [lib.tensor(a, requires_grad=np.asarray(a).dtype.kind == "f") for a in arrays]
    if backend is None:
        out = fn(lib, *xs)
    else:
        out = graphc.compile(lambda *ts: fn(graphc, *ts), backend=backend, fuse=fuse)(*xs)
    outs = out if isinstance(out, tuple) else (out,)
    differentiable = [o for o in outs if o.requires_grad]
    if differentiable:
        sum(o.sum() for o in differentiable).backward()
    return ([o.detach().numpy() for o in outs],
            [x.grad.numpy() if x.grad is not None else None for x in xs])


def check(backend, fuse, fn, *arrays):
    """Compiled graphc gives PyTorch's values, dtypes and gradients."""
    torch = pytest.importorskip("torch")
    got, got_grads = _run(graphc, fn, arrays, backend, fuse)
    want, want_grads = _run(torch, fn, arrays)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (g, w)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, equal_nan=True)
    for g, w in zip(got_grads, want_grads):
        assert (g is None) == (w is None), (g, w)
        if w is not None:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, equal_nan=True)


EDGES = f32(-inf, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, inf, nan)
OTHER = f32(-1.0, 0.0, -1.0, 1.0, 0.0, nan, 1.0, inf, inf, 0.0)
DIVISORS = f32(2.0, 0.0, -1.0, 1.0, 0.0, nan, 1.0, inf, inf, 0.0)
LARGE = np.array([[1e20, 1e20], [1e20, 0.0], [3e19, 4e19], [0.0, 0.0], [1.0, -2.0]], F32)


def _matmul_twice(lib, x):
    c = lib.cat([x, x], 1)
    return c @ c, c.T @ c


def _bce(lib, x):
    return lib.nn.functional.binary_cross_entropy_with_logits(
        x, lib.tensor(f32(1.0, 0.0, 0.3, 1.0)), pos_weight=lib.tensor(f32(2.0, 1.0, 0.5, 3.0)))


CASES = {
    "clone": (lambda lib, x: (x * 2).clone(), [f32(1.0, 2.0, 3.0)]),
    "clone_input": (lambda lib, x: x.clone(), [f32(1.0, 2.0)]),
    "clone_two": (lambda lib, x: (x.clone(), (x * 3).clone()), [f32(1.0, 2.0)]),
    "cat_empty": (lambda lib, a, b: lib.cat([a, b]) * 2,
                  [np.zeros((0, 3), F32), np.zeros((0, 3), F32)]),
    "cat_empty_columns": (lambda lib, a, b: lib.cat([a, b], 1),
                          [np.zeros((2, 0), F32), np.zeros((2, 0), F32)]),
    "hstack_empty": (lambda lib, a, b: lib.hstack([a, b]),
                     [np.zeros((2, 0), F32), np.zeros((2, 0), F32)]),
    "vstack_empty": (lambda lib, a, b: lib.vstack([a, b]),
                     [np.zeros(0, F32), np.zeros(0, F32)]),
    "cat_promotes_legacy_empty": (lambda lib, a, b: lib.cat([a, b]),
                                  [np.zeros(0, np.float64), np.ones((2, 3), F32)]),
    "matmul_operand_twice": (_matmul_twice, [np.arange(8, dtype=F32).reshape(4, 2)]),
    "bce_with_logits_at_zero": (_bce, [f32(0.0, 0.0, -0.0, 1.0)]),
    "softmax_empty": (lambda lib, x: (x.softmax(0), x.log_softmax(0), x.softmax(1)),
                      [np.zeros((0, 3), F32)]),
    "logsumexp_empty": (lambda lib, x: x.logsumexp(0), [np.zeros((0, 3), F32)]),
    "flip_flatten_empty": (lambda lib, x: (x.flip(0) * 2, x.flatten(1)),
                           [np.zeros((0, 3), F32)]),
    "diag_bool": (lambda lib, x: lib.diag(x > 0, 1), [f32(1.0, -1.0, 2.0)]),
    "int_negative_powers": (lambda lib, a, e: (a ** e, 2 ** e),
                            [np.array([1, 2, -1, 3, -1, 0]), np.array([-1, 1, -3, -2, -4, 3])]),
    "norm_large": (lambda lib, x: (x.norm(dim=1), x[:, :1].norm(dim=1)), [LARGE]),
    "normalize_large": (lambda lib, x: (lib.nn.functional.normalize(x),
                                        lib.nn.functional.normalize(x[:, :1])), [LARGE]),
    "cosine_similarity_large": (lambda lib, a, b: (
        lib.nn.functional.cosine_similarity(a, b),
        lib.nn.functional.cosine_similarity(a[:, :1], b[:, :1])), [LARGE, 2 * LARGE]),
    "div_trunc": (lambda lib, a, b: lib.div(a, b, rounding_mode="trunc"), [EDGES, DIVISORS]),
    "div_floor_gradient": (lambda lib, a, b: lib.div(a, b, rounding_mode="floor") * 0,
                           [EDGES[1:-1], DIVISORS[1:-1]]),
    "clamp": (lambda lib, x: (lib.clamp(x, -1.0, 1.0), lib.clamp(x, -inf, inf),
                              lib.clamp(x, min=0.5)), [EDGES]),
    "maximum_minimum": (lambda lib, a, b: (lib.maximum(a, b), lib.minimum(a, b)),
                        [EDGES, OTHER]),
}


@pytest.mark.parametrize("fuse", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["fused", "unfused"])     # unfused: more kernels, ~1 s
@pytest.mark.parametrize("name", list(CASES))
def test_semantics_compiled(backend, fuse, name):
    fn, arrays = CASES[name]
    check(backend, fuse, fn, *arrays)


@pytest.mark.parametrize("name", list(CASES))
def test_semantics_compiled_interpreter(name):
    fn, arrays = CASES[name]
    check("interpreter", True, fn, *arrays)


def test_compiled_clone_passes_the_gradient():
    x = graphc.tensor([1.0, 2.0], requires_grad=True)
    graphc.compile(lambda t: (t * 2).clone(), backend="interpreter")(x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("name", ["interpreter", "cpu"])
def test_compiled_clone_is_a_copy(name):
    """Writing to a compiled clone (or view) of an input leaves the input alone."""
    x = graphc.ones(3)
    y, z = graphc.compile(lambda t: (t.clone(), t.reshape(3, 1)), backend=name)(x)
    y[0] = 5
    z[1, 0] = 7
    assert x.tolist() == [1, 1, 1]


def _matmul_program(fuse):
    x = graphc.tensor(np.ones((6, 3), F32))
    graph = run_pipeline(graphc.trace(lambda t: (lambda c: c @ c)(graphc.cat([t, t], 1)), x))
    program, _ = lower(graph, fuse, "twice")
    return program


def test_matmul_operand_read_twice_is_copied_once():
    names = [k.name for k in _matmul_program(True).kernels]
    assert len(names) == len(set(names)) == 2, names


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_matmul_operand_read_twice_compiles_with_nvcc(tmp_path):
    source = render.render_program(_matmul_program(True), render.GPU)
    path = tmp_path / "twice.cu"
    path.write_text(source.text)
    done = subprocess.run(["nvcc", "-cubin", "-arch=sm_80", "-o", str(tmp_path / "twice.o"),
                           str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
