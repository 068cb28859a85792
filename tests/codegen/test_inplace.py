"""``graphc.codegen.inplace``: outputs computed into their inputs' buffers exactly where
that cannot change a result, checked on hand-built loop IR and run on the cpu backend
against the same program computing into fresh outputs."""
import numpy as np
import pytest

from graphc import dtypes
from graphc.codegen import loops as L
from graphc.codegen.inplace import write_in_place
from graphc.targets.cpu import compile_program

f32 = dtypes.float32
P = L.Var("p")


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))


def load(name, offset=P):
    return L.Load(name, offset, f32)


def add(a, b):
    return L.Op("add", (a, b), f32)


def mul(a, b):
    return L.Op("mul", (a, b), f32)


def program(kernels, inputs, outputs, n=4):
    buffers = {name: L.BufferInfo(name, f32, n, "input") for name in inputs}
    buffers.update({name: L.BufferInfo(name, f32, n, "output") for name in outputs})
    return L.Program("p", buffers, kernels, list(inputs), list(outputs), {})


def momentum_step(n=4):
    """``b2 = b * 0.9 + g; w2 = w - 0.1 * (b * 0.9 + g)`` in one kernel, b2 stored
    first (as fusion orders a training step's update), so the store into ``b`` must
    move after the statement that still reads ``b``."""
    buf = add(mul(load("b"), L.Const(0.9, f32)), load("g"))
    body = [L.Store((), "b2", P, buf),
            L.Store((), "w2", P, add(load("w"), mul(L.Const(-0.1, f32), buf)))]
    kernel = L.LoopKernel("update", (("p", n),), body, ["b", "g", "w"], ["b2", "w2"])
    return program([kernel], ["w", "b", "g"], ["w2", "b2"], n)


def run(p, arrays):
    """``p`` computing into fresh outputs, on copies of ``arrays``."""
    return compile_program(p)([a.copy() for a in arrays])


def test_a_momentum_update_is_computed_into_its_inputs():
    p = momentum_step()
    rewritten, done = write_in_place(p, [(0, 0), (1, 1)])
    assert done == [(0, 0), (1, 1)]
    assert rewritten.outputs == ["w", "b"] and "w2" not in rewritten.buffers
    stores = [s.buffer for s in rewritten.kernels[0].body]
    assert stores == ["w", "b"]                    # w's store, which reads b, first
    rng = np.random.default_rng(0)
    w, b, g = (rng.standard_normal(4).astype(np.float32) for _ in range(3))
    expected = run(p, [w, b, g])
    arrays = [w.copy(), b.copy(), g.copy()]
    got = compile_program(rewritten, in_place=done)(arrays)
    assert got[0] is arrays[0] and got[1] is arrays[1]
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_a_read_only_or_converted_input_is_updated_in_a_copy():
    p, pairs = momentum_step(), [(0, 0), (1, 1)]
    rewritten, done = write_in_place(p, pairs)
    compiled = compile_program(rewritten, in_place=done)
    w = np.ones(4, np.float32)
    w.setflags(write=False)
    b64 = np.zeros(4, np.float64)
    g = np.ones(4, np.float32)
    new_w, new_b = compiled([w, b64, g])
    assert new_w is not w and new_b is not b64
    np.testing.assert_array_equal(w, 1)            # the caller's arrays are untouched
    np.testing.assert_array_equal(b64, 0)
    np.testing.assert_allclose(new_b, 1)
    np.testing.assert_allclose(new_w, 0.9)


def test_stores_that_read_each_others_inputs_stay_out_of_place():
    body = [L.Store((), "a2", P, add(load("a"), load("b"))),
            L.Store((), "b2", P, add(load("b"), load("a")))]
    kernel = L.LoopKernel("swap", (("p", 4),), body, ["a", "b"], ["a2", "b2"])
    p = program([kernel], ["a", "b"], ["a2", "b2"])
    rewritten, done = write_in_place(p, [(0, 0), (1, 1)])
    assert len(done) == 1                           # a cycle: one of them stays out
    a, b = np.arange(4, dtype=np.float32), np.ones(4, np.float32)
    expected = run(p, [a, b])
    got = compile_program(rewritten, in_place=done)([a.copy(), b.copy()])
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def shifted_read():
    """``y[p] = x[3 - p]``: an element another iteration still reads."""
    reverse = L.IOp("sub", L.IConst(3), P)
    kernel = L.LoopKernel("rev", (("p", 4),), [L.Store((), "y", P, load("x", reverse))],
                          ["x"], ["y"])
    return program([kernel], ["x"], ["y"])


def later_reader():
    """``y = x + 1`` and then a kernel that reads the old ``x``."""
    k1 = L.LoopKernel("inc", (("p", 4),), [L.Store((), "y", P, add(load("x"), L.Const(1.0, f32)))],
                      ["x"], ["y"])
    k2 = L.LoopKernel("copy", (("p", 4),), [L.Store((), "z", P, load("x"))], ["x"], ["z"])
    return program([k1, k2], ["x"], ["y", "z"])


def returned_input():
    """``y = x + 1`` where ``x`` is returned as well."""
    kernel = L.LoopKernel("inc", (("p", 4),), [L.Store((), "y", P, add(load("x"), L.Const(1.0, f32)))],
                          ["x"], ["y"])
    p = program([kernel], ["x"], ["y"])
    p.outputs = ["y", "x"]
    return p


def checked():
    """A program that can fail at run time (an index read from data)."""
    p = later_reader()
    p.sites = [L.Site("take", None, 0, 4)]
    return p


@pytest.mark.parametrize("make", [shifted_read, later_reader, returned_input, checked])
def test_unsafe_outputs_stay_out_of_place(make):
    p = make()
    rewritten, done = write_in_place(p, [(0, 0)])
    assert done == [] and rewritten is p


def test_nothing_asked_nothing_done():
    p = momentum_step()
    assert write_in_place(p, []) == (p, [])
