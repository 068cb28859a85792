"""Differential tests: every code-generating backend against the interpreter.

Every primitive (the registry's sample calls) and every composite (the gradient-check
cases) is compiled fused and unfused on each backend; values and gradients must match
the interpreter's.  Hypothesis-generated programs run in
tests/compile/test_hypothesis_graphs.py with the same ``backend`` fixture.
"""
import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np
import pytest

import graphc
from graphc import dtypes
from graphc.targets.cpu import kernel as cpu_kernel
from graphc.targets.cuda import render as cuda_render
from graphc.dispatch import bind
from graphc.ops import REGISTRY, SCALAR_OPS
from samples import GRAD_CASES, PRIMITIVE_SAMPLES

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CASES = [(name, i) for name in sorted(PRIMITIVE_SAMPLES)
         for i in range(len(PRIMITIVE_SAMPLES[name]))]


def _tolerance(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)


def _assert_same(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, **_tolerance(expected.dtype))
    else:
        np.testing.assert_array_equal(got, expected)


def _variants(arrays):
    """The sample as given (float64) and with float inputs in float32."""
    yield arrays
    yield [a.astype(np.float32) if np.asarray(a).dtype.kind == "f" else a for a in arrays]


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("case", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_primitive_matches_interpreter(case, fuse, backend):
    name, i = case
    arrays, attrs = PRIMITIVE_SAMPLES[name][i]

    def op(*tensors):
        return bind(REGISTRY[name], *tensors, **attrs)
    for variant in _variants(arrays):
        tensors = [graphc.tensor(np.asarray(a)) for a in variant]
        expected = graphc.compile(op, backend="interpreter")(*tensors)
        got = graphc.compile(op, backend=backend, fuse=fuse)(*tensors)
        _assert_same(got.numpy(), expected.numpy())


@pytest.mark.parametrize("fuse", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["fused", "unfused"])
@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_composite_values_and_gradients_match_interpreter(name, fuse, backend):
    fn, arrays = GRAD_CASES[name]

    def run(backend_name, fuse_ops):
        leaves = [graphc.tensor(np.asarray(a), requires_grad=np.asarray(a).dtype.kind == "f")
                  for a in arrays]
        compiled = graphc.compile(fn, backend=backend_name, fuse=fuse_ops)
        out = compiled(*leaves)
        if out.requires_grad:
            weights = graphc.tensor(np.random.default_rng(3).standard_normal(out.shape))
            (out * weights.to(out.dtype)).sum().backward()
        return out.detach().numpy(), [None if t.grad is None else t.grad.numpy()
                                      for t in leaves]
    expected, expected_grads = run("interpreter", True)
    got, got_grads = run(backend, fuse)
    _assert_same(got, expected)
    for g, e in zip(got_grads, expected_grads):
        assert (g is None) == (e is None)
        if e is not None:
            _assert_same(g, e)


SCALAR_OPS_HANDLERS = {"cpu": cpu_kernel.ScalarOps, "cuda": cuda_render.ScalarOps}


@pytest.mark.parametrize("handler", sorted(SCALAR_OPS_HANDLERS))
def test_every_scalar_op_has_a_method_in_every_code_generator(handler):
    missing = [op for op in SCALAR_OPS if not callable(getattr(SCALAR_OPS_HANDLERS[handler],
                                                               op, None))]
    assert not missing, f"{handler} backend lacks scalar ops {missing}"


def _accepted_dtypes(prim, n):
    """(operand dtypes, result dtype) for each dtype the primitive accepts."""
    for dt in dtypes.ALL:
        operands = [dtypes.bool_ if prim.name == "where" and i == 0 else dt for i in range(n)]
        attrs = {"dtype": dtypes.float64} if prim.name == "cast" else {}
        try:
            out = prim.infer(*[dtypes.TensorType((2,), d) for d in operands], **attrs)
        except RuntimeError:
            continue
        yield operands, out.dtype


@pytest.mark.parametrize("name", sorted(n for n, p in REGISTRY.items()
                                        if p.kind == "elementwise"))
def test_every_elementwise_primitive_renders_in_every_code_generator(name):
    """Each primitive's scalar rule, at each dtype it accepts, in LLVM IR (verified by
    llvmlite's parser) and as CUDA C text."""
    prim = REGISTRY[name]
    n = len(PRIMITIVE_SAMPLES[name][0][0])
    module = ir.Module(name)
    variants = list(_accepted_dtypes(prim, n))
    assert variants, name
    for k, (operands, out) in enumerate(variants):
        types = [cpu_kernel.value_type(d) for d in operands]
        fn = ir.Function(module, ir.FunctionType(cpu_kernel.value_type(out), types), f"f{k}")
        b = ir.IRBuilder(fn.append_basic_block())
        # narrow: float16/bfloat16 and the 8/16-bit integers compute widened and round
        # or wrap each op's result back into the dtype
        b.ret(cpu_kernel.narrow(b, prim.scalar(cpu_kernel.ScalarOps(b, operands[-1], out),
                                               *fn.args), out))
        text = cuda_render.narrow(prim.scalar(cuda_render.ScalarOps(operands[-1], out),
                                              *[f"a{i}" for i in range(n)]), out)
        assert all(f"a{i}" in text for i in range(n)), text
        assert (out in dtypes.HALF or out.bits < 32 and out.category == 1) == \
            ("gc::round_" in text or "gc::narrow_" in text), (name, out, text)
    llvm.parse_assembly(str(module)).verify()


def test_out_of_bounds_index_raises_instead_of_reading(backend):
    x = graphc.randn(3, 4)
    idx = graphc.tensor([0, 7])
    f = graphc.compile(lambda x, i: x.index_select(1, i) * 2, backend=backend)
    with pytest.raises(IndexError):
        f(x, idx)


def test_zero_and_one_sized_dims(backend):
    for shape in [(0, 3), (1, 3), (3, 1), (1, 1), (0,), ()]:
        x = graphc.randn(*shape)
        fn = (lambda x: (x.exp() * 2).sum() + x.tanh().mean() if x.numel() else x.sum())
        expected = graphc.compile(fn, backend="interpreter")(x)
        got = graphc.compile(fn, backend=backend)(x)
        _assert_same(got.numpy(), expected.numpy())
