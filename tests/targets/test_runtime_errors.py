"""Errors raised by generated code say what PyTorch says, plus the graphc op and the
user's line: an index read from data out of range (``loops.CheckedIndex``) and an
integer divisor that is zero (``loops.NonZero``).  Kernels record ``{site, value}`` in
an error record; ``loops.Program.sites`` turns the site back into the op, its source
line, the dimension and its size.  Every backend runs the same checks."""
import dataclasses
import os

import numpy as np
import pytest

import graphc
from graphc import dtypes
from graphc.targets.cpu.runtime import compile_program
from graphc.targets.cuda import compile_graph_cuda
from graphc.codegen import loops as L
from graphc.codegen.evaluate import run_program
from graphc.ops import REGISTRY
from graphc.passes import run_pipeline

HERE = os.path.basename(__file__)


def line_of(fn) -> str:
    """Where the one-line body of ``fn`` is: the line its ops carry."""
    return f"{HERE}:{fn.__code__.co_firstlineno + 1}"


def take_twice(x, i):
    return x[i] * 2


def gather_plus_one(x, i):
    return x.gather(1, i) + 1


def scatter(x, i, s):
    return x.scatter_add(0, i, s)


def index_add(x, i, s):
    return x.index_add(0, i, s)


def embed(weight, i):
    return graphc.nn.functional.embedding(i, weight) * 1


# (function, inputs, PyTorch's exception type, what the message names)
OUT_OF_RANGE = [
    (take_twice, lambda: (graphc.arange(4.0), graphc.tensor([0, 7])), IndexError,
     ["take: index 7 is out of bounds for dimension 0 with size 4"]),
    (take_twice, lambda: (graphc.arange(4.0), graphc.tensor([-9, 1])), IndexError,
     ["take: index -5 is out of bounds for dimension 0 with size 4"]),
    (gather_plus_one, lambda: (graphc.zeros(2, 3), graphc.tensor([[0, 5], [1, 2]])),
     RuntimeError, ["gather: index 5 is out of bounds for dimension 1 with size 3"]),
    (scatter, lambda: (graphc.zeros(3), graphc.tensor([0, 5]), graphc.ones(2)),
     RuntimeError, ["scatter_add: index 5 is out of bounds for dimension 0 with size 3"]),
    (index_add, lambda: (graphc.zeros(3), graphc.tensor([3]), graphc.ones(1)),
     IndexError, ["index_add: index 3 is out of bounds for dimension 0 with size 3"]),
    (embed, lambda: (graphc.zeros(5, 2), graphc.tensor([[1, 5]])), IndexError,
     ["take: index 5 is out of bounds for dimension 0 with size 5"]),
]


@pytest.mark.parametrize("fn,inputs,exc,names", OUT_OF_RANGE,
                         ids=["take", "take_negative", "gather", "scatter_add", "index_add",
                              "embedding"])
def test_an_index_out_of_range_names_op_index_size_and_line(backend, fn, inputs, exc, names):
    compiled = graphc.compile(fn, backend=backend, fullgraph=True)
    with pytest.raises(exc) as error:
        compiled(*inputs())
    message = str(error.value)
    for name in names + [f"({line_of(fn)})"]:
        assert name in message, message


@pytest.mark.parametrize("fn,inputs,exc,names", OUT_OF_RANGE[:1] + OUT_OF_RANGE[2:4])
def test_the_interpreter_and_eager_raise_the_same_type(fn, inputs, exc, names):
    with pytest.raises(exc, match=names[0].split(": ", 1)[1]):
        fn(*inputs())
    with pytest.raises(exc, match=names[0]):
        graphc.compile(fn, backend="interpreter", fullgraph=True)(*inputs())


@pytest.mark.slow
def test_pytorch_raises_these_types():
    torch = pytest.importorskip("torch")
    with pytest.raises(IndexError, match="index 7 is out of bounds for dimension 0 with "
                                         "size 4"):
        torch.arange(4.0)[torch.tensor([0, 7])]
    with pytest.raises(RuntimeError, match="index 5 is out of bounds for dimension 1 with "
                                           "size 3"):
        torch.zeros(2, 3).gather(1, torch.tensor([[0, 5], [1, 2]]))
    with pytest.raises(RuntimeError, match="index 5 is out of bounds"):
        torch.zeros(3).scatter_add(0, torch.tensor([0, 5]), torch.ones(2))
    with pytest.raises(IndexError):
        torch.zeros(3).index_add(0, torch.tensor([3]), torch.ones(1))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        torch.tensor([5, 3]) // torch.tensor([1, 0])


def test_the_error_record_is_reset_between_calls(backend):
    compiled = graphc.compile(take_twice, backend=backend)
    x = graphc.arange(4.0)
    with pytest.raises(IndexError):
        compiled(x, graphc.tensor([4]))
    assert compiled(x, graphc.tensor([3, 0])).tolist() == [6.0, 0.0]


def test_a_bad_index_in_the_second_threads_half_is_reported():
    i = np.zeros(1 << 18, np.int64)
    i[-1] = 9
    with pytest.raises(IndexError, match=r"take: index 9 .* size 4 \(" + line_of(take_twice)):
        graphc.compile(take_twice, backend="cpu")(graphc.arange(4.0), graphc.tensor(i))


def test_the_cuda_runtime_reports_the_site(fake_gpu):
    graph = run_pipeline(graphc.trace(take_twice, graphc.arange(4.0), graphc.tensor([0])))
    program = compile_graph_cuda(graph)
    with pytest.raises(IndexError, match=r"take: index 6 is out of bounds for dimension 0 "
                                         r"with size 4 \(" + line_of(take_twice)):
        program([np.arange(4, dtype=np.float32), np.array([6])])
    (ok,) = program([np.arange(4, dtype=np.float32), np.array([3])])
    assert ok.tolist() == [6.0]


# ---- zero divisors --------------------------------------------------------------------------
def test_eager_integer_division_by_zero_raises_as_pytorch():
    for call in (lambda: graphc.tensor([5, 3]) // graphc.tensor([1, 0]),
                 lambda: graphc.tensor([5]) % 0,
                 lambda: graphc.div(graphc.tensor([5]), graphc.tensor([0]),
                                    rounding_mode="trunc")):
        with pytest.raises(RuntimeError, match=rf"^ZeroDivisionError: .*integer division "
                                               rf"by zero \({HERE}:\d+\)"):
            call()
    assert graphc.tensor([5.0]) // 0 == float("inf")          # floats divide by zero


def nonzero_program(n=64):
    """out[p] = nonzero(x[p]): the divisor check on its own."""
    p = L.Var("p")
    value = L.NonZero(L.Load("x", p, dtypes.int64), 1)
    kernel = L.LoopKernel("check", (("p", n),), [L.Store((), "out", p, value)], ["x"], ["out"])
    buffers = {"x": L.BufferInfo("x", dtypes.int64, n, "input"),
               "out": L.BufferInfo("out", dtypes.int64, n, "output")}
    return L.Program("divide", buffers, [kernel], ["x"], ["out"], {},
                     sites=[L.Site("floor_divide", "model.py:3")])


@pytest.mark.parametrize("run", [lambda p, x: compile_program(p)([x]),
                                 lambda p, x: run_program(p, [x])], ids=["cpu", "evaluator"])
def test_a_zero_divisor_raises_zero_division_error_naming_op_and_line(run):
    x = np.arange(1, 65, dtype=np.int64)
    assert run(nonzero_program(), x)[0].tolist() == x.tolist()
    x[40] = 0
    with pytest.raises(RuntimeError, match=r"^ZeroDivisionError: floor_divide: integer "
                                           r"division by zero \(model.py:3\)$"):
        run(nonzero_program(), x)


def test_a_primitive_with_a_divisor_is_checked_in_compiled_code(backend, monkeypatch):
    """A primitive declaring ``divisor`` gets its integer operand checked on every code
    generator (``maximum`` stands in for an integer division here)."""
    monkeypatch.setitem(REGISTRY, "maximum", dataclasses.replace(REGISTRY["maximum"],
                                                                 divisor=1))

    def fn(a, b):
        return graphc.maximum(a, b) + 1

    compiled = graphc.compile(fn, backend=backend, fullgraph=True)
    a = graphc.tensor([1, 2, 3])
    assert compiled(a, graphc.tensor([2, 1, 5])).tolist() == [3, 3, 6]
    with pytest.raises(RuntimeError, match=rf"^ZeroDivisionError: maximum: integer division "
                                           rf"by zero \({line_of(fn)}\)$"):
        compiled(a, graphc.tensor([2, 0, 5]))
    floats = graphc.compile(fn, backend=backend, fullgraph=True)
    assert floats(a.float(), graphc.tensor([0.0, 0.0, 0.0])).tolist() == [2.0, 3.0, 4.0]


def test_an_index_into_an_empty_dimension_is_out_of_range(backend):
    compiled = graphc.compile(take_twice, backend=backend)
    assert compiled(graphc.zeros(0), graphc.tensor([], dtype=graphc.int64)).tolist() == []
    with pytest.raises(IndexError, match="take: index 0 is out of bounds for dimension 0 "
                                         "with size 0"):
        compiled(graphc.zeros(0), graphc.tensor([0]))


def test_compiled_integer_floor_divide_and_remainder_by_zero_raise(backend):
    def fn(a, b):
        return a // b + a % b

    compiled = graphc.compile(fn, backend=backend)
    a = graphc.tensor([7, -7, 2 ** 62 + 1])
    assert compiled(a, graphc.tensor([2, 2, 3])).tolist() == (a // 2 * 0 + fn(
        a, graphc.tensor([2, 2, 3]))).tolist()
    with pytest.raises(RuntimeError, match=rf"^ZeroDivisionError: (floor_divide|remainder): "
                                           rf"integer division by zero \({line_of(fn)}\)$"):
        compiled(a, graphc.tensor([2, 0, 3]))


def test_integer_trunc_division_is_exact_above_2_to_the_53():
    torch = pytest.importorskip("torch")
    a, b = [7, -7, 7, -7, 2 ** 62 + 1, -(2 ** 62 + 1)], [2, 2, -2, -2, 3, 3]
    for x, y in ((a, b), (a, 3), (7, b)):
        gx = graphc.tensor(x) if isinstance(x, list) else x
        gy = graphc.tensor(y) if isinstance(y, list) else y
        tx = torch.tensor(x) if isinstance(x, list) else x
        ty = torch.tensor(y) if isinstance(y, list) else y
        assert graphc.div(gx, gy, rounding_mode="trunc").tolist() == \
            torch.div(tx, ty, rounding_mode="trunc").tolist()
