"""Two-pass reductions (``graphc/codegen/split.py``), on the loop IR itself: the split
program, run by the reference loop-IR evaluator, gives the unsplit program's results for
random shapes, kinds, dtypes and chunk sizes; what is and is not split."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc
from graphc.targets.interpreter import compile_graph
from graphc.codegen import loops as L
from graphc.codegen.evaluate import run_program
from graphc.codegen.lower import lower
from graphc.codegen.split import SplitPolicy, split_reductions
from graphc.passes import run_pipeline

REDUCTIONS = {
    "sum": lambda x, d: x.sum(d),
    "mean": lambda x, d: x.mean(d),
    "amax": lambda x, d: x.amax(d),
    "amin": lambda x, d: x.amin(d),
    "prod": lambda x, d: (x * 0.01 + 1).prod(d) if x.dtype.is_floating_point else x.prod(d),
    "any": lambda x, d: (x > 0).any(d),
    "count": lambda x, d: (x > 0).sum(d),
}


def program_of(fn, *inputs):
    graph = run_pipeline(graphc.trace(fn, *inputs))
    return graph, lower(graph, True)[0]


def assert_close(got, expected):
    assert got.dtype == expected.dtype
    if expected.dtype.kind == "f":
        tol = 1e-5 if expected.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 4), n=st.integers(1, 300), chunk=st.integers(1, 40),
       kind=st.sampled_from(sorted(REDUCTIONS)),
       dtype=st.sampled_from([np.float32, np.float64, np.int32, np.int64]),
       transposed=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_split_programs_compute_what_unsplit_ones_do(rows, n, chunk, kind, dtype, transposed,
                                                     seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(-50, 50, (n, rows) if transposed else (rows, n)).astype(dtype)
    if dtype in (np.float32, np.float64):
        data = data + rng.standard_normal(data.shape).astype(dtype)
    x = graphc.tensor(data)
    fn = REDUCTIONS[kind]
    if kind == "mean" and dtype not in (np.float32, np.float64):
        fn = REDUCTIONS["sum"]

    def reduce(x):
        x = x.t() if transposed else x
        return fn(x, 1), fn(x.reshape(-1), 0)
    graph, program = program_of(reduce, x)
    split = split_reductions(program, SplitPolicy(busy=8, chunk=chunk))
    if n >= 2 * chunk:
        assert len(split.kernels) > len(program.kernels)
    expected = compile_graph(graph)([data])
    for got, want, unsplit in zip(run_program(split, [data]), expected,
                                  run_program(program, [data])):
        assert_close(got.reshape(want.shape), want)
        assert_close(got, unsplit)


def test_what_is_split():
    x = graphc.randn(3, 1000)
    policy = SplitPolicy(busy=8, chunk=100)

    def kernels(fn):
        return [k.name for k in split_reductions(program_of(fn, x)[1], policy).kernels]
    assert kernels(lambda x: x.sum()) == ["k0_sum_partial", "k0_sum"]
    assert kernels(lambda x: x.sum(1)) == ["k0_sum_partial", "k0_sum"]
    assert len(kernels(lambda x: x.sum(0))) == 1            # 1000 rows of 3: no
    assert len(kernels(lambda x: x.argmax(1))) == 1         # arg-reductions: one pass
    assert len(kernels(lambda x: x.softmax(1))) == 1        # two reductions in one kernel
    assert len(kernels(lambda x: x[:, :150].sum(1))) == 1   # shorter than two chunks
    program = program_of(lambda x: x.sum(1), x)[1]
    assert split_reductions(program, SplitPolicy(busy=3, chunk=100)) is program   # 3 rows


def test_the_split_is_readable_loop_ir():
    x = graphc.randn(2, 1001)
    _, program = program_of(lambda x: x.sum(1) * 2, x)
    first, second = split_reductions(program, SplitPolicy(busy=8, chunk=250)).kernels
    assert first.parallel[-1] == ("split", 4) and first.body[0].loops == (("chunk", 251),)
    assert first.comment[0] == "first pass of k0_sum_mul: 4 chunks of 251 per row"
    assert second.body[0].loops == (("split", 4),)
    assert isinstance(second.body[0].accumulators[0].value, L.Load)
    assert second.body[1:] == program.kernels[0].body[1:]      # the stores, unchanged
    text = L.format_kernel(first)
    assert "where(lt(i64(((split * 251) + chunk)), 1001)" in text
